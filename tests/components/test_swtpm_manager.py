"""SwtpmManager with the ProcessManager, against the real swtpm 0.7 (and QEMU for --terminate).

A small tree (``/Runner`` with ProcessManager, SwtpmManager and an EventRecorder) is fed
``VmPrepared`` with a real :class:`~vmrunner.vmtypes.launch.LaunchPlan`, prepared from a
configuration with ``useTpm`` by the standard template; variants change only the plan's
swtpm command. Real processes, sockets and signals throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest

from vmrunner.components import BUS
from vmrunner.components.exit_codes import ExitCode
from vmrunner.components.processes import ProcessManager
from vmrunner.components.swtpm import SwtpmManager
from vmrunner.config.validate import validate_values
from vmrunner.core import Component, Event, HandlerContext, Stop, handler, run
from vmrunner.core.handle import Resumer
from vmrunner.core.recorder import EventRecorder
from vmrunner.events import (
    ProcessExited,
    ProcessFailed,
    ProcessRole,
    ProcessStarted,
    StartFailed,
    StartProcess,
    StopPhase,
    SwtpmReady,
    TerminateProcess,
    VmPrepared,
)
from vmrunner.proc.sockets import is_socket
from vmrunner.protocols.qmp import QmpClient, QmpDisconnected, commands
from vmrunner.testing.runnerproc import connect_listening, process_alive
from vmrunner.vmtypes.launch import LaunchPlan, prepare
from vmrunner.vmtypes.render import Command

pytestmark = pytest.mark.skipif(shutil.which("swtpm") is None, reason="no swtpm")

SWTPM_LOG = "vmrunner.components.swtpm"
LOST_TPM = "before QEMU: the guest's TPM no longer answers"


@pytest.fixture
def base() -> Iterator[Path]:
    """A short directory under /tmp (unix socket paths are limited to 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="swtpm-", dir="/tmp") as d:
        yield Path(d)


@pytest.fixture
def plan(base: Path) -> LaunchPlan:
    """The real plan of a TPM VM: swtpm (with ``--terminate``) and QEMU as rendered."""
    values = {"dataDir": str(base / "data"), "runtimeDir": str(base / "run"),
              "vm": {"name": "tpm", "useTpm": True, "firmware": "bios", "accelerator": "tcg",
                     "maximumRam": "128 MiB", "network": [], "audio": False}}
    result = validate_values(values, base_dir=base)
    assert result.ok and result.config is not None, result.problems
    prepared = prepare(result.config)
    assert prepared.swtpm is not None and "--terminate" in prepared.swtpm.arguments
    return prepared


def with_swtpm(plan: LaunchPlan, executable: str | None = None, *, drop: str | None = None,
               add: tuple[str, ...] = (), ctrl: Path | None = None) -> LaunchPlan:
    """``plan`` with its swtpm command changed: another executable, an argument dropped or
    added, or the control socket created at ``ctrl`` instead of where it is awaited."""
    assert plan.swtpm is not None
    args = [a for a in plan.swtpm.arguments if a != drop]
    if ctrl is not None:
        index = args.index("--ctrl") + 1
        args[index] = args[index].replace(str(plan.paths.swtpm_socket), str(ctrl))
        assert str(ctrl) in args[index]
    command = Command(executable or plan.swtpm.executable, (*args, *add),
                      plan.swtpm.environment)
    return msgspec.structs.replace(plan, swtpm=command)


STALE_MODE = 0o701
"""A mode neither swtpm (``mode=0600``) nor the umask gives a new socket: marks the stale one."""


def make_stale_socket(path: Path) -> None:
    """A socket file nobody listens on, as after a crash."""
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))
    path.chmod(STALE_MODE)


class ReadyProbe(Component):
    """Looks at the socket the moment ``SwtpmReady`` is dispatched (before anyone uses it)."""

    def __init__(self) -> None:
        super().__init__(BUS)
        self.mode: int | None = None

    @handler
    def on_ready(self, event: SwtpmReady) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.mode = stat.S_IMODE(Path(event.socket).lstat().st_mode)


