"""A frozen QEMU (SIGSTOP) during the shutdown ladder: every rung is visible at once (issue 15).

QMP stays connected but never answers ``system_powerdown``. The ``powerdown`` rung must be
logged and in ``GET /status`` within a second of the TERM (with the reason the runner
waits), a WARNING must follow while QEMU stays silent, and the deadline must still force the
stop (exit 3) with nothing left behind. See docs/design/reliability.md.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from vmrunner.api.client import api_socket, get_json
from vmrunner.components.exit_codes import ExitCode
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.logwait import wait_log
from vmrunner.testing.runnerproc import (
    RunnerProcess,
    boot_runner,
    guest_config,
    process_alive,
    wait_gone,
)

pytestmark = pytest.mark.guest

TIMEOUT = 5
KILL_GRACE = 2


async def test_frozen_qemu_shows_every_rung_at_once(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    config = guest_config(base, guest_image, accel=accel_name, powerdown_timeout=TIMEOUT,
                          knobs=("tg.qga=0",), useTpm=True,
                          runner={"/PowerdownHandler": {"killGrace": KILL_GRACE}})
    runner = await boot_runner(runners, config)
    sock = api_socket(config)
    qemu, swtpm = runner.pid_of("qemu"), runner.pid_of("swtpm")
    assert qemu is not None and swtpm is not None
    os.kill(qemu, signal.SIGSTOP)
    try:
        sent = time.monotonic()
        runner.signal(signal.SIGTERM)
        # the first rung, at once, saying why the runner waits
        await wait_log(runner.log, "shutdown rung powerdown: system_powerdown (ACPI power "
                       "button) sent; QEMU has not answered yet", timeout=1.0)
        doc: dict[str, Any] = await get_json(sock, "/status")
        assert time.monotonic() - sent < 1.0
        shutdown = doc["shutdown"]
        assert doc["state"] == "terminating", doc
        assert (shutdown["rung"], shutdown["rungs"]) == ("powerdown", ["powerdown"]), doc
        assert "QEMU has not answered yet" in shutdown["detail"], doc
        assert TIMEOUT - 1.5 < shutdown["remaining"] <= TIMEOUT, doc

        # a few seconds of silence: a WARNING naming the time left, and the status says so
        await wait_log(runner.log, "QEMU has not answered system_powerdown for 2 s", timeout=4)
        assert "the forced stop follows in " in runner.log_text()
        doc = await get_json(sock, "/status")
        assert "has not answered for" in doc["shutdown"]["detail"], doc
        assert doc["shutdown"]["rung"] == "powerdown", doc

        # the deadline still forces the stop
        code = await runner.wait(TIMEOUT + KILL_GRACE + 10)
        elapsed = time.monotonic() - sent
    finally:
        if process_alive(qemu):
            os.kill(qemu, signal.SIGKILL)
    assert code == ExitCode.FORCED_STOP, runner.log_tail()
    assert TIMEOUT + KILL_GRACE - 0.5 < elapsed < TIMEOUT + KILL_GRACE + 5, elapsed
    log = runner.log_text()
    for rung in ("powerdown", "terminate", "kill", "cleanup"):
        assert f"shutdown rung {rung}" in log, log
    assert await wait_gone(qemu, 1) and await wait_gone(swtpm, 3)
