"""``GET /status`` asked from the components (``StatusQuery``), without a VM: what each
component answers, and the assembled document (the shape ``vmrunner status`` and the tests
in this directory rely on) through a whole run: booted, a live change, the shutdown ladder,
stopped.

FAKE: ``FakeQemu`` answers the QMP commands the controllers send (no QEMU); the "QEMU"
process is ``sleep``; the launch plan is a stand-in with the fields the components read.
The bus, the Runner, the controllers, the ladder, the ProcessManager and the API are real.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from vmrunner.api.client import format_status, get_json, request
from vmrunner.api.eventlog import EventLog
from vmrunner.api.metrics import render
from vmrunner.api.server import ApiServer
from vmrunner.api.status import Status, ask
from vmrunner.components.base import BusComponent
from vmrunner.components.cdrom import CdromController
from vmrunner.components.console import ConsoleTracker
from vmrunner.components.cpus import CpuController
from vmrunner.components.disk_errors import DiskErrorWatcher
from vmrunner.components.guest_agent import GuestAgent
from vmrunner.components.panic import PanicHandler
from vmrunner.components.powerdown import PowerdownHandler
from vmrunner.components.processes import ProcessManager
from vmrunner.components.ram import RamController
from vmrunner.components.reload_planner import ReloadPlanner
from vmrunner.components.runner import Runner
from vmrunner.components.vmop_agent import VmopAgent
from vmrunner.config.model import RunnerConfig
from vmrunner.core import Stop, handler, run
from vmrunner.core.recorder import EventRecorder
from vmrunner.events import (
    CdromMediumChange,
    CdromStatus,
    ConfigStatus,
    ConfigureQemu,
    ConsoleConnected,
    ConsoleStatus,
    CpuChange,
    CpuStatus,
    DiskErrorStatus,
    DiskIoError,
    ExecuteQmp,
    GuestAgentStatus,
    GuestPanicked,
    MonitorReady,
    OsInfo,
    Outcome,
    PanicStatus,
    ProcessStatus,
    QmpBlockIoError,
    QmpGuestPanicked,
    QmpReply,
    QmpSpiceInitialized,
    RamChange,
    RamStatus,
    ReloadPlan,
    Rung,
    RunnerStateChanged,
    RunnerStatus,
    RunState,
    ShutdownRung,
    ShutdownStatus,
    StartProcess,
    VmopAgentStatus,
    VmPrepared,
)
from vmrunner.events.guest_facts import GuestFactsStatus
from vmrunner.vmtypes.state import VmPaths

MIB = 2**20
OS_INFO = {"id": "fake", "pretty-name": "Fake OS", "kernel-release": "6.1"}


class FakeQemu(BusComponent):
    """FAKE: answers the controllers' QMP commands like a QEMU whose guest complies at once
    (except that it never opens a CD tray)."""

    def __init__(self, cd: Path) -> None:
        super().__init__()
        self.cd = cd
        self.balloon = 256 * MIB

    @handler
    def on_execute(self, event: ExecuteQmp) -> QmpReply:
        command = event.command
        if command.name == "balloon":
            self.balloon = int(command.value)  # type: ignore[attr-defined]
        answers: dict[str, Any] = {
            "query-balloon": {"actual": self.balloon},
            "query-hotpluggable-cpus": [
                {"type": "cpu", "props": {"socket-id": 0, "core-id": 1, "thread-id": 0}},
                {"type": "cpu", "props": {"socket-id": 0, "core-id": 0, "thread-id": 0},
                 "qom-path": "/machine/unattached/device[0]"}],
            "query-block": [{"qdev": "cd0", "tray_open": False,
                             "inserted": {"file": str(self.cd)}}],
        }
        return QmpReply(value=answers.get(command.name, {}))


def _config(cd: Path, ram: str = "192 MiB", cpus: int = 2) -> RunnerConfig:
    return RunnerConfig.model_validate({"vm": {
        "name": "t", "maximumRam": "256 MiB", "currentRam": ram, "maximumCpus": cpus,
        "currentCpus": 1, "powerdownTimeout": 1,
        "drives": [{"type": "ide-cd", "file": str(cd)}]}})


def _tree(tmp_path: Path) -> tuple[Runner, EventRecorder, ApiServer, Path]:
    cd = tmp_path / "a.iso"
    cd.write_bytes(b"A")
    config = _config(cd)
    plan: Any = SimpleNamespace(  # FAKE: the fields the components read
        config=config, paths=VmPaths(data_dir=tmp_path, runtime_dir=tmp_path), swtpm=None,
        guest_agent_channel=None, vmop_agent_channel=None)
    root = Runner(config, preparer=lambda _c: plan, locker=None)
    for child in (ProcessManager(), FakeQemu(cd), RamController(), CpuController(),
                  GuestAgent(), PowerdownHandler(repeat_interval=5, kill_grace=1),
                  CdromController(open_window=0.05, retry_initial=5), ReloadPlanner(),
                  ConsoleTracker(), VmopAgent(), PanicHandler(), DiskErrorWatcher()):
        root.attach(child)
    api = root.attach(ApiServer())
    recorder = root.attach(EventRecorder())
    return root, recorder, api, cd


async def _boot(root: Runner, recorder: EventRecorder) -> int:
    """Up to BOOTED: the "QEMU" process, the monitor, the initial configuration, cont."""
    await recorder.wait_for(RunnerStateChanged, lambda e: e.new is RunState.STARTING, 5)
    pid = await root.fire(StartProcess(name="qemu", argv=("sleep", "60")))
    assert pid is not None
    root.fire(MonitorReady(version=None))
    await recorder.wait_for(RunnerStateChanged, lambda e: e.new is RunState.BOOTING, 5)
    root.fire(OsInfo(info=OS_INFO))
    await recorder.wait_for(RunnerStateChanged, lambda e: e.new is RunState.BOOTED, 5)
    await recorder.wait_for(RamChange, lambda e: e.outcome is Outcome.APPLIED, 5)
    await recorder.wait_for(CpuChange, lambda e: e.outcome is Outcome.APPLIED, 5)
    return pid


async def test_each_component_answers_for_what_it_owns(tmp_path: Path) -> None:
    root, recorder, api, cd = _tree(tmp_path)
    task = asyncio.ensure_future(run(root))
    try:
        # before QEMU runs: what the prepared configuration says
        await recorder.wait_for(VmPrepared, None, 5)
        early = Status(await ask(root), api.log)
        assert early.state is RunState.STARTING and early.processes.pids == ()
        assert early.ram == RamStatus(maximum=256 * MIB, requested=192 * MIB)
        assert early.cpus == CpuStatus(maximum=2, requested=1)
        assert [(d.drive, d.medium) for d in early.cdrom.drives] == [("cd0", cd)]
        pid = await _boot(root, recorder)
        seq = api.log.seq
        parts = await ask(root)
        assert api.log.seq == seq  # the query itself is not logged
        by_type = {type(p): p for p in parts}
        assert len(by_type) == len(parts) == 13
        runner = by_type[RunnerStatus]
        assert isinstance(runner, RunnerStatus)
        assert (runner.vm, runner.state, runner.reason) == ("t", RunState.BOOTED,
                                                            "the guest agent answered")
        assert runner.since is not None and abs(runner.since - time.time()) < 10
        assert by_type[ProcessStatus] == ProcessStatus(pids=(("qemu", pid),))
        assert by_type[RamStatus] == RamStatus(maximum=256 * MIB, requested=192 * MIB,
                                               actual=192 * MIB, outcome=Outcome.APPLIED)
        assert by_type[CpuStatus] == CpuStatus(maximum=2, requested=1, present=1,
                                               outcome=Outcome.APPLIED)
        cdrom = by_type[CdromStatus]
        assert isinstance(cdrom, CdromStatus)
        assert [(d.drive, d.medium, d.tray_open, d.pending) for d in cdrom.drives] == [
            ("cd0", cd, False, None)]
        assert by_type[GuestAgentStatus] == GuestAgentStatus(connected=False, os_info=OS_INFO)
        assert by_type[GuestFactsStatus] == GuestFactsStatus()  # no agent port: no facts
        assert by_type[ShutdownStatus] == ShutdownStatus()
        assert by_type[ConfigStatus] == ConfigStatus()
        assert by_type[ConsoleStatus] == ConsoleStatus()
        assert by_type[VmopAgentStatus] == VmopAgentStatus()
        assert by_type[PanicStatus] == PanicStatus(policy="reset")
        assert by_type[DiskErrorStatus] == DiskErrorStatus()
    finally:
        root.fire(Stop())
        await asyncio.wait_for(task, 10)


async def test_document_through_a_run(tmp_path: Path) -> None:
    root, recorder, api, cd = _tree(tmp_path)
    sock = tmp_path / "api.sock"
    task = asyncio.ensure_future(run(root))
    try:
        pid = await _boot(root, recorder)
        doc = await get_json(sock, "/status")
        since = doc["stateSince"]
        assert abs(since - time.time()) < 10
        cd0 = {"drive": "cd0", "key": "/Runner/vm/drives/0", "medium": str(cd),
               "trayOpen": False, "pending": None, "pendingSince": None,
               "lastOutcome": None, "message": ""}
        no_shutdown: dict[str, Any] = {"rung": None, "rungs": [], "detail": "",
                                       "deadline": None, "remaining": None, "duration": None}
        assert doc == {
            "vm": "t", "state": "booted", "stateReason": "the guest agent answered",
            "stateSince": since, "qemuPid": pid,
            "runnerPid": os.getpid(), "runnerSince": doc["runnerSince"], "paused": None,
            "shutdown": no_shutdown,
            "ram": {"maximum": 256 * MIB, "requested": 192 * MIB, "actual": 192 * MIB,
                    "outcome": "applied"},
            "cpus": {"maximum": 2, "requested": 1, "present": 1, "outcome": "applied"},
            "cdroms": [cd0],
            "guestAgent": {"connected": False, "osInfo": OS_INFO},
            "guest": {"agent": "disconnected", "lastPong": None, "pingSeconds": None,
                      "facts": None},
            "console": {"client": None, "clients": []},
            "vmopAgent": {"connected": False, "loggedInUser": None, "wantedUser": None,
                          "lastError": None},
            "config": {"generation": 0, "lastPlan": None, "restartPending": [],
                       "rejections": 0},
            "serialConsole": {"connected": False, "bytesSeen": 0, "logFile": None,
                              "clientPid": None},
            "errors": [], "eventSeq": doc["eventSeq"],
            "panics": {"policy": "reset", "count": 0, "last": None, "resets": 0},
            "ioErrors": []}
        assert doc["eventSeq"] == api.log.seq > 0
        assert format_status(doc).startswith("VM t: booted for ")

        # a SPICE client's main channel: the console client (QEMU's event, as the monitor fires it)
        root.fire(QmpSpiceInitialized(timestamp=time.time(), host="192.0.2.7", port="40001",
                                      family="ipv4", channel_type=1, connection_id=-5))
        await recorder.wait_for(ConsoleConnected, lambda e: e.host == "192.0.2.7", 5)
        doc = await get_json(sock, "/status")
        assert doc["console"]["client"] == "192.0.2.7"
        assert [c["connectionId"] for c in doc["console"]["clients"]] == [-5]
        assert "console:      192.0.2.7" in format_status(doc)
        code, body = await request(sock, "GET", "/metrics")
        metrics = body.decode()
        assert code == 200
        assert 'vmrunner_console_client_info{host="192.0.2.7"} 1.0' in metrics
        assert "vmrunner_vmop_agent_connected 0.0" in metrics
        assert "vmrunner_guest_panics_total 0.0" in metrics

        # two failed disk writes and a guest panic (QEMU's events, as the monitor fires them)
        for _ in range(2):
            root.fire(QmpBlockIoError(timestamp=time.time(), device="", node_name="disk0",
                                      operation="write", action="report", nospace=True,
                                      reason="No space left on device"))
        root.fire(QmpGuestPanicked(timestamp=time.time(), action="run", info=None))
        await recorder.wait_for(GuestPanicked, lambda e: e.policy == "reset", 5)
        assert [e.drive for e in recorder.of_type(DiskIoError)] == ["disk0", "disk0"]
        for _ in range(50):  # the reset is counted once QEMU answered system_reset
            doc = await get_json(sock, "/status")
            if doc["panics"]["resets"]:
                break
            await asyncio.sleep(0.05)
        last = doc["panics"]["last"]
        assert doc["panics"] == {"policy": "reset", "count": 1, "resets": 1, "last": last}
        assert last == {"time": last["time"], "action": "run", "info": None,
                        "crashLoaded": False}
        assert abs(last["time"] - time.time()) < 10
        assert doc["ioErrors"] == [{"drive": "disk0", "operation": "write", "count": 2,
                                    "action": "report", "nospace": True,
                                    "reason": "No space left on device",
                                    "lastTime": doc["ioErrors"][0]["lastTime"]}]
        text = format_status(doc)
        assert "PANICS:       1, last " in text and "(onPanic reset, 1 resets)" in text
        assert ("I/O ERRORS:   disk0 write: 2 (no space left on the host; QEMU's action: "
                "report)") in text
        metrics = (await request(sock, "GET", "/metrics"))[1].decode()
        assert "vmrunner_guest_panics_total 1.0" in metrics
        assert "vmrunner_guest_panic_resets_total 1.0" in metrics
        assert ('vmrunner_block_io_errors_total{drive="disk0",operation="write"} 2.0'
                in metrics)

        # a live change: a new balloon target, a CD change the guest holds up, maximumCpus
        other = tmp_path / "b.iso"
        other.write_bytes(b"B")
        new = _config(other, ram="160 MiB", cpus=3)
        root.fire(ConfigureQemu(config=new, state=RunState.BOOTED, initial=False))
        await recorder.wait_for(RamChange, lambda e: e.requested == 160 * MIB
                                and e.outcome is Outcome.APPLIED, 5)
        await recorder.wait_for(CdromMediumChange, lambda e: e.outcome is Outcome.PENDING, 5)
        doc = await get_json(sock, "/status")
        assert doc["ram"] == {"maximum": 256 * MIB, "requested": 160 * MIB,
                              "actual": 160 * MIB, "outcome": "applied"}
        assert doc["cpus"]["maximum"] == 3
        pending = doc["cdroms"][0]
        assert pending == {**cd0, "pending": str(other), "pendingSince": pending["pendingSince"],
                           "lastOutcome": "pending", "message": pending["message"]}
        assert abs(pending["pendingSince"] - time.time()) < 10
        assert "keeps the tray closed" in pending["message"]
        plan = recorder.of_type(ReloadPlan)[-1]
        assert doc["config"] == {
            "generation": 1, "lastPlan": doc["config"]["lastPlan"],
            "restartPending": ["/Runner/vm/maximumCpus"], "rejections": 0}
        assert doc["config"]["lastPlan"]["generation"] == plan.generation == 1
        assert [e["path"] for e in doc["config"]["lastPlan"]["entries"]] == [
            e.path for e in plan.entries]
        text = format_status(doc)
        assert f"change to {other} pending for " in text
        assert "restart needed for: /Runner/vm/maximumCpus" in text

        text = render(await api.status()).decode()
        metrics = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(text) for s in f.samples}
        assert metrics[("vmrunner_state", (("state", "booted"),))] == 1.0
        assert metrics[("vmrunner_ram_bytes", (("kind", "requested"),))] == 160 * MIB
        assert metrics[("vmrunner_vcpus", (("kind", "present"),))] == 1.0
        assert metrics[("vmrunner_cdrom_pending", (("drive", "cd0"),))] == 1.0
        assert metrics[("vmrunner_config_reloads_total", ())] == 1.0
        assert metrics[("vmrunner_qmp_commands_total", (("command", "cont"),))] == 1.0
        assert metrics[("vmrunner_shutdown_rung", (("rung", "powerdown"),))] == 0.0

        # the shutdown ladder: the ACPI rung with its budget, then the forced stop
        root.fire(Stop())
        await recorder.wait_for(ShutdownRung, lambda e: e.rung is Rung.POWERDOWN, 5)
        doc = await get_json(sock, "/status")
        assert doc["state"] == "terminating"
        assert doc["stateReason"] == "the VM is being shut down"
        shutdown = doc["shutdown"]
        assert (shutdown["rung"], shutdown["rungs"]) == ("powerdown", ["powerdown"])
        # published as it is sent; "answered" once QEMU replied (either may be seen here)
        assert shutdown["detail"].startswith("system_powerdown (ACPI power button) ")
        assert 0 < shutdown["remaining"] <= 1
        assert abs(shutdown["deadline"] - time.time() - shutdown["remaining"]) < 0.2
        assert shutdown["duration"] is None
        assert "shutdown:     powerdown, " in format_status(doc)

        # stopped: the query is still answered while the tree winds down
        await recorder.wait_for(RunnerStateChanged, lambda e: e.new is RunState.STOPPED, 10)
        status = await api.status()
        doc = status.document()
        assert doc["state"] == "stopped" and doc["qemuPid"] is None
        assert doc["shutdown"]["rungs"] == ["powerdown", "terminate", "cleanup"]
        assert doc["shutdown"]["remaining"] is None and doc["shutdown"]["deadline"] is None
        assert doc["shutdown"]["duration"] > 0.9
        assert doc["errors"] == []
    finally:
        root.fire(Stop())
        await asyncio.wait_for(task, 10)


def test_missing_components_leave_defaults() -> None:
    log = EventLog()
    doc = Status([], log).document()
    assert doc["state"] == "initializing" and doc["vm"] is None and doc["qemuPid"] is None
    assert doc["stateSince"] == round(log.created, 3)
    assert doc["cdroms"] == [] and doc["guestAgent"] == {"connected": False, "osInfo": None}
    assert doc["ram"] == {"maximum": None, "requested": None, "actual": None, "outcome": None}
    assert doc["config"] == {"generation": 0, "lastPlan": None, "restartPending": [],
                             "rejections": 0}
