"""The status query: ``GET /status`` and ``GET /metrics`` ask the components what they know.

The API fires :class:`StatusQuery`; every component that owns part of the status answers it
with one small record (a sync handler returning a :class:`StatusPart` subclass). Nobody keeps
a copy of another component's state. Times are Unix time unless said otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from vmrunner.core import Event
from vmrunner.events.changes import Outcome
from vmrunner.events.config import ReloadPlan
from vmrunner.events.lifecycle import Rung, RunState


class StatusPart(msgspec.Struct, frozen=True, kw_only=True):
    """One component's answer to :class:`StatusQuery` (base of the records below)."""


class StatusQuery(Event[StatusPart], frozen=True, kw_only=True):
    """What is the runner doing? Each component that owns part of the answer returns its
    :class:`StatusPart` (synchronously); ``await handle.wait()`` collects them."""

    observable = False


class RunnerStatus(StatusPart, frozen=True, kw_only=True):
    """The Runner's state machine: ``state`` entered at ``since`` (``None``: not left
    ``initializing`` yet) because of ``reason`` (the transition's message, else its reason)."""

    vm: str | None
    state: RunState
    reason: str = ""
    since: float | None = None


class PauseStatus(StatusPart, frozen=True, kw_only=True):
    """The PauseWatcher: whether QEMU has paused the running guest (``reason``: QEMU's run
    state, ``detail``: why) since ``since``."""

    paused: bool = False
    reason: str | None = None
    detail: str = ""
    since: float | None = None


class ProcessStatus(StatusPart, frozen=True, kw_only=True):
    """The ProcessManager's live children: ``(name, pid)`` pairs."""

    pids: tuple[tuple[str, int], ...] = ()

    def pid(self, name: str) -> int | None:
        """The pid of the live child ``name``, if any."""
        return next((pid for n, pid in self.pids if n == name), None)


class ShutdownStatus(StatusPart, frozen=True, kw_only=True):
    """The PowerdownHandler's ladder: the rungs reached so far (last: ``rung``), the last
    rung's ``detail``; ``deadline`` (``time.monotonic()``) and ``remaining`` (s, may be
    negative once passed) of the graceful phase once the shutdown has begun."""

    rung: Rung | None = None
    rungs: tuple[Rung, ...] = ()
    detail: str = ""
    deadline: float | None = None
    remaining: float | None = None


class RamStatus(StatusPart, frozen=True, kw_only=True):
    """The RamController's view in bytes: ``requested`` is the balloon target, ``actual`` the
    size QEMU last reported (``None``: not reported yet), ``outcome`` of the last change."""

    maximum: int | None = None
    requested: int | None = None
    actual: int | None = None
    outcome: Outcome | None = None


class CpuStatus(StatusPart, frozen=True, kw_only=True):
    """The CpuController's view: ``present`` is what QEMU last listed (``None``: not
    queried yet), ``outcome`` of the last change."""

    maximum: int | None = None
    requested: int | None = None
    present: int | None = None
    outcome: Outcome | None = None


class CdromDriveStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One CD-ROM drive: the confirmed ``medium``, and the ``pending`` one while a change
    waits for the guest (since ``pending_since``); the last change's outcome and message."""

    drive: str
    key: str
    medium: Path | None
    tray_open: bool = False
    pending: Path | None = None
    pending_since: float | None = None
    last_outcome: Outcome | None = None
    message: str = ""


class CdromStatus(StatusPart, frozen=True, kw_only=True):
    """The CdromController's drives, in id order."""

    drives: tuple[CdromDriveStatus, ...] = ()


class GuestAgentStatus(StatusPart, frozen=True, kw_only=True):
    """The GuestAgent: whether qemu-ga answers, and the last ``guest-get-osinfo`` answer."""

    connected: bool = False
    os_info: dict[str, Any] | None = None


class ConfigStatus(StatusPart, frozen=True, kw_only=True):
    """The ReloadPlanner: plans made so far, the last one, the keys waiting for a restart."""

    generation: int = 0
    last_plan: ReloadPlan | None = None
    restart_pending: tuple[str, ...] = ()


class ConsoleClientStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One connected SPICE session: its main channel's ``host``/``port``, QEMU's
    ``connection_id``, and when its main channel was initialised (``since``)."""

    host: str
    port: str
    connection_id: int
    since: float


class ConsoleStatus(StatusPart, frozen=True, kw_only=True):
    """The ConsoleTracker: ``client`` is the console client's host (the most recently
    connected session still connected; ``None``: nobody), ``clients`` every connected
    session, oldest first."""

    client: str | None = None
    clients: tuple[ConsoleClientStatus, ...] = ()


class VmopAgentStatus(StatusPart, frozen=True, kw_only=True):
    """The VmopAgent (auto-login): whether the guest's agent runs (said ``220``), the user it
    confirmed logged in, the user the configuration wants (``None``: logged out), and the last
    error (a refusal or a missing answer), cleared by the next success."""

    connected: bool = False
    logged_in_user: str | None = None
    wanted_user: str | None = None
    last_error: str | None = None
