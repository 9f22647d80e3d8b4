"""Events of the runner's life: its states, the start sequence and the shutdown ladder."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from vmrunner.core import Event

if TYPE_CHECKING:
    from vmrunner.config.model import RunnerConfig
    from vmrunner.vmtypes.launch import LaunchPlan


class RunState(enum.Enum):
    """The runner's states (docs/design/runner.md has the diagram)."""

    INITIALIZING = "initializing"
    STARTING = "starting"
    BOOTING = "booting"
    BOOTED = "booted"
    TERMINATING = "terminating"
    STOPPED = "stopped"

    @property
    def vm_active(self) -> bool:
        """The guest runs (``cont`` has been sent) and no shutdown has begun."""
        return self in (RunState.BOOTING, RunState.BOOTED)


class RunnerStateChanged(Event[None], frozen=True, kw_only=True):
    """The runner went from ``old`` to ``new``; ``reason``: a CamelCase word, ``message``: prose."""

    old: RunState
    new: RunState
    reason: str
    message: str = ""


class VmPrepared(Event[None], frozen=True, kw_only=True):
    """Directories, uuid, firmware vars, template copy and cloud-init image are in place."""

    plan: LaunchPlan


class StartFailed(Event[None], frozen=True, kw_only=True):
    """A start step failed; the runner stops with ``ExitCode.START_FAILED``."""

    step: str
    reason: str


class SwtpmReady(Event[None], frozen=True, kw_only=True):
    """swtpm's control socket exists: QEMU may start."""

    socket: str


class StartQemu(Event[None], frozen=True, kw_only=True):
    """Everything QEMU depends on is ready: start it (paused, ``-S``)."""

    plan: LaunchPlan


class QemuStarted(Event[None], frozen=True, kw_only=True):
    """QEMU's process runs (still paused)."""

    pid: int


class MonitorReady(Event[None], frozen=True, kw_only=True):
    """The QMP session is negotiated; ``ExecuteQmp`` works from now on."""

    version: tuple[int, int, int] | None


class ConfigureQemu(Event[None], frozen=True, kw_only=True):
    """Apply ``config`` to the running QEMU. Fired once after ``MonitorReady`` (initial, before
    ``cont``; handlers hold it until their commands are done) and after each config update."""

    config: RunnerConfig
    state: RunState
    initial: bool


class VmContinued(Event[None], frozen=True, kw_only=True):
    """``cont`` succeeded: the guest's vCPUs run."""


class Rung(enum.Enum):
    """The rungs of the shutdown ladder (docs/design/runner.md)."""

    GUEST_AGENT = "guest-agent"
    """``guest-shutdown`` through qemu-ga."""
    POWERDOWN = "powerdown"
    """``system_powerdown`` (ACPI power button), repeated."""
    TERMINATE = "terminate"
    """SIGTERM to QEMU (deadline reached, or the VM never ran)."""
    KILL = "kill"
    """SIGKILL to QEMU after the grace time."""
    CLEANUP = "cleanup"
    """QEMU is gone: stop swtpm and the other children."""


class ShutdownRung(Event[None], frozen=True, kw_only=True):
    """The shutdown ladder reached ``rung``; ``deadline`` is the ``time.monotonic()`` value at
    which the graceful phase ends (``None`` when not applicable)."""

    rung: Rung
    deadline: float | None
    detail: str = ""


class StopPhase(enum.IntEnum):
    """The phases of ``Stop``: the ``@handler`` priorities of the components' Stop handlers.

    Handlers of a higher phase run first (the bus orders handlers by priority, descending).
    The PowerdownHandler's ``SHUTDOWN_GUEST`` handler suspends the ``Stop`` until QEMU is gone
    (every ``Stop`` fired meanwhile too), so each handler of a lower phase, the final kill
    (``STOP_PROCESSES``) included, runs only after QEMU has exited or when it never ran. A
    ``Stop`` handler of your own without a priority runs at ``DEFAULT``: after the guest's
    shutdown, while swtpm and the other children still run.
    """

    CLOSE = 100_000
    """Refuse new work: the ProcessManager starts no more children."""
    ANNOUNCE = 10_000
    """The Runner enters TERMINATING (``RunnerStateChanged``)."""
    SHUTDOWN_GUEST = 100
    """The shutdown ladder (PowerdownHandler); holds the ``Stop`` until QEMU has exited."""
    DEFAULT = 0
    """Handlers without a priority: QEMU is gone, the other children may still run."""
    STOP_PROCESSES = -1000
    """The ProcessManager terminates and reaps every child still alive."""


class TerminationSignal(Event[None], frozen=True, kw_only=True):
    """The process received ``signal`` (SIGTERM/SIGINT). The first one fires ``Stop``;
    docs/design/runner.md describes repeats."""

    signal: int


class EscalateShutdown(Event[None], frozen=True, kw_only=True):
    """Skip the rest of the graceful phase: go to the terminate rung now."""

    reason: str
