"""Guest facts and agent responsiveness against the real guest's qemu-ga (issue 16 item 2).

The runner runs in-process (``InProcessRunner``); the guest is changed through its serial
console: an address from QEMU's DHCP server, an ext4 disk mounted and filled, a login
record in ``/run/utmp`` (the file qemu-ga's ``guest-get-users`` reads), qemu-ga restarted
with ``--block-rpcs`` (commands it then answers with ``CommandNotFound``), and qemu-ga
stopped with SIGSTOP: a real hung agent (its port stays open, nothing answers).
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from vmrunner.api.client import get_json, request
from vmrunner.core import Stop
from vmrunner.events import GuestAgentConnected, Rung, RunnerStateChanged, RunState, ShutdownRung
from vmrunner.events.guest_facts import (
    GuestAgentResponsive,
    GuestAgentUnresponsive,
    GuestFactsUpdated,
)
from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.inproc import InProcessRunner
from vmrunner.testing.runnerproc import guest_config, scratch_dir

pytestmark = pytest.mark.guest

BOOT = 90.0
CMD = 30.0
EVENT = 20.0
MIB = 2**20
MAC = "52:54:00:ab:cd:01"
PORT = "/dev/virtio-ports/org.qemu.guest_agent.0"
QGA = f"qemu-ga -d -m virtio-serial -p {PORT} -t /run -f /run/qemu-ga.pid -l /run/qemu-ga.log"
STOP_QGA = "kill -STOP $(cat /run/qemu-ga.pid)"
WARNING = "guest agent unresponsive"


@pytest.fixture
def vmdir() -> Iterator[Path]:
    with scratch_dir("vgf") as path:
        yield path


def _ext4(path: Path, size_mib: int = 32) -> Path:
    with open(path, "wb") as image:
        image.truncate(size_mib * MIB)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(path)], check=True)
    return path


def _config(vmdir: Path, image: GuestImage, accel: AccelVerdict, **agent: Any) -> Path:
    return guest_config(vmdir, image, accel=str(accel.accel), disk=_ext4(vmdir / "data.img"),
                        network=[{"type": "user", "mac": MAC}],
                        runner={"/GuestAgent": agent,
                                "/PowerdownHandler": {"repeatInterval": 30}})


def _metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def _login_record(console: Any, user: str) -> int:
    """Write one USER_PROCESS entry (glibc's 384-byte x86-64 ``struct utmp``) for ``user``
    on ttyS0 into ``/run/utmp`` with busybox; returns the login time written."""
    now = int(time.time())
    stamp = "".join(f"\\{(now >> (8 * i)) & 255:03o}" for i in range(4))
    await console.check("dd if=/dev/zero of=/run/utmp bs=384 count=1 2>/dev/null")
    for offset, data in ((0, "\\007"), (4, "\\001"), (8, "ttyS0"), (44, user), (340, stamp)):
        await console.check(f"printf '{data}' | dd of=/run/utmp bs=1 seek={offset} "
                            "conv=notrunc 2>/dev/null")
    return now


async def _status(config: Path, *args: str) -> str:
    """``vmrunner status`` as an operator runs it (exit 0 required)."""
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vmrunner", "status", *args, "-c", str(config),
        stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(cli.communicate(), CMD)
    assert cli.returncode == 0
    return out.decode()


def _warnings(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if r.levelno == logging.WARNING and WARNING in r.message)


async def test_facts_unsupported_and_a_hung_agent(vmdir: Path, guest_image: GuestImage,
                                                 accel: AccelVerdict,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Interfaces, users and filesystems (used bytes follow a write) in the status, the
    refresh answer, the event stream and the metrics; commands the agent blocks are reported
    unsupported and not asked again; a SIGSTOPped qemu-ga is unresponsive (one WARNING), then
    responsive after SIGCONT; stopped again, the shutdown skips it: the ACPI press comes at
    once and no guest-agent rung is climbed."""
    caplog.set_level(logging.DEBUG, logger="vmrunner.protocols.qga.traffic")
    caplog.set_level(logging.INFO, logger="vmrunner.components.guest_agent")
    config = _config(vmdir, guest_image, accel, pingInterval=1, pingTimeout=1,
                     factsInterval=0)
    api = vmdir / "run" / "api.sock"
    async with InProcessRunner(config) as vm:
        rec, con = vm.recorder, vm.console
        await rec.wait_for(RunnerStateChanged, lambda e: e.new is RunState.BOOTED, BOOT)
        await con.wait_ready(BOOT)
        first = await rec.wait_for(GuestFactsUpdated, timeout=EVENT)  # asked at connect
        assert first.facts.filesystems == () and first.facts.users == ()

        # what the guest has now: an address, a mounted ext4 disk, a logged-in user
        assert any("inet 10.0.2.15/24" in line for line in await con.check("tg net-dhcp", CMD))
        await con.check("mkdir -p /mnt/data && mount -t ext4 /dev/vda /mnt/data")
        login = await _login_record(con, "alice")
        code, before = await request(api, "POST", "/guest/refresh")
        assert code == 200, before
        await con.check("dd if=/dev/zero of=/mnt/data/fill bs=1M count=8 2>/dev/null && sync")
        code, body = await request(api, "POST", "/guest/refresh")
        assert code == 200, body
        used_before = json.loads(before)["facts"]["filesystems"][0]["usedBytes"]
        guest = json.loads(body)
        assert guest["agent"] == "responsive" and guest["pingSeconds"] < 1
        facts = guest["facts"]
        eth0 = next(i for i in facts["interfaces"] if i["name"] == "eth0")
        assert eth0["mac"] == MAC
        families = {(a["address"], a["prefix"], a["family"]) for a in eth0["addresses"]}
        assert ("10.0.2.15", 24, "ipv4") in families
        assert any(f == "ipv6" and a.startswith("fe80:") for a, _, f in families), families
        assert [(u["name"], u["loginTime"]) for u in facts["users"]] == [("alice", login)]
        (data,) = facts["filesystems"]
        assert (data["mountpoint"], data["type"], data["name"]) == ("/mnt/data", "ext4", "vda")
        assert 16 * MIB < data["totalBytes"] <= 32 * MIB  # less the metadata
        assert data["usedBytes"] - used_before >= 8 * MIB
        assert facts["unsupported"] == [] and facts["errors"] == []
        assert (await get_json(api, "/status"))["guest"] == guest
        updated = rec.of_type(GuestFactsUpdated)[-1].facts
        assert updated.filesystems is not None and updated.filesystems[0].used_bytes == \
            data["usedBytes"]

        code, text = await request(api, "GET", "/metrics")
        metrics = _metrics(text.decode())
        assert metrics[("vmrunner_guest_agent_responsive", ())] == 1.0
        assert metrics[("vmrunner_guest_filesystem_used_bytes",
                        (("mountpoint", "/mnt/data"), ("type", "ext4")))] == data["usedBytes"]
        assert metrics[("vmrunner_guest_filesystem_size_bytes",
                        (("mountpoint", "/mnt/data"), ("type", "ext4")))] == data["totalBytes"]
        assert metrics[("vmrunner_guest_network_address_info",
                        (("address", "10.0.2.15"), ("family", "ipv4"),
                         ("interface", "eth0")))] == 1.0

        lines = (await _status(config, "--refresh")).splitlines()
        assert "    agent:      responsive" in "\n".join(lines)
        assert any(line.split() == ["eth0:", MAC, "10.0.2.15/24", *line.split()[3:]]
                   for line in lines), lines
        assert any(line.startswith("    /mnt/data:  ext4 on vda, ") for line in lines), lines

        # a hung agent: one WARNING and one event for the whole time it hangs
        await con.check(STOP_QGA)
        hung = await rec.wait_for(GuestAgentUnresponsive, timeout=EVENT)
        assert hung.timeout == 1
        status = await get_json(api, "/status")
        assert status["guest"]["agent"] == "unresponsive"
        code, text = await request(api, "GET", "/metrics")
        assert _metrics(text.decode())[("vmrunner_guest_agent_responsive", ())] == 0.0
        asked = time.monotonic()  # not asked while hung: the last facts, at once
        code, body = await request(api, "POST", "/guest/refresh")
        assert code == 200 and json.loads(body)["facts"] == status["guest"]["facts"]
        assert time.monotonic() - asked < 1.0
        await asyncio.sleep(3)  # three more pings missed: still one WARNING, one event
        assert _warnings(caplog) == 1 and len(rec.of_type(GuestAgentUnresponsive)) == 1
        await con.check("kill -CONT $(cat /run/qemu-ga.pid)")
        await rec.wait_for(GuestAgentResponsive, timeout=EVENT)
        assert (await get_json(api, "/status"))["guest"]["agent"] == "responsive"

        # qemu-ga restarted with guest-get-users blocked: reported unsupported, never re-asked
        connected = len(rec.of_type(GuestAgentConnected))
        await con.check("p=$(cat /run/qemu-ga.pid); kill $p; while kill -0 $p 2>/dev/null; "
                        f"do usleep 100000; done; {QGA} -b guest-get-users")
        await rec.wait_for(GuestAgentConnected,
                           lambda _: len(rec.of_type(GuestAgentConnected)) > connected, EVENT)
        blocked = await rec.wait_for(GuestFactsUpdated, lambda e: e.facts.unsupported != (),
                                     EVENT)
        assert blocked.facts.unsupported == ("guest-get-users",)
        assert blocked.facts.users is None and blocked.facts.errors == ()
        asked = sum("guest-get-users" in r.message for r in caplog.records)
        code, body = await request(api, "POST", "/guest/refresh")
        assert code == 200
        assert json.loads(body)["facts"]["unsupported"] == ["guest-get-users"]
        assert sum("guest-get-users" in r.message for r in caplog.records) == asked
        assert "    not supported by the agent: guest-get-users" in await _status(config)

        # hung again, then TERM: no guest-agent rung, the ACPI button at once
        await con.check(STOP_QGA)
        await rec.wait_for(GuestAgentUnresponsive,
                           lambda _: len(rec.of_type(GuestAgentUnresponsive)) == 2, EVENT)
        stopped = time.monotonic()
        assert vm.runner is not None
        vm.runner.fire(Stop())
        await rec.wait_for(ShutdownRung, lambda e: e.rung is Rung.POWERDOWN, EVENT)
        pressed = time.monotonic() - stopped
        assert await vm.stop() == 0
    print(f"hung agent known: Stop -> ACPI press after {pressed:.3f} s")
    rungs = [e.rung for e in rec.of_type(ShutdownRung)]
    assert Rung.GUEST_AGENT not in rungs and rungs[0] is Rung.POWERDOWN, rungs
    assert pressed < 0.5, f"ACPI after {pressed:.2f} s"
    assert "qemu-ga does not answer" in rec.of_type(ShutdownRung)[0].detail


async def test_agent_hung_just_before_the_shutdown(vmdir: Path, guest_image: GuestImage,
                                                   accel: AccelVerdict) -> None:
    """An agent that hangs after its last ping: the ping before ``guest-shutdown`` finds it
    (within ``pingTimeout``), and the ACPI button follows at once, not after the agent's
    command timeout and the ladder's repeat interval."""
    config = _config(vmdir, guest_image, accel, pingInterval=600, pingTimeout=1)
    async with InProcessRunner(config) as vm:
        rec, con = vm.recorder, vm.console
        await rec.wait_for(RunnerStateChanged, lambda e: e.new is RunState.BOOTED, BOOT)
        await con.wait_ready(BOOT)
        await rec.wait_for(GuestFactsUpdated, timeout=EVENT)
        await con.check(STOP_QGA)
        assert vm.runner is not None
        stopped = time.monotonic()
        vm.runner.fire(Stop())
        await rec.wait_for(ShutdownRung, lambda e: e.rung is Rung.POWERDOWN, EVENT)
        pressed = time.monotonic() - stopped
        assert await vm.stop() == 0
    print(f"hung agent not known yet: Stop -> ACPI press after {pressed:.3f} s")
    rungs = [e.rung for e in rec.of_type(ShutdownRung)]
    assert rungs[:2] == [Rung.GUEST_AGENT, Rung.POWERDOWN], rungs
    assert len(rec.of_type(GuestAgentUnresponsive)) == 1
    assert 1.0 <= pressed < 2.0, f"ACPI after {pressed:.2f} s"