class Tree:
    """``/Runner`` with ProcessManager, SwtpmManager and an EventRecorder."""

    def __init__(self, ready_timeout: float = 10.0) -> None:
        self.root = Component(BUS, "Runner")
        self.processes = self.root.attach(ProcessManager())
        self.swtpm = self.root.attach(SwtpmManager(ready_timeout=ready_timeout))
        self.probe = self.root.attach(ReadyProbe())
        self.recorder = self.root.attach(EventRecorder(BUS))
        self.task: asyncio.Task[int] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(run(self.root))
        await asyncio.sleep(0)

    async def stop(self) -> int:
        assert self.task is not None
        if not self.task.done():
            self.root.fire(Stop())
        return await asyncio.wait_for(self.task, 20)

    async def prepared(self, plan: LaunchPlan) -> SwtpmReady | StartFailed:
        """Fire ``VmPrepared``; the first ``SwtpmReady`` or ``StartFailed`` that follows."""
        self.root.fire(VmPrepared(plan=plan))
        await self.recorder.wait_for(
            StartProcess, lambda e: e.name == ProcessRole.SWTPM, timeout=5)
        outcome = await self.recorder.wait_for(
            Event, lambda e: isinstance(e, SwtpmReady | StartFailed), timeout=15)
        assert isinstance(outcome, SwtpmReady | StartFailed)
        return outcome

    async def exited(self, name: str, timeout: float = 5) -> ProcessExited:  # noqa: ASYNC109
        return await self.recorder.wait_for(ProcessExited, lambda e: e.name == name,
                                            timeout=timeout)

    def swtpm_pid(self) -> int:
        return self.processes.pids()[ProcessRole.SWTPM]


@pytest.fixture
async def tree() -> AsyncIterator[Tree]:
    tree = Tree()
    await tree.start()
    try:
        yield tree
    finally:
        await tree.stop()


@pytest.fixture
async def impatient() -> AsyncIterator[Tree]:
    """A tree whose SwtpmManager waits only 0.5 s for the control socket."""
    tree = Tree(ready_timeout=0.5)
    await tree.start()
    try:
        yield tree
    finally:
        await tree.stop()


async def test_start_ready_and_stop(tree: Tree, plan: LaunchPlan) -> None:
    """The plan's swtpm runs as rendered, is ready once its socket exists, and a Stop ends
    it and removes the socket; the run ends OK."""
    t0 = time.monotonic()
    outcome = await tree.prepared(plan)
    assert isinstance(outcome, SwtpmReady), outcome
    assert time.monotonic() - t0 < 5
    assert outcome.socket == str(plan.paths.swtpm_socket)
    assert plan.swtpm is not None
    started = tree.recorder.of_type(StartProcess)
    assert [(e.name, list(e.argv)) for e in started] == [(ProcessRole.SWTPM, plan.swtpm.argv)]
    pid = tree.swtpm_pid()
    assert is_socket(plan.paths.swtpm_socket)
    assert await tree.stop() == ExitCode.OK
    exited = await tree.exited(ProcessRole.SWTPM)
    # swtpm ends on the SIGTERM: cleanly (0), or by the signal itself when it arrives before
    # swtpm installed its handler (it creates the socket first; seen under load)
    assert exited.pid == pid and exited.status.returncode in (0, -signal.SIGTERM), exited
    assert not process_alive(pid)
    assert not plan.paths.swtpm_socket.exists()
    assert not tree.recorder.of_type(StartFailed)


async def test_stale_socket_is_replaced(tree: Tree, plan: LaunchPlan) -> None:
    """A socket left by a crashed run is removed before swtpm starts, so readiness means
    swtpm's own socket, which accepts connections."""
    make_stale_socket(plan.paths.swtpm_socket)
    outcome = await tree.prepared(plan)
    assert isinstance(outcome, SwtpmReady), outcome
    assert tree.probe.mode is not None and tree.probe.mode != STALE_MODE  # not the stale file
    _reader, writer = await connect_listening(plan.paths.swtpm_socket)  # a live listener
    writer.close()
    await writer.wait_closed()


async def test_stale_socket_is_not_taken_for_readiness(
        impatient: Tree, plan: LaunchPlan) -> None:
    """A stale socket sits where the manager waits while swtpm creates its socket elsewhere:
    no SwtpmReady (the stale file was removed, not mistaken for swtpm's)."""
    make_stale_socket(plan.paths.swtpm_socket)
    elsewhere = plan.paths.runtime_dir / "elsewhere.sock"
    outcome = await impatient.prepared(with_swtpm(plan, ctrl=elsewhere))
    assert isinstance(outcome, StartFailed), outcome
    assert "no control socket" in outcome.reason
    assert not impatient.recorder.of_type(SwtpmReady)
    assert not plan.paths.swtpm_socket.exists()


async def test_bad_argument_shows_stderr(tree: Tree, plan: LaunchPlan) -> None:
    """swtpm exiting before its socket exists fails the start with its status and stderr."""
    outcome = await tree.prepared(with_swtpm(plan, add=("--bogus",)))
    assert isinstance(outcome, StartFailed), outcome
    assert outcome.step == ProcessRole.SWTPM
    assert "swtpm exited with status 1 before creating" in outcome.reason
    assert "unrecognized option '--bogus'" in outcome.reason
    assert not tree.recorder.of_type(SwtpmReady)


