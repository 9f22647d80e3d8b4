"""The runner's typed events: how the components in :mod:`vmrunner.components` talk.

Components never call each other; they fire and handle these events (see docs/runner.md).
Results: an event typed ``Event[R]`` may be completed with a result of type ``R``
(``await component.fire(event)`` from a task, or ``handle.on_completion`` in a handler).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

import msgspec

from vmrunner.core import Event

if TYPE_CHECKING:
    from pathlib import Path

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


class RunnerStateChanged(Event[None], frozen=True, kw_only=True):
    """The runner went from ``old`` to ``new``; ``reason``: a CamelCase word, ``message``: prose."""

    old: RunState
    new: RunState
    reason: str
    message: str = ""


# -- start sequence ----------------------------------------------------------------------------


class LaunchPlan(msgspec.Struct, frozen=True):
    """What the start sequence runs, fixed when the VM is prepared."""

    config: RunnerConfig
    paths: VmPaths
    qemu: Command
    swtpm: Command | None
    guest_agent_channel: str | None
    """The qdev id of the virtserialport of qemu-ga (e.g. ``channel0``), if the VM has one."""


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


# -- processes ---------------------------------------------------------------------------------


class StartProcess(Event[int], frozen=True, kw_only=True):
    """Start child ``name`` (no shell). Result: its pid. Failure: ``ProcessFailed``."""

    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    stale_sockets: tuple[Path, ...] = ()
    """Sockets the child will create: ones left over by an earlier run are removed first."""


class ProcessStarted(Event[None], frozen=True, kw_only=True):
    """Child ``name`` runs as ``pid``."""

    name: str
    pid: int


class ProcessFailed(Event[None], frozen=True, kw_only=True):
    """Child ``name`` could not be executed."""

    name: str
    reason: str


class ProcessExited(Event[None], frozen=True, kw_only=True):
    """Child ``name`` ended and was reaped; ``stderr_tail`` holds its last stderr lines."""

    name: str
    pid: int
    status: ExitStatus
    stderr_tail: str


class TerminateProcess(Event[None], frozen=True, kw_only=True):
    """SIGTERM child ``name``, SIGKILL after ``grace`` s, reap. Completes when it is gone."""

    name: str
    grace: float = 5.0


# -- QMP ---------------------------------------------------------------------------------------


class QmpReply(msgspec.Struct, frozen=True):
    """The outcome of an ``ExecuteQmp``: QMP's ``return`` value or a typed error."""

    value: Any = None
    error: QmpError | None = None

    def unwrap(self) -> Any:
        """The value, or raise the error."""
        if self.error is not None:
            raise self.error
        return self.value


class ExecuteQmp(Event[QmpReply], frozen=True, kw_only=True):
    """Run ``command`` on QEMU's monitor; the completed event's result is a :class:`QmpReply`."""

    command: QmpCommand


class MonitorEvent(Event[None], frozen=True, kw_only=True):
    """A QMP event from QEMU; subclasses exist for the kinds the runner reacts to."""

    qmp: QmpEvent


class ShutdownEvent(MonitorEvent, frozen=True, kw_only=True):
    """QMP ``SHUTDOWN`` (``qmp.guest``: initiated by the guest)."""


class PowerdownEvent(MonitorEvent, frozen=True, kw_only=True):
    """QMP ``POWERDOWN``: the power button press reached the machine."""


class ResetEvent(MonitorEvent, frozen=True, kw_only=True):
    """QMP ``RESET``."""


class VserportChangeEvent(MonitorEvent, frozen=True, kw_only=True):
    """QMP ``VSERPORT_CHANGE``: the guest opened or closed a virtio-serial port."""


class BalloonChangeEvent(MonitorEvent, frozen=True, kw_only=True):
    """QMP ``BALLOON_CHANGE``."""


class TrayMovedEvent(MonitorEvent, frozen=True, kw_only=True):
    """QMP ``DEVICE_TRAY_MOVED``."""


class DeviceDeletedEvent(MonitorEvent, frozen=True, kw_only=True):
    """QMP ``DEVICE_DELETED``."""


class MonitorClosed(Event[None], frozen=True, kw_only=True):
    """The QMP connection ended (normally because QEMU exited)."""


# -- guest agent -------------------------------------------------------------------------------


class GuestAgentConnected(Event[None], frozen=True, kw_only=True):
    """qemu-ga answered ``guest-sync-delimited`` and ``guest-ping``."""


class GuestAgentDisconnected(Event[None], frozen=True, kw_only=True):
    """The guest closed qemu-ga's port (or the connection broke)."""


class OsInfo(Event[None], frozen=True, kw_only=True):
    """The ``guest-get-osinfo`` answer: the guest has booted far enough to run its agent."""

    info: dict[str, Any]


class GuestShutdown(Event[bool], frozen=True, kw_only=True):
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


class ShutdownRung(Event[None], frozen=True, kw_only=True):
    """The shutdown ladder reached ``rung``; ``deadline`` is the ``time.monotonic()`` value at
    which the graceful phase ends (``None`` when not applicable)."""

    rung: Rung
    deadline: float | None
    detail: str = ""


class TerminationSignal(Event[None], frozen=True, kw_only=True):
    """The process received ``signal`` (SIGTERM/SIGINT). The first one fires ``Stop``;
    docs/runner.md describes repeats."""

    signal: int


class EscalateShutdown(Event[None], frozen=True, kw_only=True):
    """Skip the rest of the graceful phase: go to the terminate rung now."""

    reason: str
