"""SIGHUP and SIGUSR1 on ``vmrunner run`` (issue 15): handled deliberately, never fatal.

Before, both killed the runner without a log line (and the VM with it, through
``PR_SET_PDEATHSIG``). Now SIGHUP (a closed SSH terminal, or ``kill -HUP``) re-reads the
configuration file and SIGUSR1 logs the status; the VM keeps running. See docs/design/runner.md
("Signals").
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from vmrunner.api.client import api_socket, get_json
from vmrunner.components.exit_codes import ExitCode
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.logwait import wait_log
from vmrunner.testing.runnerproc import RunnerProcess, boot_runner, guest_config

pytestmark = pytest.mark.guest

CMD = 20.0


async def _still_running(runner: RunnerProcess) -> None:
    assert runner.console is not None
    assert (await runner.console.run("true", CMD)).rc == 0, runner.log_tail()
    assert runner.proc is not None and runner.proc.returncode is None


async def test_sigusr1_logs_the_status_and_sighup_rereads_without_stopping(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    config = guest_config(base, guest_image, accel=accel_name)
    runner = await boot_runner(runners, config)

    runner.signal(signal.SIGUSR1)
    await wait_log(runner.log, "SIGUSR1 received: status", timeout=5)
    await _still_running(runner)
    dump = runner.log_text().split("SIGUSR1 received: status", 1)[1]
    assert "VM tg: " in dump and "QEMU pid:" in dump and "vCPUs:" in dump, dump

    runner.signal(signal.SIGHUP)
    await wait_log(runner.log, "SIGHUP received: re-reading the configuration file", timeout=5)
    await wait_log(runner.log, "re-read (SIGHUP): unchanged", timeout=5)
    await _still_running(runner)

    # repeated, too: neither is ever a termination signal (one at a time: the kernel
    # merges a pending signal with the same one sent again)
    for count in (2, 3):
        runner.signal(signal.SIGUSR1)
        await wait_log(runner.log, "SIGUSR1 received: status", count=count, timeout=5)
        runner.signal(signal.SIGHUP)
        await wait_log(runner.log, "re-read (SIGHUP): unchanged", count=count, timeout=5)
    await _still_running(runner)
    assert "shutdown rung" not in runner.log_text()

    runner.signal(signal.SIGTERM)
    assert await runner.wait(30) == ExitCode.OK, runner.log_tail()


async def test_sighup_applies_an_edit_inotify_has_not_reported(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    """The file is rewritten through a descriptor that stays open: the watcher reports
    content changes on close only (a half-written file is never read), and on a network
    file system not at all. SIGHUP makes the runner read it now."""
    knobs = ("tg.powerbtn=ignore", "tg.qga=0")
    config = guest_config(base, guest_image, accel=accel_name, powerdown_timeout=60,
                          knobs=knobs)
    runner = await boot_runner(runners, config)
    sock = api_socket(config)
    before: dict[str, Any] = await get_json(sock, "/status")
    text = config.read_text()
    assert "powerdownTimeout: 60\n" in text
    with config.open("r+") as held:
        held.write(text.replace("powerdownTimeout: 60\n", "powerdownTimeout: 3\n"))
        held.truncate()
        held.flush()
        await runner.wait(0.5)  # the watcher would have seen it by now, if it could
        assert "configuration changed" not in runner.log_text()

        runner.signal(signal.SIGHUP)
        await wait_log(runner.log, "SIGHUP received: re-reading the configuration file",
                       timeout=5)
        await wait_log(runner.log, "configuration changed", timeout=5)
        after: dict[str, Any] = await get_json(sock, "/status")
        assert after["config"]["generation"] == before["config"]["generation"] + 1, after
        await _still_running(runner)

        # applied: the guest ignores the power button, so the stop is forced after 3 s
        sent = time.monotonic()
        runner.signal(signal.SIGTERM)
        code = await runner.wait(20)
        elapsed = time.monotonic() - sent
    assert code == ExitCode.FORCED_STOP, runner.log_tail()
    assert 2.0 <= elapsed <= 5.5, f"forced stop after {elapsed:.2f} s, expected 3 ± 1"
