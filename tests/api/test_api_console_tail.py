"""``GET /console/tail`` without a VM: 404 when no component keeps a serial console, 400 for
a bad ``bytes``. (The bytes themselves: tests/live/test_live_serial_console.py, real guest.)

FAKE: the ``VmPrepared`` event carries a stand-in launch plan (only ``paths.runtime_dir`` is
read by the server); the server, the socket and the bus are real.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from vmrunner.api.client import request
from vmrunner.api.server import ApiServer
from vmrunner.components import BUS
from vmrunner.core import Component, Stop, run
from vmrunner.events import VmPrepared


async def test_console_tail_without_a_serial_console_and_bad_queries(tmp_path: Path) -> None:
    root = Component(BUS, "Runner")
    root.attach(ApiServer())
    task = asyncio.ensure_future(run(root))
    try:
        plan: Any = SimpleNamespace(paths=SimpleNamespace(runtime_dir=tmp_path))  # FAKE
        await root.fire(VmPrepared(plan=plan))
        sock = tmp_path / "api.sock"
        status, body = await request(sock, "GET", "/console/tail")
        assert status == 404 and b"keeps no serial console" in body
        for query in ("bytes=-1", "bytes=%C2%B2", "bytes=1&bytes=2", "lines=3"):
            status, body = await request(sock, "GET", f"/console/tail?{query}")
            assert status == 400, (query, body)
        assert (await request(sock, "POST", "/console/tail"))[0] == 405
    finally:
        root.fire(Stop())
        await asyncio.wait_for(task, 10)
