"""Day-2 operations requested through the API: pause/resume, live disk resize, filesystem
freeze/thaw, screenshot.

Each request is answered by the component that owns the operation with an outcome event,
which it also fires, so the event stream records every operation and how it ended
(``applied``, ``rejected`` when the VM's state does not allow it, ``failed`` when QEMU or the
guest agent refused it). :class:`~vmrunner.events.Outcome` is the changes' enum.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from vmrunner.core import Event
from vmrunner.events.changes import Outcome

PAUSE_REASON = "requested"
"""The pause reason (``GET /status`` ``paused.reason``, ``GuestPaused.reason``) of a pause
the operator asked for; QEMU's own pauses carry its run state (``io-error``...)."""

MAX_FREEZE_TIMEOUT = 3600.0
"""The longest deadline (s) a filesystem freeze may ask for."""


class PauseChange(Event[None], frozen=True, kw_only=True):
    """A requested ``pause`` (QMP ``stop``) or ``resume`` (``cont``) ended. After a resume,
    ``clock`` says how the guest's clock was resynced (``guest-set-time``): ``"synced"``,
    ``"no agent"``, or the agent's error."""

    action: Literal["pause", "resume"]
    outcome: Outcome
    detail: str = ""
    clock: str = ""


class PauseRequested(Event[PauseChange], frozen=True, kw_only=True):
    """Pause the guest's vCPUs now (``POST /pause``)."""


class ResumeRequested(Event[PauseChange], frozen=True, kw_only=True):
    """Resume a guest the operator paused (``POST /resume``) and resync its clock."""


class DiskResizeChange(Event[None], frozen=True, kw_only=True):
    """A requested live resize of ``drive`` (QEMU's node, e.g. ``disk0``) ended: from
    ``previous`` to ``size`` bytes (both 0 when unknown)."""

    drive: str
    outcome: Outcome
    previous: int = 0
    size: int = 0
    detail: str = ""


class DiskResizeRequested(Event[DiskResizeChange], frozen=True, kw_only=True):
    """Tell the guest that ``drive``'s file or block device has grown (``POST
    /resize-disk``): ``drive`` is the disk's node name (``disk0`` for the first raw drive) or
    the path of its file or device."""

    drive: str


class FsFreezeChange(Event[None], frozen=True, kw_only=True):
    """A filesystem freeze or thaw through the guest agent ended. ``filesystems``: how many
    the agent froze or thawed; ``status``: ``guest-fsfreeze-status`` after it (``frozen``,
    ``thawed``, or empty when unknown); ``trigger``: why (``requested``, ``deadline``: the
    automatic thaw, ``stop``: the runner stops); ``thaw_at``: the deadline (epoch seconds)
    while frozen."""

    action: Literal["freeze", "thaw"]
    outcome: Outcome
    trigger: Literal["requested", "deadline", "stop"] = "requested"
    filesystems: int = 0
    status: str = ""
    thaw_at: float | None = None
    detail: str = ""


class FsFreezeRequested(Event[FsFreezeChange], frozen=True, kw_only=True):
    """Freeze the guest's filesystems (``POST /fsfreeze``); thawed automatically after
    ``timeout`` seconds at the latest (more than 0, at most :data:`MAX_FREEZE_TIMEOUT`)."""

    timeout: float


class FsThawRequested(Event[FsFreezeChange], frozen=True, kw_only=True):
    """Thaw the guest's filesystems now (``POST /fsthaw``)."""


class Screenshot(msgspec.Struct, frozen=True, kw_only=True):
    """A picture of the display: ``data`` in ``format`` (``png``), or ``error``."""

    data: bytes = b""
    format: str = "png"
    width: int = 0
    height: int = 0
    error: str = ""


class ScreenshotTaken(Event[None], frozen=True, kw_only=True):
    """A screenshot was taken (``size`` bytes) or failed (``detail``)."""

    outcome: Outcome
    width: int = 0
    height: int = 0
    size: int = 0
    detail: str = ""


class ScreenshotRequested(Event[Screenshot], frozen=True, kw_only=True):
    """Take a screenshot of the display (``POST /screenshot``)."""
