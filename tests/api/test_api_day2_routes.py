"""The day-2 routes without a VM: wiring, bad bodies, refusals before QEMU runs, the bearer
token; and the pure helpers (finding a disk's node, a PNG's size).

FAKE: the ``VmPrepared`` event carries a stand-in launch plan (only the paths and
``config.vm.rtc_base`` are read); the server, the day-2 components and the bus are real.
What they do with a real QEMU and guest is in test_api_day2.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from vmrunner.api.client import request
from vmrunner.api.server import ApiServer
from vmrunner.components import BUS
from vmrunner.components.disk_resize import DiskResizer, find_disk
from vmrunner.components.fsfreeze import FsFreezer
from vmrunner.components.pause_control import PauseController
from vmrunner.components.screenshot import Screenshotter, png_size
from vmrunner.core import Component, Stop, run
from vmrunner.core.recorder import EventRecorder
from vmrunner.events import ExecuteQmp, VmPrepared
from vmrunner.events.guest import GuestAgentRequest


async def _post(sock: Path, target: str, body: bytes = b"") -> tuple[int, dict[str, Any]]:
    status, data = await request(sock, "POST", target, body)
    return status, json.loads(data)


async def test_day2_routes_refuse_before_the_vm_runs_and_check_their_bodies(
        tmp_path: Path) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = int(probe.getsockname()[1])
    probe.close()
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    token.chmod(0o600)
    root = Component(BUS, "Runner")
    api = root.attach(ApiServer())
    for part in (PauseController(), DiskResizer(), FsFreezer(), Screenshotter()):
        root.attach(part)
    recorder = root.attach(EventRecorder())
    api.config = api.config_model.model_validate(
        {"listen": f"127.0.0.1:{port}", "tokenFile": str(token)})
    task = asyncio.ensure_future(run(root))
    try:
        plan: Any = SimpleNamespace(  # FAKE
            paths=SimpleNamespace(runtime_dir=tmp_path),
            config=SimpleNamespace(vm=SimpleNamespace(rtc_base="utc")))
        await root.fire(VmPrepared(plan=plan))
        sock = tmp_path / "api.sock"

        for target, body in (("/pause", b""), ("/resume", b"{}"),
                             ("/resize-disk", b'{"drive": "disk0"}'),
                             ("/fsfreeze", b'{"timeout": 5}'), ("/fsthaw", b""),
                             ("/screenshot", b"")):
            status, answer = await _post(sock, target, body)
            assert status == 409, (target, answer)
            assert answer["outcome"] in ("rejected", "failed"), (target, answer)
            assert "the VM is starting, not running" in answer["detail"], (target, answer)
            assert (await request(sock, "GET", target))[0] == 405
        # nothing reached QEMU or the agent
        assert not recorder.of_type(ExecuteQmp) and not recorder.of_type(GuestAgentRequest)

        assert await _post(sock, "/resize-disk") == (
            400, {"error": "drive: a disk's name (disk0...) or path is needed"})
        assert await _post(sock, "/pause", b'{"force": true}') == (
            400, {"error": "/pause takes no key 'force'"})
        status, answer = await _post(sock, "/fsfreeze", b'{"timeout": 0}')
        assert status == 400 and answer["error"].startswith("timeout: 0 is not a number"), answer
        status, answer = await _post(sock, "/fsfreeze", b'{"timeout": "60"}')
        assert status == 400 and "timeout: '60'" in answer["error"], answer
        status, answer = await _post(sock, "/fsfreeze", b"[1]")
        assert status == 400 and answer["error"] == "the body must be a JSON object", answer

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /pause HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                     b"Connection: close\r\n\r\n")
        await writer.drain()
        assert (await asyncio.wait_for(reader.read(65536), 5)).startswith(b"HTTP/1.1 401 ")
        writer.close()
    finally:
        root.fire(Stop())
        await asyncio.wait_for(task, 10)


def test_find_disk_by_node_name_or_path(tmp_path: Path) -> None:
    image = tmp_path / "a.raw"
    image.write_bytes(b"")
    (tmp_path / "link.raw").symlink_to(image)
    nodes: list[dict[str, Any]] = [
        {"node-name": "disk0-file", "drv": "file", "file": str(image)},
        {"node-name": "disk0", "drv": "raw", "file": str(image)},
        {"node-name": "cd0", "drv": "raw", "file": "/x.iso"},
    ]
    assert find_disk(nodes, "disk0") is nodes[1]
    assert find_disk(nodes, str(tmp_path / "link.raw")) is nodes[1]  # resolved, format node
    assert find_disk(nodes, "cd0") is None  # a CD is no disk
    assert find_disk(nodes, "/x.iso") is None
    assert find_disk(nodes, "disk0-file") is None


def test_png_size_reads_the_header() -> None:
    header = struct.pack(">IIBBBBB", 720, 400, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(header)) + b"IHDR" + header + struct.pack(
        ">I", zlib.crc32(b"IHDR" + header))
    assert png_size(b"\x89PNG\r\n\x1a\n" + chunk) == (720, 400)
    assert png_size(b"P6\n720 400\n255\n") is None
    assert png_size(b"\x89PNG\r\n\x1a\n") is None


def test_the_cli_waits_longer_than_a_freeze_may_take() -> None:
    from vmrunner.components.fsfreeze import AGENT_TIMEOUT
    from vmrunner.daemon.commands.day2 import REQUEST_TIMEOUT
    from vmrunner.protocols.qga import GuestAgent

    status_query = GuestAgent().timeout  # guest-fsfreeze-status after the freeze
    assert AGENT_TIMEOUT + status_query < REQUEST_TIMEOUT
