"""A guest QEMU pauses on its own is visible, and the shutdown ladder does not wait for it
(issue 15, item 5): the VM's disk lives on a real 16 MiB tmpfs, the guest writes more than
that, QEMU's default ``werror=enospc`` pauses the VM (``BLOCK_IO_ERROR`` nospace, ``STOP``).

Then: a WARNING names the disk and the cause, ``GET /status`` has ``paused`` (``io-error``)
and the failed writes per drive (``ioErrors``), ``/metrics`` counts them
(``vmrunner_block_io_errors_total``), the event stream has ``DiskIoError``, ``GET /ready`` is
503, and a TERM goes straight to ``terminate`` (exit 3) instead of pressing a button the
paused guest cannot see for the whole ``powerdownTimeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vmrunner.api.client import api_socket, follow, format_status, get_json, request
from vmrunner.components.exit_codes import ExitCode
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.logwait import wait_log
from vmrunner.testing.runnerproc import RunnerProcess, boot_runner, guest_config

pytestmark = pytest.mark.guest

TIMEOUT = 60
"""powerdownTimeout: the test fails if the ladder waits for it."""


async def _status_when(sock: Path, wanted: str, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while True:
        doc: dict[str, Any] = await get_json(sock, "/status")
        if wanted in str(doc.get("paused")) or time.monotonic() > deadline:
            return doc
        await asyncio.sleep(0.2)


async def test_a_guest_paused_on_a_full_disk_is_visible_and_not_waited_for(
        base: Path, tmpfs: Callable[[str], Path], runners: list[RunnerProcess],
        guest_image: GuestImage, accel_name: str) -> None:
    disk = tmpfs("size=16m") / "disk.raw"
    with disk.open("wb") as sparse:
        sparse.truncate(64 * 1024 * 1024)
    config = guest_config(base, guest_image, accel=accel_name, disk=disk,
                          powerdown_timeout=TIMEOUT)
    runner = await boot_runner(runners, config)
    sock = api_socket(config)
    records: list[dict[str, Any]] = []

    async def collect() -> None:
        async for record in follow(sock, since=0):
            records.append(record)

    collector = asyncio.ensure_future(collect())
    try:
        await _fill_the_disk(runner, sock, records)
    finally:
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await collector


async def _fill_the_disk(runner: RunnerProcess, sock: Path,
                         records: list[dict[str, Any]]) -> None:
    assert (await request(sock, "GET", "/ready"))[0] == 200
    assert runner.console is not None
    await runner.console.send_line(
        "@900 dd if=/dev/urandom of=/dev/vda bs=1M count=40 conv=fsync")  # never ends

    doc = await _status_when(sock, "io-error", 60)
    assert doc["paused"] is not None and doc["paused"]["reason"] == "io-error", (
        runner.console.tail(), runner.log_tail())
    assert "no space left on the host" in doc["paused"]["detail"], doc
    assert doc["state"] == "booted", doc
    await wait_log(runner.log, "QEMU paused the guest (io-error)", timeout=5)
    assert "disk disk0: write failed (no space left on the host); QEMU's action: stop" in (
        runner.log_text())
    errors = doc["ioErrors"]
    assert [(e["drive"], e["operation"], e["nospace"], e["action"]) for e in errors] == [
        ("disk0", "write", True, "stop")], doc
    assert errors[0]["count"] >= 1 and abs(errors[0]["lastTime"] - time.time()) < 120
    assert (f"I/O ERRORS:   disk0 write: {errors[0]['count']} (no space left on the host; "
            "QEMU's action: stop)") in format_status(doc)
    metrics = (await request(sock, "GET", "/metrics"))[1].decode()
    assert f'vmrunner_block_io_errors_total{{drive="disk0",operation="write"}} ' \
        f'{float(errors[0]["count"])}' in metrics, metrics
    failed = [r["data"] for r in records if r["type"] == "DiskIoError"]
    assert failed and failed[0] == {"drive": "disk0", "operation": "write", "action": "stop",
                                    "nospace": True, "reason": failed[0]["reason"]}, failed
    status, body = await request(sock, "GET", "/ready")
    assert status == 503 and b'"paused": "io-error"' in body, body

    sent = time.monotonic()
    runner.signal(signal.SIGTERM)
    code = await runner.wait(30)
    elapsed = time.monotonic() - sent
    assert code == ExitCode.FORCED_STOP, runner.log_tail()
    assert elapsed < 15, elapsed  # not the 60 s powerdownTimeout
    log = runner.log_text()
    assert "shutdown rung terminate: QEMU has paused the guest (io-error), it cannot power off" \
        in log, log[-3000:]
    assert "shutdown rung powerdown" not in log
