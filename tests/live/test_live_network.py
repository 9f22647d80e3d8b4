"""Networking, observed from inside the real guest (issue 18, item 4).

User networking: the guest's virtio-net NIC gets its address from QEMU's built-in DHCP server
(busybox udhcpc) and talks to a TCP server the test runs on the host's
127.0.0.1, reached from the guest as 10.0.2.2 (QEMU's user-network host address).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.inproc import InProcessRunner
from vmrunner.testing.runnerproc import guest_config, scratch_dir

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
