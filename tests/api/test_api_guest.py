"""The per-runner API against the real guest (issue 7): ``/status`` in each phase, the event
stream, ``/metrics``, a CD change held by the guest, a live balloon change, ``POST /powerdown``
(each shutdown rung), ``vmrunner status`` and systemd notifications.

The runner tree runs in-process (``InProcessRunner``) so the test can await the bus events
that mark each phase, then asks the API over its unix socket as an operator would. The
notifications go to a real AF_UNIX datagram socket given as ``NOTIFY_SOCKET``.
"""

from __future__ import annotations

import asyncio
import socket
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from vmrunner.api.client import follow, get_json, request
from vmrunner.api.sdnotify import SystemdNotifier
from vmrunner.components.cdrom import CdromController
from vmrunner.components.ram import RamController
from vmrunner.events import (
    CdromMediumChange,
    Outcome,
    QmpBalloonChange,
    RamChange,
    RunnerStateChanged,
    RunState,
    ShutdownRung,
)
from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.inproc import InProcessRunner
from vmrunner.testing.iso import make_iso
from vmrunner.testing.runnerproc import guest_config, scratch_dir

pytestmark = pytest.mark.guest

BOOT = 60.0
CMD = 30.0
EVENT = 20.0
MIB = 2**20


@pytest.fixture
def vmdir() -> Iterator[Path]:
    with scratch_dir("vapi") as path:
        yield path


def _state(new: RunState) -> Any:
    return lambda e: e.new is new


