"""One runner per VM (issue 15, item 1): the lock on ``dataDir/runner.lock`` and
``runtimeDir/runner.lock`` (:mod:`vmrunner.vmtypes.lock`).

Real runners as subprocesses on the real test guest. A second runner on the same
configuration exits with ``ALREADY_RUNNING`` naming the first's pid, and leaves every file of
the first as it was (compared by inode, size and mtime); a lock left by a killed runner does
not block the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest

from vmrunner.components.exit_codes import ExitCode
from vmrunner.testing.console import GuestConsole
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.runnerproc import (
    RunnerProcess,
    boot_runner,
    connect_listening,
    guest_config,
    process_alive,
    wait_gone,
)
from vmrunner.vmtypes.lock import LOCK_NAME

pytestmark = pytest.mark.guest

BOOT = 60.0
CMD = 20.0
SECOND = 30.0
"""Seconds a refused runner may take (a Python start on a loaded machine; it needs < 1 s)."""

Snapshot = dict[str, tuple[int, int, int, int]]


def snapshot(*directories: Path) -> Snapshot:
    """Every entry of ``directories``: (inode, size, mtime, ctime in ns), symlinks not
    followed (tmpfs reuses a freed inode number at once: the ctime tells a new file)."""
    found = {}
    for directory in directories:
        for entry in directory.iterdir():
            info = os.lstat(entry)
            found[f"{directory.name}/{entry.name}"] = (info.st_ino, info.st_size,
                                                       info.st_mtime_ns, info.st_ctime_ns)
    return found


def second_runner(runners: list[RunnerProcess], config: Path, name: str) -> RunnerProcess:
    """Another runner on ``config`` with its own log ``base/<name>.log``."""
    runner = RunnerProcess(config)
    runner.log = config.parent / f"{name}.log"
    runners.append(runner)
    return runner


def identity(path: Path) -> tuple[int, int]:
    """(inode, ctime in ns): tmpfs reuses the inode number of a removed file at once."""
    info = os.lstat(path)
    return info.st_ino, info.st_ctime_ns


async def attach_console(runner: RunnerProcess, socket: Path,
                         stale: tuple[int, int] | None = None) -> None:
    """Connect to the console socket ``runner`` serves once it is there (a socket left by
    a killed runner, :func:`identity` ``stale``, is not it); fails with the log if the runner
    ends first."""
    assert runner.proc is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CMD
    while True:
        with contextlib.suppress(FileNotFoundError):
            if identity(socket) != stale:
                break
        assert runner.proc.returncode is None, runner.log_text()
        assert loop.time() < deadline, runner.log_text()
        await asyncio.sleep(0.02)
    reader, writer = await connect_listening(socket)
    runner.console = GuestConsole(reader, writer, runner.base / "console.log")


async def cli_status(config: Path) -> tuple[int | None, str]:
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vmrunner", "status", "-c", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(cli.communicate(), CMD)
    return cli.returncode, out.decode(errors="replace")


async def refused(runner: RunnerProcess, holder: int) -> None:
    """``runner`` ends with ALREADY_RUNNING, names ``holder`` and started nothing."""
    code = await runner.wait(SECOND)
    log = runner.log_text()
    assert code == ExitCode.ALREADY_RUNNING, log
    assert f"another runner (pid {holder}) is running this VM" in log, log
    assert "started " not in log and "QMP" not in log and "stale" not in log, log


async def test_second_runner_is_refused_and_touches_nothing(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    config = guest_config(base, guest_image, accel=accel_name)
    first = await boot_runner(runners, config)
    assert first.proc is not None and first.console is not None
    run, data = base / "run", base / "data"
    before = snapshot(run, data)
    assert {"run/api.sock", "run/monitor.sock", "run/console.sock"} <= before.keys()

    second = second_runner(runners, config, "second")
    await second.start(console=False)
    await refused(second, first.proc.pid)

    after = snapshot(run, data)
    # the first runner's own serial console log grows with whatever the guest prints
    for entries in (before, after):
        entries.pop("data/console.log", None)
    assert after == before  # nothing removed, replaced or rewritten
    for directory in (run, data):
        lock = directory / LOCK_NAME
        assert lock.read_text() == f"{first.proc.pid}\n"
        assert os.lstat(lock).st_mode & 0o777 == 0o600
    assert first.proc.returncode is None
    code, out = await cli_status(config)
    assert code == 0 and out.startswith("VM tg: "), out
    assert "TG-OK" in await first.console.check("echo TG-OK", CMD)
    first.signal(signal.SIGTERM)
    assert await first.wait(30) == ExitCode.OK, first.log_tail()


async def test_two_runners_started_at_once_one_wins(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    config = guest_config(base, guest_image, accel=accel_name)
    pair = [second_runner(runners, config, "one"), second_runner(runners, config, "two")]
    await asyncio.gather(*(r.start(console=False) for r in pair))
    ends = {asyncio.ensure_future(r.wait(SECOND)): r for r in pair}
    done, pending = await asyncio.wait(ends, timeout=SECOND,
                                       return_when=asyncio.FIRST_COMPLETED)
    for future in pending:
        future.cancel()
    assert len(done) == 1, "neither runner ended"
    loser = ends[done.pop()]
    winner = pair[1 - pair.index(loser)]
    assert winner.proc is not None and winner.proc.returncode is None, winner.log_tail()
    await refused(loser, winner.proc.pid)

    await attach_console(winner, base / "run" / "console.sock")
    await winner.wait_ready(BOOT)
    winner.signal(signal.SIGTERM)
    assert await winner.wait(30) == ExitCode.OK, winner.log_tail()


async def test_restart_after_kill_9_of_the_runner(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    config = guest_config(base, guest_image, accel=accel_name)
    first = await boot_runner(runners, config)
    qemu = first.pid_of("qemu")
    assert first.proc is not None and qemu is not None
    dead = first.proc.pid
    first.signal(signal.SIGKILL)
    assert await first.wait(5) == -signal.SIGKILL
    # restarted at once, as a supervisor would: the kernel dropped the dead runner's locks
    # (the lock files stay, with its pid in them)
    assert (base / "run" / LOCK_NAME).read_text() == f"{dead}\n"
    stale = identity(base / "run" / "console.sock")
    restarted = second_runner(runners, config, "restarted")
    await restarted.start(console=False)
    await attach_console(restarted, base / "run" / "console.sock", stale)
    await restarted.wait_ready(BOOT)
    assert await wait_gone(qemu, 2)  # PDEATHSIG: the first QEMU did not survive
    assert restarted.proc is not None
    assert (base / "data" / LOCK_NAME).read_text() == f"{restarted.proc.pid}\n"
    restarted.signal(signal.SIGTERM)
    assert await restarted.wait(30) == ExitCode.OK, restarted.log_tail()


async def test_second_runner_leaves_the_swtpm_socket_alone(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    config = guest_config(base, guest_image, accel=accel_name, useTpm=True)
    first = await boot_runner(runners, config)
    swtpm = first.pid_of("swtpm")
    assert first.proc is not None and swtpm is not None
    run, data = base / "run", base / "data"
    before = snapshot(run, data)
    assert "run/swtpm-sock" in before

    second = second_runner(runners, config, "second")
    await second.start(console=False)
    await refused(second, first.proc.pid)

    assert snapshot(run, data) == before
    assert process_alive(swtpm)
    assert "process swtpm (pid" not in first.log_text(), first.log_tail()  # not exited
    first.signal(signal.SIGTERM)
    assert await first.wait(30) == ExitCode.OK, first.log_tail()