async def test_socket_never_appearing_times_out_and_kills(
        impatient: Tree, plan: LaunchPlan) -> None:
    """swtpm runs but never creates the awaited socket: StartFailed after ready_timeout, and
    the swtpm that was started is terminated (its own socket goes with it)."""
    elsewhere = plan.paths.runtime_dir / "elsewhere.sock"
    t0 = time.monotonic()
    outcome = await impatient.prepared(with_swtpm(plan, ctrl=elsewhere))
    elapsed = time.monotonic() - t0
    assert isinstance(outcome, StartFailed), outcome
    assert outcome.reason == f"no control socket {plan.paths.swtpm_socket} within 0.5 s"
    assert 0.5 <= elapsed < 3, elapsed
    pid = impatient.swtpm_pid()
    assert is_socket(elsewhere)  # swtpm was up all along, just not where we waited
    assert impatient.recorder.of_type(TerminateProcess)[0].name == ProcessRole.SWTPM
    exited = await impatient.exited(ProcessRole.SWTPM)
    assert exited.pid == pid and not process_alive(pid)
    assert not elsewhere.exists()  # removed by swtpm on SIGTERM


class CleanupRung(Component):
    """FAKE of the shutdown ladder's last rung: holds the ``Stop`` while it terminates swtpm
    and until swtpm has exited (the real ladder runs only once QEMU runs, so a TERM before
    that is this test's way to end swtpm while the tree still runs)."""

    def __init__(self) -> None:
        super().__init__(BUS)
        self._resumer: Resumer | None = None

    @handler(priority=StopPhase.SHUTDOWN_GUEST)
    def on_stop(self, event: Stop, ctx: HandlerContext[None]) -> None:
        self._resumer = ctx.suspend()
        self.fire(TerminateProcess(name=ProcessRole.SWTPM, grace=3.0))

    @handler
    def on_exited(self, event: ProcessExited) -> None:
        if event.name == ProcessRole.SWTPM and self._resumer is not None:
            resumer, self._resumer = self._resumer, None
            self.schedule(0.2, resumer.resume)  # the other handlers of the exit run first


async def test_stop_while_waiting_for_the_socket_is_no_failed_start(
        tree: Tree, plan: LaunchPlan) -> None:
    """TERM while swtpm is not ready yet (here its socket never comes where the manager
    waits): the stop ends swtpm, which is the stop's doing: no StartFailed, exit 0."""
    tree.root.attach(CleanupRung())
    elsewhere = plan.paths.runtime_dir / "elsewhere.sock"
    tree.root.fire(VmPrepared(plan=with_swtpm(plan, ctrl=elsewhere)))
    await tree.recorder.wait_for(ProcessStarted, lambda e: e.name == ProcessRole.SWTPM,
                                 timeout=5)
    for _ in range(100):  # swtpm is up (its socket elsewhere), the manager still waits
        if elsewhere.exists():
            break
        await asyncio.sleep(0.05)
    assert await tree.stop() == ExitCode.OK
    assert tree.recorder.of_type(ProcessExited)
    assert not tree.recorder.of_type(StartFailed)
    assert not tree.recorder.of_type(SwtpmReady)


async def test_missing_socket_directory(tree: Tree, plan: LaunchPlan) -> None:
    """The runtime directory is gone: the start fails naming it, and swtpm does not linger."""
    shutil.rmtree(plan.paths.runtime_dir)
    outcome = await tree.prepared(plan)
    assert isinstance(outcome, StartFailed), outcome
    assert str(plan.paths.runtime_dir) in outcome.reason
    assert "No such file or directory" in outcome.reason
    exited = await tree.exited(ProcessRole.SWTPM)
    assert not process_alive(exited.pid)


async def test_missing_binary(tree: Tree, plan: LaunchPlan, base: Path) -> None:
    """An executable that does not exist: ProcessFailed turned into StartFailed."""
    missing = base / "no" / "swtpm"
    tree.root.fire(VmPrepared(plan=with_swtpm(plan, str(missing))))
    failed = await tree.recorder.wait_for(StartFailed, timeout=5)
    assert failed.step == ProcessRole.SWTPM
    assert failed.reason.startswith(f"cannot start swtpm ({missing})"), failed.reason
    assert tree.recorder.of_type(ProcessFailed)
    assert not tree.recorder.of_type(SwtpmReady)


async def test_non_socket_in_the_way_is_kept(tree: Tree, plan: LaunchPlan) -> None:
    """A regular file where the socket goes is not removed and swtpm is not started."""
    plan.paths.swtpm_socket.write_text("keep me")
    tree.root.fire(VmPrepared(plan=plan))
    failed = await tree.recorder.wait_for(StartFailed, timeout=5)
    assert failed.step == ProcessRole.SWTPM and "is not a socket" in failed.reason
    assert plan.paths.swtpm_socket.read_text() == "keep me"
    assert not tree.recorder.of_type(StartProcess)


