"""The HTTP side of ``ApiServer`` without a VM: socket mode, routes, the TCP listener's bearer
token, ``POST /powerdown`` firing ``TerminationSignal``.

FAKE: the ``VmPrepared`` event carries a stand-in launch plan (only ``paths.runtime_dir`` is
read by the server); everything else (sockets, HTTP, the bus) is real.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from vmrunner.api.client import probe_main, request
from vmrunner.api.server import ApiServer
from vmrunner.components import BUS
from vmrunner.core import Component, Stop, run
from vmrunner.core.recorder import EventRecorder
from vmrunner.events import TerminationSignal, VmPrepared


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _http(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    return data


async def test_routes_token_and_powerdown(tmp_path: Path) -> None:
    port = _free_port()
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    root = Component(BUS, "Runner")
    api = root.attach(ApiServer())
    recorder = root.attach(EventRecorder())
    api.config = api.config_model.model_validate(
        {"listen": f"127.0.0.1:{port}", "tokenFile": str(token)})
    task = asyncio.ensure_future(run(root))
    try:
        plan: Any = SimpleNamespace(paths=SimpleNamespace(runtime_dir=tmp_path))  # FAKE
        await root.fire(VmPrepared(plan=plan))
        sock = tmp_path / "api.sock"
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600

        assert (await request(sock, "GET", "/live"))[0] == 200
        assert (await request(sock, "GET", "/ready"))[0] == 503
        assert (await request(sock, "GET", "/nothing"))[0] == 404
        assert (await request(sock, "POST", "/status"))[0] == 405
        config = tmp_path / "vm.yaml"  # `vmrunner probe` finds the socket through the config
        config.write_text(f'"/Runner":\n  runtimeDir: {tmp_path}\n  vm:\n    name: probe\n')
        assert await asyncio.to_thread(probe_main, config, "live") == 0
        assert await asyncio.to_thread(probe_main, config, "ready") == 1

        get = b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        assert (await _http(port, get + b"\r\n")).startswith(b"HTTP/1.1 401 ")
        wrong = get + b"Authorization: Bearer nope\r\n\r\n"
        assert (await _http(port, wrong)).startswith(b"HTTP/1.1 401 ")
        right = await _http(port, get + b"Authorization: Bearer s3cret\r\n\r\n")
        assert right.startswith(b"HTTP/1.1 200 ") and b'"state"' in right
        assert (await _http(port, b"NONSENSE\r\n\r\n")).startswith(b"HTTP/1.1 400 ")

        status, _ = await request(sock, "POST", "/powerdown")
        assert status == 202
        fired = await recorder.wait_for(TerminationSignal, None, 5)
        assert fired.signal == signal.SIGTERM
    finally:
        root.fire(Stop())
        await asyncio.wait_for(task, 10)
    assert not (tmp_path / "api.sock").exists()
    assert await asyncio.to_thread(probe_main, tmp_path / "vm.yaml", "live") == 1
