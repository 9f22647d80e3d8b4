"""Networking, observed from inside the real guest (issue 18, item 4).

User networking: the guest's virtio-net NIC gets its address from QEMU's built-in DHCP server
(busybox udhcpc) and talks to a TCP server the test runs on the host's
127.0.0.1, reached from the guest as 10.0.2.2 (QEMU's user-network host address).

Tap networking: two runners (subprocesses entered into the test's own network and mount
namespaces) put their NICs on a bridge there through qemu-bridge-helper; the guests, on static
addresses, ping each other; the first runner's metrics count the packets on its tap.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from vmrunner.api.client import request
from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.inproc import InProcessRunner
from vmrunner.testing.prereq import require_tools
from vmrunner.testing.runnerproc import RunnerProcess, guest_config, scratch_dir

pytestmark = pytest.mark.guest

BOOT = 60.0
CMD = 30.0


@pytest.fixture
def vmdir() -> Iterator[Path]:
    with scratch_dir("vnu") as path:
        yield path


async def test_user_network_dhcp_and_a_host_server(vmdir: Path, guest_image: GuestImage,
                                                   accel: AccelVerdict) -> None:
    requests: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readline())
        writer.write(b"echo " + requests[-1])
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = guest_config(vmdir, guest_image, accel=str(accel.accel),
                          network=[{"type": "user"}])
    async with server, InProcessRunner(config) as vm:
        await vm.console.wait_ready(BOOT)
        lease = await vm.console.check("tg net-dhcp", CMD)
        assert any("inet 10.0.2.15/24" in line for line in lease), lease
        assert await vm.console.check(f"tg net-send 10.0.2.2 {port} hello", CMD) == [
            "echo hello"]
    assert requests == [b"hello\n"]


NS_SETUP = """
set -e
ip link set lo up
ip link add {br} type bridge
ip link set {br} up
mount -t tmpfs tmpfs {scratch}
mkdir {scratch}/upper {scratch}/work
mount -t overlay overlay -o lowerdir=/etc,upperdir={scratch}/upper,workdir={scratch}/work /etc
mkdir -p /etc/qemu
echo 'allow {br}' > /etc/qemu/bridge.conf
echo ready
exec sleep 600
"""


async def test_two_vms_on_a_tap_bridge_reach_each_other(
        vmdir: Path, guest_image: GuestImage, accel: AccelVerdict) -> None:
    """The bridge exists only in a network namespace the test makes; bridge.conf only in a
    private mount namespace (an overlay on /etc there): the host is not touched."""
    require_tools("unshare", "nsenter", "ip", "/usr/lib/qemu/qemu-bridge-helper")
    scratch = vmdir / "etc-overlay"
    scratch.mkdir()
    holder = await asyncio.create_subprocess_exec(
        "unshare", "--net", "--mount", "--propagation", "private", "sh", "-c",
        NS_SETUP.format(br="tgbr0", scratch=scratch),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE)
    runners: list[RunnerProcess] = []
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 10) == b"ready\n"
        wrapper = vmdir / "python-in-ns"
        wrapper.write_text(f"#!/bin/sh\nexec nsenter --net=/proc/{holder.pid}/ns/net "
                           f"--mount=/proc/{holder.pid}/ns/mnt -- {sys.executable} \"$@\"\n")
        wrapper.chmod(0o755)
        for n in (1, 2):
            base = vmdir / f"vm{n}"
            base.mkdir()
            config = guest_config(base, guest_image, accel=str(accel.accel), name=f"tg{n}",
                                  network=[{"type": "tap", "bridge": "tgbr0",
                                            "mac": f"52:54:00:00:00:0{n}"}])
            runners.append(RunnerProcess(config, python=str(wrapper)))
        await asyncio.gather(*(r.start() for r in runners))
        await asyncio.gather(*(r.wait_ready(BOOT) for r in runners))
        for n, r in enumerate(runners, 1):
            assert r.console is not None
            await r.console.check(f"tg net-static 192.0.2.{n}/24", CMD)
        assert runners[0].console is not None and runners[1].console is not None
        out = await runners[0].console.check("ping -c 2 -w 20 192.0.2.2", CMD)
        assert any("2 packets received" in line for line in out), out
        out = await runners[1].console.check("ping -c 2 -w 20 192.0.2.1", CMD)
        assert any("2 packets received" in line for line in out), out
        # the tap's host-side counters in the metrics, read in QEMU's network namespace
        code, body = await request(runners[0].runtime_dir / "api.sock", "GET", "/metrics")
        assert code == 200
        sent = {s.labels["interface"]: s.value
                for f in text_string_to_metric_families(body.decode())
                for s in f.samples if s.name == "vmrunner_network_receive_packets_total"}
        assert len(sent) == 1 and next(iter(sent)).startswith("tap"), sent
        assert next(iter(sent.values())) >= 4  # two pings and two replies at least
        for r in runners:
            r.signal()
        assert [await r.wait(60) for r in runners] == [0, 0]
    finally:
        for r in runners:
            await r.close()
        with contextlib.suppress(ProcessLookupError):
            holder.kill()
        await holder.wait()
