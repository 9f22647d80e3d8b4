"""``vmrunner run`` under systemd's protocols, seen from outside (docs/guide/operations.md).

A real runner process boots the test guest with ``NOTIFY_SOCKET`` pointing at a datagram
socket this test binds (the test's receiver, standing in for systemd's: no systemd runs in
the test container), ``WATCHDOG_USEC`` set and ``JOURNAL_STREAM`` naming its log file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest

from vmrunner.api.sdnotify import EXTEND_MARGIN
from vmrunner.components.exit_codes import ExitCode
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.runnerproc import RunnerProcess, boot_runner, guest_config

pytestmark = pytest.mark.guest

POWERDOWN = 20
"""powerdownTimeout of the guest (s): the bound of the first EXTEND_TIMEOUT_USEC."""


async def _receive(sock: socket.socket, notes: list[tuple[float, str]],
                   ready: asyncio.Event) -> None:
    """Append each datagram (with its arrival time) to ``notes`` until cancelled; set
    ``ready`` on ``READY=1``."""
    loop = asyncio.get_running_loop()
    while True:
        data = (await loop.sock_recv(sock, 4096)).decode()
        notes.append((time.monotonic(), data))
        if "READY=1" in data.split("\n"):
            ready.set()


def _lines(notes: list[tuple[float, str]], prefix: str) -> list[tuple[float, str]]:
    return [(at, line) for at, note in notes for line in note.split("\n")
            if line.startswith(prefix)]


async def test_ready_watchdog_extend_timeout_and_journal_lines(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    config = guest_config(base, guest_image, accel=accel_name, powerdown_timeout=POWERDOWN)
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(base / "notify"))
    receiver.setblocking(False)
    log = base / "runner.log"
    log.touch()
    info = log.stat()
    env = {**os.environ, "NOTIFY_SOCKET": str(base / "notify"), "WATCHDOG_USEC": "1000000",
           "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
    env.pop("WATCHDOG_PID", None)
    notes: list[tuple[float, str]] = []
    ready = asyncio.Event()
    task = asyncio.ensure_future(_receive(receiver, notes, ready))
    try:
        runner = await boot_runner(runners, config, env=env)
        await asyncio.wait_for(ready.wait(), 30)
        assert _lines(notes, f"MAINPID={runner.proc.pid if runner.proc else 0}")

        # WATCHDOG=1 every half of WATCHDOG_USEC (0.5 s), from start on
        before = len(_lines(notes, "WATCHDOG=1"))
        await asyncio.sleep(2.2)
        pings = _lines(notes, "WATCHDOG=1")
        assert 2 <= len(pings) - before <= 6, pings
        gaps = [b - a for (a, _), (b, _) in zip(pings[before:], pings[before + 1:], strict=False)]
        assert all(0.3 < gap < 1.5 for gap in gaps), gaps  # 0.5 s, on a loaded host

        runner.signal(signal.SIGTERM)
        assert await runner.wait(POWERDOWN + 15) == ExitCode.OK, runner.log_tail()
        await asyncio.sleep(0.2)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        receiver.close()

    assert _lines(notes, "STOPPING=1"), notes
    extends = [int(line.split("=", 1)[1]) for _, line in _lines(notes, "EXTEND_TIMEOUT_USEC=")]
    assert extends, notes
    # the first rung (guest-agent or powerdown) extends by the whole ladder plus the margin
    assert (POWERDOWN - 2 + EXTEND_MARGIN) * 1e6 <= extends[0] <= (POWERDOWN + EXTEND_MARGIN) * 1e6
    assert all(EXTEND_MARGIN * 1e6 <= usec <= extends[0] for usec in extends), extends

    # journald lines: a <N> priority, no timestamp (journald adds its own)
    text = log.read_text()
    ours = [line for line in text.splitlines() if re.match(r"<\d>", line)]
    assert any(line.startswith("<6>INFO vmrunner") for line in ours), text[-2000:]
    assert any(line.startswith("<7>DEBUG ") for line in ours), text[-2000:]
    assert not re.search(r"^\d{4}-\d\d-\d\d", text, re.MULTILINE), text[-2000:]
    for line in ours:
        assert re.match(r"<(3|4|6|7)>(ERROR|WARNING|INFO|DEBUG) ", line), line
        level = line[3:].split(" ", 1)[0]
        assert line[1] == {"ERROR": "3", "WARNING": "4", "INFO": "6", "DEBUG": "7"}[level]
