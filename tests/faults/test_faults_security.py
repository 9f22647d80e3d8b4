"""Security assertions on a running VM (issue 8): the runtime directory the runner creates is
0700, every socket in it has no group/other access, and no child of the runner is a shell.

The display password (never in logs, argv, render output or files) is asserted by
tests/live/test_live_display.py; comma injection by tests/vmtypes/test_vmt_injection_property.py;
templates escaping the search path by tests/data/bad-configs/template-*.yaml."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest

from vmrunner.components.exit_codes import ExitCode
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.logwait import wait_log
from vmrunner.testing.runnerproc import RunnerProcess, guest_config, process_alive

pytestmark = pytest.mark.guest

SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "ash", "busybox", "fish", "csh", "tcsh"}


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (from /proc/<pid>/task/*/children)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
            except FileNotFoundError:
                continue
            for child in map(int, children):
                found.append(child)
                pending.append(child)
    return found


def program(pid: int) -> tuple[str, str]:
    """(basename of argv[0], basename of the executable) of ``pid``."""
    argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    return Path(argv0).name, Path(os.readlink(f"/proc/{pid}/exe")).name


def _modes(directory: Path) -> dict[str, int]:
    return {entry.name: entry.lstat().st_mode for entry in directory.iterdir()}


async def test_runtime_dir_sockets_and_children(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    runtime = base / "rt" / "vm"  # not there yet: the runner creates it
    config = guest_config(base, guest_image, accel=accel_name, useTpm=True,
                          runner={"runtimeDir": str(runtime)})
    runner = RunnerProcess(config)
    runners.append(runner)
    await runner.start(console=False)
    await wait_log(runner.log, "state booting → booted", timeout=60)
    assert runner.proc is not None

    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
    assert stat.S_IMODE((base / "data").stat().st_mode) == 0o700
    modes = _modes(runtime)
    sockets = {name: mode for name, mode in modes.items() if stat.S_ISSOCK(mode)}
    assert {"monitor.sock", "console.sock", "swtpm-sock"} <= set(sockets), modes
    for name, mode in sockets.items():
        assert stat.S_IMODE(mode) & 0o077 == 0, f"{name} is {oct(stat.S_IMODE(mode))}"

    children = descendants(runner.proc.pid)
    names = [program(pid) for pid in children]
    assert {exe for _, exe in names} >= {"qemu-system-x86_64", "swtpm"}, names
    for argv0, exe in names:
        assert argv0 not in SHELLS and exe not in SHELLS, names

    runner.signal(signal.SIGTERM)
    assert await runner.wait(30) == ExitCode.OK, runner.log_tail()
    assert not [pid for pid in children if process_alive(pid)]
