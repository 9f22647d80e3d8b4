"""Runner: the root component (path ``/Runner``) and the runner's state machine.

It prepares the VM (directories, uuid, firmware vars, template copy, cloud-init image, argv)
and drives the start sequence through events; everything else is done by its children::

    Start → STARTING → (lock dataDir + runtimeDir) → VmPrepared → [swtpm: SwtpmReady]
      → StartQemu → MonitorReady
      → ConfigureQemu(initial, held until applied) → ExecuteQmp(cont) → BOOTING
      → OsInfo (guest agent answered) → BOOTED
    Stop → TERMINATING → (shutdown ladder, children reaped) → Stopped → STOPPED

Every transition is a ``RunnerStateChanged`` event. Exit codes: QEMU ending by itself with
status 0 → ``OK``; QEMU dying otherwise → ``QEMU_DIED``; a failed start step →
``START_FAILED``; a bad configuration or template → ``CONFIG_ERROR``; another runner
holding the VM's lock → ``ALREADY_RUNNING`` (nothing of the VM is touched).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vmrunner.components.base import BusComponent
from vmrunner.components.exit_codes import ExitCode
from vmrunner.config.model import RunnerConfig
from vmrunner.core import (
    Channel,
    Configurable,
    HandlerContext,
    Start,
    Stop,
    Stopped,
    handler,
)
from vmrunner.events import (
    ConfigureQemu,
    EscalateShutdown,
    MonitorReady,
    OsInfo,
    ProcessExited,
    ProcessRole,
    QmpReply,
    Rung,
    RunnerStateChanged,
    RunState,
    ShutdownRung,
    StartFailed,
    StartQemu,
    SwtpmReady,
    TerminationSignal,
    VmContinued,
    VmPrepared,
)
from vmrunner.events.lifecycle import StopPhase
from vmrunner.events.status import RunnerStatus, StatusQuery
from vmrunner.protocols.qmp import commands
from vmrunner.vmtypes.launch import LaunchPlan, prepare

if TYPE_CHECKING:
    from vmrunner.core.config.validation import Validated
    from vmrunner.vmtypes.lock import VmLock

_log = logging.getLogger(__name__)

START_PRIORITY = 1000
"""Of the ``Start`` handler: below the ConfigWatcher's initial delivery, above the others."""
ESCALATE_WINDOW = 3.0
"""A third termination signal within this many seconds of the second escalates."""
RELEASE_PRIORITY = -1_000_000
"""Of the ``Stopped`` handler that releases the VM's lock: after every other clean-up."""


def lock_vm(config: RunnerConfig) -> VmLock:
    """The default locker: :func:`vmrunner.vmtypes.lock.lock_vm` (imported on first use)."""
    from vmrunner.vmtypes.lock import lock_vm as lock

    return lock(config)


