"""Guest kernel panics (issue 16, item 3): the test guest panics for real
(``echo c > /proc/sysrq-trigger``), its kernel tells QEMU through the standard VM type's
``pvpanic`` device, and ``/Runner/vm/onPanic`` decides what follows.

One boot serves all three policies, changed live in the file between the panics:

1. ``reset``: the guest boots again in the same QEMU; a WARNING, the status (``panics``), the
   metrics and the event stream (``GuestPanicked``) say so;
2. ``pause``: QEMU holds the guest at the panic (``paused``: ``guest-panicked``, ``/ready``
   503, no reboot); ``POST /reset`` boots it again (the runner sends ``cont``);
3. ``stop``: the runner ends with exit code 8 (``GUEST_PANICKED``), straight through
   ``terminate`` (a panicked guest cannot power off).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vmrunner.api.client import api_socket, follow, format_status, get_json, request
from vmrunner.components.exit_codes import ExitCode
from vmrunner.testing.console import READY, GuestConsole
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.logwait import wait_log
from vmrunner.testing.runnerproc import RunnerProcess, boot_runner, guest_config

pytestmark = pytest.mark.guest

PANIC = "@900 echo c > /proc/sysrq-trigger"
"""Sent as a console line: the panicking shell never answers, so ``run`` cannot be used."""


async def _status_when(sock: Path, wanted: Callable[[dict[str, Any]], bool],
                       timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while True:
        doc: dict[str, Any] = await get_json(sock, "/status")
        if wanted(doc) or time.monotonic() > deadline:
            return doc
        await asyncio.sleep(0.2)


async def _panic(console: GuestConsole) -> int:
    """Make the guest's kernel panic; the console position before it."""
    mark = console.mark()
    await console.send_line(PANIC)
    return mark


async def _set_policy(base: Path, image: GuestImage, accel: str, runner: RunnerProcess,
                      old: str, new: str) -> None:
    """Change ``onPanic`` in the file and wait until QEMU has the new action."""
    guest_config(base, image, accel=accel, onPanic=new)
    await wait_log(runner.log, f"/Runner/vm/onPanic: {old!r} → {new!r}: live", timeout=10)
    await wait_log(runner.log, f"onPanic {new}: QEMU's panic action is ", timeout=10)


async def test_each_policy_on_a_real_guest_panic(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    config = guest_config(base, guest_image, accel=accel_name, onPanic="reset")
    runner = await boot_runner(runners, config)
    console = runner.console
    assert console is not None
    sock = api_socket(config)
    records: list[dict[str, Any]] = []

    async def collect() -> None:
        async for record in follow(sock, since=0):
            records.append(record)

    collector = asyncio.ensure_future(collect())
    try:
        # 1. reset: the guest boots again, in the same QEMU
        qemu = runner.pid_of("qemu")
        mark = await _panic(console)
        await console.wait_for(READY, since=mark, timeout=90)
        doc = await _status_when(sock, lambda d: d["panics"]["resets"] >= 1, 10)
        panics = doc["panics"]
        assert panics["count"] == 1 and panics["resets"] == 1, (doc, runner.log_tail())
        assert panics["policy"] == "reset"
        assert panics["last"]["action"] == "run" and panics["last"]["info"] is None
        assert abs(panics["last"]["time"] - time.time()) < 120
        assert doc["paused"] is None and doc["state"] in ("booting", "booted"), doc
        assert runner.pid_of("qemu") == qemu and doc["qemuPid"] == qemu
        assert ("the guest's kernel panicked (no detail from the panic device; QEMU: run); "
                "onPanic reset: resetting the VM") in runner.log_text()
        metrics = (await request(sock, "GET", "/metrics"))[1].decode()
        assert "vmrunner_guest_panics_total 1.0" in metrics
        assert "vmrunner_guest_panic_resets_total 1.0" in metrics
        panicked = [r for r in records if r["type"] == "GuestPanicked"]
        assert [r["data"]["policy"] for r in panicked] == ["reset"], records[-20:]
        assert panicked[0]["data"]["action"] == "run"
        await console.check("true")  # the new boot serves commands

        # 2. pause (changed live): QEMU holds the guest; a reset boots it again
        await _set_policy(base, guest_image, accel_name, runner, "reset", "pause")
        mark = await _panic(console)
        doc = await _status_when(sock, lambda d: d["paused"] is not None, 30)
        assert doc["paused"] is not None and doc["paused"]["reason"] == "guest-panicked", (
            doc, runner.log_tail())
        assert doc["panics"]["count"] == 2 and doc["panics"]["resets"] == 1, doc
        assert doc["panics"]["last"]["action"] == "pause"
        text = format_status(doc)
        assert "PAUSED:       by QEMU (guest-panicked)" in text, text
        assert "PANICS:       2, last " in text and "(onPanic pause, 1 resets)" in text, text
        status, body = await request(sock, "GET", "/ready")
        assert status == 503 and b'"paused": "guest-panicked"' in body, body
        await wait_log(runner.log, "onPanic pause: QEMU keeps the guest paused", timeout=5)
        await asyncio.sleep(2)  # held, not rebooting (panic=-1 would reboot at once)
        assert not any(READY.search(line) for line in console.lines[mark:]), console.tail()
        assert (await get_json(sock, "/status"))["paused"] is not None
        status, body = await request(sock, "POST", "/reset")
        assert status == 200, body
        await console.wait_for(READY, since=mark, timeout=90)
        doc = await _status_when(sock, lambda d: d["paused"] is None, 10)
        assert doc["paused"] is None, doc
        assert "the panicked guest was reset and runs again" in runner.log_text()
        assert (await request(sock, "GET", "/ready"))[0] == 200

        # 3. stop (changed live): exit code 8, through terminate
        await _set_policy(base, guest_image, accel_name, runner, "pause", "stop")
        await _panic(console)
        code = await runner.wait(60)
        log = runner.log_text()
        assert code == ExitCode.GUEST_PANICKED, log[-3000:]
        assert "onPanic stop: stopping the runner (exit code 8, GUEST_PANICKED)" in log
        assert ("shutdown rung terminate: QEMU has paused the guest (guest-panicked), it cannot "
                "power off") in log, log[-3000:]
        assert "shutdown rung guest-agent" not in log and "shutdown rung powerdown" not in log
        assert [r["data"]["policy"] for r in records if r["type"] == "GuestPanicked"] == [
            "reset", "pause", "stop"]
    finally:
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await collector
