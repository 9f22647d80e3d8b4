"""``vmrunner run`` starts QEMU before the tree exists (vmrunner.daemon.prelaunch).

The ProcessManager's adoption is tested with real child processes (``sleep``), the whole
path with the real guest.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from vmrunner.components import BUS
from vmrunner.components.processes import ProcessManager
from vmrunner.core import Component, Stop, run
from vmrunner.core.recorder import EventRecorder
from vmrunner.daemon.exit_codes import ExitCode
from vmrunner.events import ProcessExited, ProcessStarted, StartProcess
from vmrunner.proc.child import ChildProcess, spawn
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.runnerproc import (
    RunnerProcess,
    boot_runner,
    guest_config,
    process_alive,
    processes_using,
    term_during_start,
)

SLEEP = ("sleep", "60")


class Tree:
    """A root with a ProcessManager, running; events are recorded."""

    def __init__(self) -> None:
        self.root = Component(BUS, "Root")
        self.manager = self.root.attach(ProcessManager())
        self.recorder = self.root.attach(EventRecorder(BUS))
        self.task: asyncio.Task[int] | None = None

    async def stop(self) -> int:
        assert self.task is not None
        self.root.fire(Stop())
        return await asyncio.wait_for(self.task, 20)


@pytest.fixture
async def tree() -> AsyncIterator[Tree]:
    tree = Tree()
    tree.task = asyncio.create_task(run(tree.root))
    await asyncio.sleep(0)
    try:
        yield tree
    finally:
        if not tree.task.done():
            await tree.stop()


@pytest.fixture
async def early() -> AsyncIterator[ChildProcess]:
    child = await spawn("sleeper", SLEEP)
    try:
        yield child
    finally:
        if child.running:
            await child.kill()


async def test_matching_start_adopts_the_early_child(tree: Tree, early: ChildProcess) -> None:
    tree.manager.adopt(early)
    pid = await tree.root.fire(StartProcess(name="sleeper", argv=SLEEP))
    assert pid == early.pid
    assert tree.manager.pids() == {"sleeper": early.pid}
    started = tree.recorder.of_type(ProcessStarted)
    assert [(e.name, e.pid) for e in started] == [("sleeper", early.pid)]
    early.send_signal(signal.SIGKILL)  # it is watched like any other child
    await tree.recorder.wait_for(ProcessExited, timeout=5)


async def test_other_argv_replaces_the_early_child(tree: Tree, early: ChildProcess) -> None:
    tree.manager.adopt(early)
    pid = await tree.root.fire(StartProcess(name="sleeper", argv=("sleep", "61")))
    assert pid is not None and pid != early.pid
    assert not early.running  # terminated and reaped before the new one started
    assert tree.manager.pids() == {"sleeper": pid}


async def test_stop_before_the_claim_terminates_the_early_child(
        tree: Tree, early: ChildProcess) -> None:
    tree.manager.adopt(early)
    assert await tree.stop() == ExitCode.OK
    assert not early.running


async def test_stale_sockets_are_removed_before_a_spawn(tree: Tree, tmp_path: Path) -> None:
    import socket

    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(stale))
    pid = await tree.root.fire(StartProcess(name="sleeper", argv=SLEEP, stale_sockets=(stale,)))
    assert pid is not None and not stale.exists()
    plain = tmp_path / "not-a-socket"
    plain.write_text("keep me")
    assert await tree.root.fire(
        StartProcess(name="other", argv=SLEEP, stale_sockets=(plain,))) is None
    assert plain.read_text() == "keep me"


# -- the real guest ---------------------------------------------------------------------------

def _qemu_starts(log: str) -> list[str]:
    return re.findall(r"started qemu \(pid (\d+)\)", log)


@pytest.mark.guest
async def test_run_starts_qemu_once_before_the_tree_and_adopts_it(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    runner = await boot_runner(runners, guest_config(base, guest_image, accel=accel_name))
    log = runner.log_text()
    assert len(_qemu_starts(log)) == 1, log
    assert log.index("started qemu") < log.index("state initializing → starting"), log
    assert "was started before the tree: adopted" in log
    runner.signal(signal.SIGTERM)
    assert await runner.wait(30) == ExitCode.OK, runner.log_tail()


@pytest.mark.guest
async def test_tpm_vm_starts_qemu_after_swtpm_as_before(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    runner = await boot_runner(runners, guest_config(base, guest_image, accel=accel_name,
                                                     useTpm=True))
    log = runner.log_text()
    assert "adopted" not in log
    assert log.index("started swtpm") < log.index("started qemu"), log
    runner.signal(signal.SIGTERM)
    assert await runner.wait(30) == ExitCode.OK, runner.log_tail()


@pytest.mark.guest
async def test_bad_component_node_after_the_early_start_leaves_nothing(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    config = guest_config(base, guest_image, accel=accel_name,
                          runner={"/PowerdownHandler": {"repeatInterval": -1}})
    runner = RunnerProcess(config)
    runners.append(runner)
    await runner.start(console=False)
    assert await runner.wait(30) == ExitCode.CONFIG_ERROR, runner.log_tail()
    log = runner.log_text()
    assert "/Runner/PowerdownHandler/repeatInterval" in log, log
    assert "state starting → booting" not in log  # the guest never ran
    pids = [int(p) for p in _qemu_starts(log)]
    assert pids and not any(process_alive(p) for p in pids)
    assert processes_using(runner.runtime_dir) == []


@pytest.mark.guest
async def test_term_around_the_early_start_leaves_nothing(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    config = guest_config(base, guest_image, accel=accel_name)
    for delay in (0.1, 0.15, 0.2, 0.25, 0.3, 0.4):
        runner, code = await term_during_start(runners, config, delay)
        assert code in (ExitCode.OK, -signal.SIGTERM), (delay, runner.log_tail())
        assert processes_using(runner.runtime_dir) == [], (delay, runner.log_tail())
        pids = [int(p) for p in _qemu_starts(runner.log_text())]
        assert not any(process_alive(p) for p in pids), (delay, runner.log_tail())


def test_prelaunch_is_importable_without_the_bus() -> None:
    """The early start must not pay for the component tree's imports."""
    import subprocess

    code = ("import sys, vmrunner.daemon.prelaunch; "
            "bad = [m for m in ('vmrunner.core', 'vmrunner.events', 'qemu.qmp') "
            "if m in sys.modules]; sys.exit(', '.join(bad) or None)")
    subprocess.run([sys.executable, "-c", code], check=True)