class Runner(Configurable[RunnerConfig], BusComponent):
    """The root of the standard component tree; holds the state machine.

    Configured by the ``/Runner`` node (``InitialConfiguration`` and later
    ``ConfigurationUpdate`` s from a ``ConfigWatcher``); changes reach QEMU as
    ``ConfigureQemu`` once it runs (and during the shutdown, for ``powerdownTimeout``).

    Args:
        config: the already validated ``/Runner`` configuration, if any (the builder
            validates it and presets it with its section, so the initial configuration event
            does not validate it again); else the initial configuration event provides it.
        preparer: turns the configuration into a :class:`LaunchPlan` (default
            :func:`prepare`; tests and embedders may substitute their own).
        locker: creates and locks the VM's directories before anything else is touched
            (default :func:`lock_vm`; ``None``: no lock, for tests whose preparer makes
            no VM).
    """

    config_model = RunnerConfig

    def __init__(self, config: RunnerConfig | None = None, channel: Channel | None = None, *,
                 preparer: Callable[[RunnerConfig], LaunchPlan] = prepare,
                 locker: Callable[[RunnerConfig], VmLock] | None = lock_vm,
                 strict: bool = False) -> None:
        super().__init__(channel, "Runner")
        self.config = config
        self.strict = strict
        self.state = RunState.INITIALIZING
        self.plan: LaunchPlan | None = None
        self._preparer = preparer
        self._locker = locker
        self.lock: VmLock | None = None
        """The VM's lock, held from the start until every ``Stopped`` handler has run."""
        self._signals: list[float] = []
        self._deadline: float | None = None
        self._forcing = False

    # -- state -----------------------------------------------------------------------------

    def _enter(self, new: RunState, reason: str, message: str) -> None:
        old, self.state = self.state, new
        if old is new:
            return
        _log.info("state %s → %s: %s", old.value, new.value, message)
        self.fire(RunnerStateChanged(old=old, new=new, reason=reason, message=message))

    @property
    def stopping(self) -> bool:
        """Whether the shutdown has begun."""
        return self.state in (RunState.TERMINATING, RunState.STOPPED)

    def _fail(self, code: ExitCode, message: str) -> None:
        _log.error("%s", message)
        self.set_exit_code(code)
        if not self.stopping:
            self.fire(Stop())

    # -- configuration -----------------------------------------------------------------------

    def validate_config(self, path: str, section: dict[str, Any],
                        context: dict[str, Any] | None) -> Validated[Any]:
        """Like ``vmrunner check``: its messages, ``strict`` for unknown keys."""
        from vmrunner.config.runner_section import validate_runner_section

        return validate_runner_section(section, context, strict=self.strict, path=path)

    def on_config(self, config: RunnerConfig, initial: bool) -> None:
        """A new configuration: applied live by ``ConfigureQemu`` once QEMU is configured
        (also while terminating, so a changed ``powerdownTimeout`` moves the deadline)."""
        self.config = config
        if not initial and (self.state.vm_active or self.state is RunState.TERMINATING):
            self.fire(ConfigureQemu(config=config, state=self.state, initial=False))

    # -- start sequence ----------------------------------------------------------------------

    @handler(priority=START_PRIORITY)
    def on_start(self, event: Start) -> None:
        """Prepare the VM and start it (swtpm first, else QEMU) as the tree's first start
        work: after every component has its initial configuration (the ConfigWatcher's
        ``Start`` handler runs before, and a rejected node cancels the ``Start``, so nothing
        is started), before the ``Start`` handlers of lower priority and ``Started``, so
        QEMU initialises while the rest of the start is handled."""
        if self.state is not RunState.INITIALIZING:
            return
        self._enter(RunState.STARTING, "RunnerStarted", "the runner has started")
        from vmrunner.vmtypes.errors import HostStateError, VmTypeError

        if self.config is None:
            self._fail(ExitCode.CONFIG_ERROR, "no configuration for /Runner")
            return
        if not self._lock(self.config):
            return
        try:
            plan = self._preparer(self.config)
        except HostStateError as exc:
            self._fail(ExitCode.HOST_ERROR, f"cannot prepare the VM: {exc}")
            return
        except VmTypeError as exc:
            self._fail(ExitCode.CONFIG_ERROR, f"cannot prepare the VM: {exc}")
            return
        except OSError as exc:
            self._fail(_host_or(ExitCode.START_FAILED, exc), f"cannot prepare the VM: {exc}")
            return
        self.plan = plan
        self._write_pid()
        self.fire(VmPrepared(plan=plan))
        if plan.swtpm is None:
            self.fire(StartQemu(plan=plan))

    def _lock(self, config: RunnerConfig) -> bool:
        """Take the VM's lock (the directories are created first); False: the start ends
        here, with nothing of the VM touched (another runner runs it, or a bad directory)."""
        if self._locker is None:
            return True
        from vmrunner.vmtypes.errors import HostStateError, VmTypeError
        from vmrunner.vmtypes.lock import AlreadyRunning

        try:
            self.lock = self._locker(config)
        except AlreadyRunning as exc:
            self._fail(ExitCode.ALREADY_RUNNING, f"not started: {exc}")
            return False
        except HostStateError as exc:
            self._fail(ExitCode.HOST_ERROR, f"cannot prepare the VM: {exc}")
            return False
        except VmTypeError as exc:
            self._fail(ExitCode.CONFIG_ERROR, f"cannot prepare the VM: {exc}")
            return False
        except OSError as exc:
            self._fail(_host_or(ExitCode.START_FAILED, exc),
                       f"cannot lock the VM's directories: {exc}")
            return False
        return True

    def _write_pid(self) -> None:
        """``runtimeDir/runner.pid``, whole or not at all: written to a new file (never through
        a planted link) and renamed over the old name (which replaces a link, not its
        target)."""
        assert self.plan is not None
        target = self.plan.paths.runtime_dir / "runner.pid"
        temporary = target.with_name(f".runner.pid.{os.getpid()}")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o644)
            with os.fdopen(fd, "w") as out:
                out.write(f"{os.getpid()}\n")
            os.replace(temporary, target)
        except OSError as exc:
            _log.warning("cannot write %s: %s", target, exc.strerror or exc)
            with contextlib.suppress(OSError):
                temporary.unlink()

    @handler
    def on_swtpm_ready(self, event: SwtpmReady) -> None:
        if self.state is RunState.STARTING and self.plan is not None:
            self.fire(StartQemu(plan=self.plan))

    @handler
    def on_monitor_ready(self, event: MonitorReady) -> None:
        if self.state is not RunState.STARTING or self.config is None:
            return
        handle = self.fire(ConfigureQemu(config=self.config, state=self.state, initial=True))
        handle.on_completion(lambda _h: self._cont())

    def _cont(self) -> None:
        if self.state is not RunState.STARTING:
            return
        self.execute_then(commands.Cont(), self._continued)

    def _continued(self, reply: QmpReply) -> None:
        if reply.error is not None:
            self._fail(ExitCode.START_FAILED, f"start failed at cont: {reply.error}")
            return
        if self.state is RunState.STARTING:
            self.fire(VmContinued())
            self._enter(RunState.BOOTING, "VmStarted", "QEMU is configured and running")

    @handler
    def on_osinfo(self, event: OsInfo) -> None:
        if self.state is RunState.BOOTING:
            self._enter(RunState.BOOTED, "VmBooted", "the guest agent answered")

    @handler
    def on_start_failed(self, event: StartFailed) -> None:
        if self.stopping:
            _log.debug("after stop: %s failed: %s", event.step, event.reason)
            return
        self._fail(ExitCode.START_FAILED, f"start failed at {event.step}: {event.reason}")

    @handler
    def on_process_exited(self, event: ProcessExited) -> None:
        if event.name != ProcessRole.QEMU:
            return
        if self.stopping:
            if not event.status.success and not self._forcing:
                tail = f"; its stderr:\n{event.stderr_tail}" if event.stderr_tail else ""
                self._fail(ExitCode.QEMU_DIED, f"QEMU {event.status} during the shutdown{tail}")
            return
        if self.state is RunState.STARTING:
            tail = f"; its stderr:\n{event.stderr_tail}" if event.stderr_tail else ""
            self._fail(ExitCode.START_FAILED, f"QEMU {event.status} during the start{tail}")
        elif event.status.success:
            _log.info("QEMU exited with status 0: the guest powered off")
            self.fire(Stop())
        else:
            tail = f"; its stderr:\n{event.stderr_tail}" if event.stderr_tail else ""
            self._fail(ExitCode.QEMU_DIED, f"QEMU {event.status} unexpectedly{tail}")

    # -- stopping ----------------------------------------------------------------------------

    @handler(priority=StopPhase.ANNOUNCE)
    def on_stop(self, event: Stop) -> None:
        if not self.stopping:
            self._enter(RunState.TERMINATING, "VmTerminating", "the VM is being shut down")

    @handler
    def on_rung(self, event: ShutdownRung) -> None:
        self._deadline = event.deadline
        self._forcing = self._forcing or event.rung in (Rung.TERMINATE, Rung.KILL)

    @handler
    def on_signal(self, event: TerminationSignal, ctx: HandlerContext[None]) -> None:
        name = signal.Signals(event.signal).name
        now = time.monotonic()
        if not self.stopping:
            _log.info("%s received: shutting down the VM gracefully", name)
            self._signals = [now]
            self.fire(Stop())
            return
        self._signals.append(now)
        left = (f", {max(0.0, self._deadline - now):.0f} s left before the forced stop"
                if self._deadline is not None else "")
        if len(self._signals) >= 3 and now - self._signals[-2] <= ESCALATE_WINDOW:
            _log.warning("%s received again: forcing the stop now", name)
            self.fire(EscalateShutdown(reason=f"{name} received {len(self._signals)} times"))
        else:
            _log.warning("%s received: already shutting down%s (send it again within %g s "
                         "to force the stop)", name, left, ESCALATE_WINDOW)

    @handler
    def on_stopped(self, event: Stopped) -> None:
        """Removes the sockets and files of this runner's VM; a runner that did not get
        the lock has no plan and removes nothing."""
        self._enter(RunState.STOPPED, "VmStopped", "the VM has been shut down")
        if self.plan is not None:
            paths = self.plan.paths
            for path in (*paths.sockets, paths.cloud_init_image, paths.spice_ticket,
                         paths.runtime_dir / "runner.pid"):
                with contextlib.suppress(OSError):
                    if path.is_socket() or path.is_file():
                        path.unlink()

    @handler(priority=RELEASE_PRIORITY)
    def on_stopped_release(self, event: Stopped) -> None:
        """The lock is given up last: the next runner finds this one's clean-up done."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    # -- status (GET /status) ----------------------------------------------------------------

    _status_reason = ""
    _status_since: float | None = None
    """Unix time of the last transition (``None``: still ``initializing``)."""

    @handler
    def on_status_state(self, event: RunnerStateChanged) -> None:
        """Remembers why and when the current state was entered."""
        self._status_reason = event.message or event.reason
        self._status_since = time.time()

    @handler
    def on_status_query(self, event: StatusQuery) -> RunnerStatus:
        return RunnerStatus(vm=None if self.config is None else self.config.vm.name,
                            state=self.state, reason=self._status_reason,
                            since=self._status_since)


def _host_or(code: ExitCode, exc: OSError) -> ExitCode:
    """``HOST_ERROR`` if ``exc`` is the host's condition (a full or read-only filesystem...),
    else ``code``."""
    from vmrunner.vmtypes.errors import HOST_ERRNOS

    return ExitCode.HOST_ERROR if exc.errno in HOST_ERRNOS else code