async def _datagrams(sock: socket.socket, into: list[str]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        into.append((await loop.sock_recv(sock, 4096)).decode())


async def _collect(path: Path, into: list[dict[str, Any]]) -> None:
    async for record in follow(path, since=0):
        into.append(record)


def _metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_status_events_metrics_and_notify(vmdir: Path, guest_image: GuestImage,
                                                accel: AccelVerdict) -> None:
    isos = {n: make_iso(vmdir / f"{n.lower()}.iso", {"marker.txt": f"{n * 3}\n".encode()})
            for n in "AB"}

    def configure(iso: Path, ram: str = "192 MiB") -> Path:
        # the guest ignores the power button and qemu-ga is not asked: every rung is climbed
        return guest_config(
            vmdir, guest_image, accel=str(accel.accel), knobs=("tg.powerbtn=ignore",),
            powerdown_timeout=4, maximumRam="256 MiB", currentRam=ram,
            drives=[{"type": "ide-cd", "bus": "scsi", "file": str(iso)}],
            runner={"/PowerdownHandler": {"useGuestAgent": False, "repeatInterval": 1,
                                          "killGrace": 2}})

    notify_path = vmdir / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.setblocking(False)
    notes: list[str] = []
    records: list[dict[str, Any]] = []
    notifier = SystemdNotifier(env={"NOTIFY_SOCKET": str(notify_path)})
    cdrom = CdromController(open_window=1.0, retry_initial=1.0, retry_max=2.0)
    api = vmdir / "run" / "api.sock"
    config = configure(isos["A"])
    receiver = asyncio.ensure_future(_datagrams(listener, notes))
    stream: asyncio.Future[None] | None = None
    try:
        async with InProcessRunner(config, notifier, cdrom, RamController()) as vm:
            rec, con = vm.recorder, vm.console
            assert stat.S_IMODE(api.stat().st_mode) == 0o600
            stream = asyncio.ensure_future(_collect(api, records))

            # booting: cont sent, the guest agent has not answered yet
            await rec.wait_for(RunnerStateChanged, _state(RunState.BOOTING), EVENT)
            status = await get_json(api, "/status")
            if rec.of_type(RunnerStateChanged)[-1].new is RunState.BOOTING:  # still, after it
                assert status["state"] == "booting"
            assert status["qemuPid"] and status["shutdown"]["rung"] is None
            # running, the balloon target reached
            await rec.wait_for(RunnerStateChanged, _state(RunState.BOOTED), BOOT)
            await rec.wait_for(QmpBalloonChange, lambda e: e.actual
                               == 192 * MIB, BOOT)
            await con.wait_ready(BOOT)
            status = await get_json(api, "/status")
            assert status["state"] == "booted" and status["vm"] == "tg"
            assert status["ram"] == {"maximum": 256 * MIB, "requested": 192 * MIB,
                                     "actual": 192 * MIB, "outcome": status["ram"]["outcome"]}
            assert status["cpus"]["requested"] == 1
            assert status["guestAgent"]["connected"]
            assert status["guestAgent"]["osInfo"]["id"] == "vmrunner-tg"
            assert status["cdroms"][0]["medium"] == str(isos["A"])
            assert status["cdroms"][0]["pending"] is None
            assert any(n.startswith("READY=1") for n in notes), notes

            # metrics parse with Prometheus' own parser
            code, body = await request(api, "GET", "/metrics")
            assert code == 200
            metrics = _metrics(body.decode())
            assert metrics[("vmrunner_state", (("state", "booted"),))] == 1.0
            assert metrics[("vmrunner_ram_bytes", (("kind", "actual"),))] == 192 * MIB
            assert metrics[("vmrunner_qmp_commands_total", (("command", "cont"),))] == 1.0

            # the CLI's readable summary
            cli = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "vmrunner", "status", "-c", str(config),
                stdout=asyncio.subprocess.PIPE)
            out, _ = await asyncio.wait_for(cli.communicate(), CMD)
            assert cli.returncode == 0
            assert out.decode().startswith("VM tg: booted for ")
            assert "192 MiB requested, 192 MiB actual" in out.decode()

            # a CD change the guest holds up: pending, and shown as such
            assert "MARKER=AAA" in await con.check("tg cd-mount", CMD)  # locks the tray
            configure(isos["B"])
            await rec.wait_for(CdromMediumChange, lambda e: e.new == isos["B"]
                               and e.outcome is Outcome.PENDING, EVENT)
            cd = (await get_json(api, "/status"))["cdroms"][0]
            assert cd["medium"] == str(isos["A"]) and cd["pending"] == str(isos["B"])
            assert cd["pendingSince"] is not None
            assert (await get_json(api, "/status"))["config"]["generation"] == 1
            code, body = await request(api, "GET", "/metrics")
            assert _metrics(body.decode())[("vmrunner_cdrom_pending", (("drive", "cd0"),))] == 1

            # a live balloon change: the new target, then the size the guest reached
            configure(isos["B"], ram="160 MiB")
            done = await rec.wait_for(RamChange, lambda e: e.requested == 160 * MIB
                                      and e.outcome is Outcome.APPLIED, EVENT)
            ram = (await get_json(api, "/status"))["ram"]
            assert ram["requested"] == 160 * MIB and ram["outcome"] == "applied"
            assert ram["actual"] == done.actual and abs(ram["actual"] - 160 * MIB) <= 8 * MIB

            # POST /powerdown: the TERM path; the ACPI rung with its budget
            code, body = await request(api, "POST", "/powerdown")
            assert code == 202
            await rec.wait_for(ShutdownRung, lambda e: e.rung.value == "powerdown", EVENT)
            status = await get_json(api, "/status")
            assert status["state"] == "terminating"
            assert status["shutdown"]["rung"] == "powerdown"
            assert 0 < status["shutdown"]["remaining"] <= 4
            assert (await request(api, "GET", "/ready"))[0] == 503
            assert await asyncio.wait_for(asyncio.shield(vm.task), 30) == 3  # type: ignore[arg-type]
        assert stream is not None
        await asyncio.wait_for(stream, 5)  # the stream ends by itself once stopped
    finally:
        receiver.cancel()
        if stream is not None:
            stream.cancel()
        listener.close()

    # the stream: every state change, in order, numbered in order, ending with STOPPED
    seqs = [r["seq"] for r in records]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    states = [(r["data"]["old"], r["data"]["new"]) for r in records
              if r["type"] == "RunnerStateChanged"]
    assert states == [("initializing", "starting"), ("starting", "booting"),
                      ("booting", "booted"), ("booted", "terminating"),
                      ("terminating", "stopped")]
    assert records[-1]["type"] == "RunnerStateChanged"
    rungs = [r["data"]["rung"] for r in records if r["type"] == "ShutdownRung"]
    assert rungs[0] == "powerdown" and "terminate" in rungs and rungs[-1] == "cleanup"
    assert set(records[0]) == {"seq", "time", "type", "data"}
    assert not api.exists()
    # systemd: READY once running, STOPPING when the shutdown began, status lines between
    assert any(n.startswith("READY=1") for n in notes)
    ready = next(i for i, n in enumerate(notes) if n.startswith("READY=1"))
    stopping = next(i for i, n in enumerate(notes) if n.startswith("STOPPING=1"))
    assert ready < stopping
    assert "STATUS=booting" in notes[ready]
    assert any("STATUS=shutting down: powerdown" in n for n in notes)
