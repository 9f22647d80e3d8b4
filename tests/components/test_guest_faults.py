"""PanicHandler and DiskErrorWatcher with scripted QMP events, for what the real guest cannot
be made to do on demand (tests/faults/test_faults_guest_panic.py and
test_faults_paused_guest.py run the real thing): a crash-loaded panic (kdump), a panic while
the VM is shutting down, a panic racing a policy change, QEMU refusing a command, a burst of
disk errors.

FAKE: ``ScriptedQemu`` records the QMP commands and answers them (an error for the names in
``refuse``); the QMP events are fired as the QemuMonitor fires them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from vmrunner.components.base import BusComponent
from vmrunner.components.disk_errors import LOG_INTERVAL, DiskErrorWatcher
from vmrunner.components.exit_codes import ExitCode
from vmrunner.components.panic import PanicHandler
from vmrunner.config.model import RunnerConfig
from vmrunner.core import Start, Stop, handler
from vmrunner.core.recorder import EventRecorder
from vmrunner.events import (
    ConfigureQemu,
    DiskErrorStatus,
    DiskIoError,
    ExecuteQmp,
    GuestPanicked,
    GuestPaused,
    PanicPolicy,
    PanicStatus,
    QmpBlockIoError,
    QmpGuestCrashloaded,
    QmpGuestPanicked,
    QmpReply,
    QmpReset,
    RunnerStateChanged,
    RunState,
    StatusPart,
    StatusQuery,
)
from vmrunner.protocols.qmp.errors import QmpExecuteError


class ScriptedQemu(BusComponent):
    """FAKE: records each command as ``(name, arguments)`` and answers it."""

    def __init__(self) -> None:
        super().__init__()
        self.commands: list[tuple[str, dict[str, Any]]] = []
        self.refuse: set[str] = set()

    @handler
    def on_execute(self, event: ExecuteQmp) -> QmpReply:
        name = event.command.name
        self.commands.append((name, event.command.arguments()))
        if name in self.refuse:
            return QmpReply(error=QmpExecuteError(name, "GenericError", "refused"))
        return QmpReply(value={})


class Tree:
    def __init__(self, log_interval: float = LOG_INTERVAL) -> None:
        self.root = BusComponent(name="Root")
        self.qemu = self.root.attach(ScriptedQemu())
        self.root.attach(PanicHandler())
        self.root.attach(DiskErrorWatcher(log_interval=log_interval))
        self.recorder = self.root.attach(EventRecorder())

    async def start(self, policy: PanicPolicy, state: RunState = RunState.BOOTED) -> None:
        await self.root.fire(Start())
        await self.configure(policy, initial=True)
        await self.root.fire(RunnerStateChanged(old=RunState.STARTING, new=state, reason="",
                                                message=""))

    async def configure(self, policy: PanicPolicy, *, initial: bool = False) -> None:
        config = RunnerConfig.model_validate({"vm": {"name": "t", "onPanic": policy}})
        await self.root.fire(ConfigureQemu(config=config, state=RunState.BOOTED,
                                           initial=initial))

    async def status(self, kind: type[StatusPart]) -> Any:
        answers = [a for a in await self.root.fire(StatusQuery()).wait() if isinstance(a, kind)]
        assert len(answers) == 1
        return answers[0]

    def names(self) -> list[str]:
        return [name for name, _ in self.qemu.commands]


def _panicked(action: str = "pause") -> QmpGuestPanicked:
    return QmpGuestPanicked(timestamp=1.0, action=action, info=None)


async def test_each_policy_sets_qemus_action_and_a_change_sets_it_again() -> None:
    tree = Tree()
    await tree.start("reset")
    await tree.configure("reset")  # unchanged: nothing sent
    await tree.configure("stop")
    await tree.configure("pause")
    assert tree.qemu.commands == [("set-action", {"panic": "none"}),
                                  ("set-action", {"panic": "pause"}),
                                  ("set-action", {"panic": "pause"})]
    assert (await tree.status(PanicStatus)).policy == "pause"


async def test_a_crash_loaded_panic_is_reported_and_left_to_the_crash_kernel(
        caplog: pytest.LogCaptureFixture) -> None:
    tree = Tree()
    await tree.start("stop")
    info = {"type": "hyper-v", "arg1": 1}
    await tree.root.fire(QmpGuestCrashloaded(timestamp=1.0, action="run", info=info))
    status = await tree.status(PanicStatus)
    assert (status.count, status.last_crash_loaded, status.last_info) == (1, True, info)
    [event] = tree.recorder.of_type(GuestPanicked)
    assert (event.policy, event.crash_loaded, event.action) == ("stop", True, "run")
    assert tree.names() == ["set-action"]  # no reset, no stop
    assert tree.root.exit_code == 0 and not tree.recorder.of_type(Stop)
    assert ('the guest\'s kernel panicked ({"arg1":1,"type":"hyper-v"}; QEMU: run): it has a '
            "crash kernel loaded and goes on into it (kdump); onPanic is not applied"
            ) in caplog.text


async def test_a_panic_while_shutting_down_is_only_reported(
        caplog: pytest.LogCaptureFixture) -> None:
    tree = Tree()
    await tree.start("reset", state=RunState.TERMINATING)
    await tree.root.fire(_panicked("run"))
    assert tree.names() == ["set-action"]
    assert (await tree.status(PanicStatus)).count == 1
    assert "while the VM is terminating: onPanic is not applied" in caplog.text


async def test_reset_of_a_guest_qemu_paused_resumes_it() -> None:
    """The policy became ``reset`` while QEMU still had ``pause`` (a race with the change):
    the reset is followed by ``cont``."""
    tree = Tree()
    await tree.start("reset")
    await tree.root.fire(_panicked("pause"))
    assert tree.names() == ["set-action", "system_reset"]
    await tree.root.fire(QmpReset(timestamp=2.0, guest=False, reason="host-qmp-system-reset"))
    assert tree.names() == ["set-action", "system_reset", "cont"]
    await tree.root.fire(QmpReset(timestamp=3.0, guest=True, reason="guest-reset"))
    assert tree.names() == ["set-action", "system_reset", "cont"]  # once
    assert (await tree.status(PanicStatus)).resets == 1


async def test_a_refused_reset_is_logged_and_not_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    tree = Tree()
    await tree.start("reset")
    tree.qemu.refuse.add("system_reset")
    await tree.root.fire(_panicked("run"))
    status = await tree.status(PanicStatus)
    assert (status.count, status.resets) == (1, 0)
    assert "onPanic reset: QEMU refused system_reset: " in caplog.text


async def test_stop_waits_for_the_pause_then_stops_with_exit_code_8() -> None:
    tree = Tree()
    await tree.start("stop")
    await tree.root.fire(_panicked("pause"))
    assert tree.root.exit_code == ExitCode.GUEST_PANICKED
    assert not tree.recorder.of_type(Stop)  # not before QEMU has paused the guest
    await tree.root.fire(GuestPaused(reason="guest-panicked", detail=""))
    assert len(tree.recorder.of_type(Stop)) == 1


async def test_stop_of_a_guest_qemu_let_run_stops_at_once() -> None:
    tree = Tree()
    await tree.start("stop")
    await tree.root.fire(_panicked("run"))
    assert tree.root.exit_code == ExitCode.GUEST_PANICKED
    assert len(tree.recorder.of_type(Stop)) == 1


def _io_error(operation: str = "write", nospace: bool = False) -> QmpBlockIoError:
    return QmpBlockIoError(timestamp=1.0, device="", node_name="disk1", operation=operation,
                           action="report", nospace=nospace, reason="Input/output error")


async def test_a_burst_of_disk_errors_is_counted_exactly_and_logged_sparingly(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "vmrunner.components.disk_errors")
    tree = Tree()
    await tree.start("reset")
    for _ in range(500):
        tree.root.fire(_io_error())
    await tree.root.fire(_io_error("read"))
    status = await tree.status(DiskErrorStatus)
    assert [(d.drive, d.operation, d.count) for d in status.drives] == [
        ("disk1", "read", 1), ("disk1", "write", 500)]
    assert len(tree.recorder.of_type(DiskIoError)) == 501
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "disk disk1: write failed (Input/output error); QEMU's action: report",
        "disk disk1: read failed (Input/output error); QEMU's action: report"], lines


async def test_the_next_line_after_the_interval_counts_the_unlogged(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "vmrunner.components.disk_errors")
    tree = Tree(log_interval=0.2)
    await tree.start("reset")
    for _ in range(3):
        await tree.root.fire(_io_error(nospace=True))
    await asyncio.sleep(0.25)
    await tree.root.fire(_io_error(nospace=True))
    assert [r.getMessage() for r in caplog.records] == [
        "disk disk1: write failed (no space left on the host); QEMU's action: report",
        "disk disk1: write failed (no space left on the host); QEMU's action: report "
        "(2 more since the last line)"]
    assert (await tree.status(DiskErrorStatus)).drives[0].count == 4
