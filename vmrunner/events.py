"""The runner's typed events: how the components in :mod:`vmrunner.components` talk.

Components never call each other; they fire and handle these events (see docs/runner.md).
Results: an event typed ``Event[R]`` may be completed with a result of type ``R``
(``await component.fire(event)`` from a task, or ``handle.on_completion`` in a handler).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vmrunner.core import Event

if TYPE_CHECKING:
    from vmrunner.config.model import RunnerConfig
    from vmrunner.proc.child import ExitStatus
    from vmrunner.qmp.commands import QmpCommand
    from vmrunner.qmp.errors import QmpError
    from vmrunner.qmp.messages import QmpEvent
    from vmrunner.vmtypes.render import Command
    from vmrunner.vmtypes.state import VmPaths

QEMU = "qemu"
"""The process name of QEMU (``StartProcess``/``ProcessExited`` ``name``)."""
SWTPM = "swtpm"
"""The process name of swtpm."""


class RunState(enum.Enum):
    """The runner's states (docs/runner.md has the diagram)."""

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


@dataclass(frozen=True, slots=True, kw_only=True)
class RunnerStateChanged(Event[None]):
    """The runner went from ``old`` to ``new``; ``reason``: a CamelCase word, ``message``: prose."""

    old: RunState
    new: RunState
    reason: str
    message: str = ""


# -- start sequence ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LaunchPlan:
    """What the start sequence runs, fixed when the VM is prepared."""

    config: RunnerConfig
    paths: VmPaths
    qemu: Command
    swtpm: Command | None
    guest_agent_channel: str | None
    """The qdev id of the virtserialport of qemu-ga (e.g. ``channel0``), if the VM has one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VmPrepared(Event[None]):
    """Directories, uuid, firmware vars, template copy and cloud-init image are in place."""

    plan: LaunchPlan


@dataclass(frozen=True, slots=True, kw_only=True)
class StartFailed(Event[None]):
    """A start step failed; the runner stops with ``ExitCode.START_FAILED``."""

    step: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SwtpmReady(Event[None]):
    """swtpm's control socket exists: QEMU may start."""

    socket: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StartQemu(Event[None]):
    """Everything QEMU depends on is ready: start it (paused, ``-S``)."""

    plan: LaunchPlan


@dataclass(frozen=True, slots=True, kw_only=True)
class QemuStarted(Event[None]):
    """QEMU's process runs (still paused)."""

    pid: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorReady(Event[None]):
    """The QMP session is negotiated; ``ExecuteQmp`` works from now on."""

    version: tuple[int, int, int] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigureQemu(Event[None]):
    """Apply ``config`` to the running QEMU. Fired once after ``MonitorReady`` (initial, before
    ``cont``; handlers hold it until their commands are done) and after each config update."""

    config: RunnerConfig
    state: RunState
    initial: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class VmContinued(Event[None]):
    """``cont`` succeeded: the guest's vCPUs run."""


# -- processes ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StartProcess(Event[int]):
    """Start child ``name`` (no shell). Result: its pid. Failure: ``ProcessFailed``."""

    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessStarted(Event[None]):
    """Child ``name`` runs as ``pid``."""

    name: str
    pid: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessFailed(Event[None]):
    """Child ``name`` could not be executed."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessExited(Event[None]):
    """Child ``name`` ended and was reaped; ``stderr_tail`` holds its last stderr lines."""

    name: str
    pid: int
    status: ExitStatus
    stderr_tail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TerminateProcess(Event[None]):
    """SIGTERM child ``name``, SIGKILL after ``grace`` s, reap. Completes when it is gone."""

    name: str
    grace: float = 5.0


# -- QMP ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QmpReply:
    """The outcome of an ``ExecuteQmp``: QMP's ``return`` value or a typed error."""

    value: Any = None
    error: QmpError | None = None

    def unwrap(self) -> Any:
        """The value, or raise the error."""
        if self.error is not None:
            raise self.error
        return self.value


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecuteQmp(Event[QmpReply]):
    """Run ``command`` on QEMU's monitor; the completed event's result is a :class:`QmpReply`."""

    command: QmpCommand


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorEvent(Event[None]):
    """A QMP event from QEMU; subclasses exist for the kinds the runner reacts to."""

    qmp: QmpEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class ShutdownEvent(MonitorEvent):
    """QMP ``SHUTDOWN`` (``qmp.guest``: initiated by the guest)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerdownEvent(MonitorEvent):
    """QMP ``POWERDOWN``: the power button press reached the machine."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ResetEvent(MonitorEvent):
    """QMP ``RESET``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VserportChangeEvent(MonitorEvent):
    """QMP ``VSERPORT_CHANGE``: the guest opened or closed a virtio-serial port."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BalloonChangeEvent(MonitorEvent):
    """QMP ``BALLOON_CHANGE``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TrayMovedEvent(MonitorEvent):
    """QMP ``DEVICE_TRAY_MOVED``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceDeletedEvent(MonitorEvent):
    """QMP ``DEVICE_DELETED``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorClosed(Event[None]):
    """The QMP connection ended (normally because QEMU exited)."""


# -- guest agent -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class GuestAgentConnected(Event[None]):
    """qemu-ga answered ``guest-sync-delimited`` and ``guest-ping``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GuestAgentDisconnected(Event[None]):
    """The guest closed qemu-ga's port (or the connection broke)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OsInfo(Event[None]):
    """The ``guest-get-osinfo`` answer: the guest has booted far enough to run its agent."""

    info: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class GuestShutdown(Event[bool]):
    """Ask qemu-ga to power the guest off. Result: whether the request was sent."""


# -- shutdown ----------------------------------------------------------------------------------


class Rung(enum.Enum):
    """The rungs of the shutdown ladder (docs/runner.md)."""

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


@dataclass(frozen=True, slots=True, kw_only=True)
class ShutdownRung(Event[None]):
    """The shutdown ladder reached ``rung``; ``deadline`` is the ``time.monotonic()`` value at
    which the graceful phase ends (``None`` when not applicable)."""

    rung: Rung
    deadline: float | None
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TerminationSignal(Event[None]):
    """The process received ``signal`` (SIGTERM/SIGINT). The first one fires ``Stop``;
    docs/runner.md describes repeats."""

    signal: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalateShutdown(Event[None]):
    """Skip the rest of the graceful phase: go to the terminate rung now."""

    reason: str