async def start_qemu(tree: Tree, plan: LaunchPlan) -> int:
    """Start the plan's QEMU (paused; it connects to swtpm at once); its pid."""
    pid = await tree.root.fire(StartProcess(name=ProcessRole.QEMU, argv=tuple(plan.qemu.argv)))
    assert pid is not None, tree.recorder.of_type(ProcessFailed)
    return pid


async def run_qemu_and_quit(tree: Tree, plan: LaunchPlan) -> ProcessExited:
    """Start the plan's QEMU, check it uses the TPM, quit it over QMP; its ProcessExited."""
    await start_qemu(tree, plan)
    client = QmpClient("tpm-test")
    try:
        await client.connect(plan.paths.monitor_socket)
        tpms = await client.execute(commands.RawCommand(command="query-tpm"))
        assert [t["id"] for t in tpms] == ["tpm0"]  # QEMU is talking to our swtpm
        with contextlib.suppress(QmpDisconnected):  # QEMU may hang up before replying
            await client.execute(commands.Quit())
    finally:
        await client.disconnect()
    return await tree.exited(ProcessRole.QEMU, timeout=10)


async def test_swtpm_exits_after_qemu(tree: Tree, plan: LaunchPlan) -> None:
    """The runner's order: swtpm ready → QEMU uses it → QEMU exits → swtpm ends too."""
    outcome = await tree.prepared(plan)
    assert isinstance(outcome, SwtpmReady), outcome
    pid = tree.swtpm_pid()
    qemu = await run_qemu_and_quit(tree, plan)
    assert qemu.status.success, qemu
    t0 = time.monotonic()
    swtpm = await tree.exited(ProcessRole.SWTPM)
    assert time.monotonic() - t0 < 5
    assert swtpm.pid == pid and swtpm.status.success, swtpm
    assert not process_alive(pid)
    assert not tree.recorder.of_type(StartFailed)


async def test_swtpm_left_running_is_stopped_after_qemu(
        tree: Tree, plan: LaunchPlan, caplog: pytest.LogCaptureFixture) -> None:
    """QEMU killed (it cannot send swtpm CMD_SHUTDOWN) and an swtpm without --terminate
    (so the lost connection does not end it either): when QEMU's exit is seen, the manager
    fires TerminateProcess for swtpm, which goes; its ending then is no warning."""
    outcome = await tree.prepared(with_swtpm(plan, drop="--terminate"))
    assert isinstance(outcome, SwtpmReady), outcome
    pid = tree.swtpm_pid()
    qemu_pid = await start_qemu(tree, plan)
    with caplog.at_level(logging.INFO, logger=SWTPM_LOG):
        os.kill(qemu_pid, signal.SIGKILL)
        qemu = await tree.exited(ProcessRole.QEMU)
        assert qemu.status.signal == signal.SIGKILL
        swtpm = await tree.exited(ProcessRole.SWTPM)
    assert swtpm.pid == pid and not process_alive(pid)
    terminate = tree.recorder.of_type(TerminateProcess)
    assert [e.name for e in terminate] == [ProcessRole.SWTPM]
    events = tree.recorder.events
    assert events.index(qemu) < events.index(terminate[0]) < events.index(swtpm)
    assert LOST_TPM not in caplog.text


async def test_swtpm_dying_before_qemu_is_a_warning(
        tree: Tree, plan: LaunchPlan, caplog: pytest.LogCaptureFixture) -> None:
    """swtpm killed after it was ready: a warning naming the consequence, not a failed
    start (the VM keeps running); the socket it could not remove is removed for it."""
    outcome = await tree.prepared(plan)
    assert isinstance(outcome, SwtpmReady), outcome
    with caplog.at_level(logging.WARNING, logger=SWTPM_LOG):
        os.kill(tree.swtpm_pid(), signal.SIGKILL)
        await tree.exited(ProcessRole.SWTPM)
    assert f"swtpm was killed by SIGKILL {LOST_TPM}" in caplog.text
    assert not tree.recorder.of_type(StartFailed)
    assert not plan.paths.swtpm_socket.exists()


async def test_stop_before_qemu_is_no_lost_tpm_warning(
        tree: Tree, plan: LaunchPlan, caplog: pytest.LogCaptureFixture) -> None:
    """A Stop after SwtpmReady but before QEMU ran (e.g. a signal during the start): the
    ProcessManager terminates swtpm, which is the shutdown, not a guest losing its TPM."""
    outcome = await tree.prepared(plan)
    assert isinstance(outcome, SwtpmReady), outcome
    with caplog.at_level(logging.INFO, logger=SWTPM_LOG):
        assert await tree.stop() == ExitCode.OK
    assert tree.recorder.of_type(ProcessExited)
    assert LOST_TPM not in caplog.text, caplog.text
