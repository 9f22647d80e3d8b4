"""Events of the QEMU guest agent (qemu-ga) in the guest."""

from __future__ import annotations

from typing import Any

import msgspec

from vmrunner.core import Event


class GuestAgentConnected(Event[None], frozen=True, kw_only=True):
    """qemu-ga answered ``guest-sync-delimited`` and ``guest-ping``."""


class GuestAgentDisconnected(Event[None], frozen=True, kw_only=True):
    """The guest closed qemu-ga's port (or the connection broke)."""


class OsInfo(Event[None], frozen=True, kw_only=True):
    """The ``guest-get-osinfo`` answer: the guest has booted far enough to run its agent."""

    info: dict[str, Any]


class GuestPaused(Event[None], frozen=True, kw_only=True):
    """QEMU paused the running guest on its own (``reason``: QEMU's run state, e.g.
    ``io-error``, ``guest-panicked``, ``paused``, ``internal-error``), or the operator did
    (``reason`` ``requested``: ``vmrunner pause``); ``detail`` says why, as far as QEMU told
    (the last disk error)."""

    reason: str
    detail: str


class GuestResumed(Event[None], frozen=True, kw_only=True):
    """The guest runs again after :class:`GuestPaused`."""


class GuestShutdown(Event[bool], frozen=True, kw_only=True):
    """Ask qemu-ga to power the guest off. Result: whether the request was sent."""


class GuestAgentAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """qemu-ga's ``return`` value, or ``error`` (its error, a timeout, no agent)."""

    value: Any = None
    error: str | None = None


class GuestAgentRequest(Event[GuestAgentAnswer], frozen=True, kw_only=True):
    """Run ``command`` (a qemu-ga command, e.g. ``guest-fsfreeze-freeze``) through the
    GuestAgent's connection; answered with its result (an error when it is not connected)."""

    command: str
    arguments: dict[str, Any] = msgspec.field(default_factory=dict)
    timeout: float | None = None
    """Seconds for the whole exchange (``None``: the GuestAgent's reply timeout, 5 s by
    default); for commands known to be slow, such as a freeze."""


# -- the vmop agent (auto-login, vm.display.loggedInUser) -----------------------------------

class VmopAgentConnected(Event[None], frozen=True, kw_only=True):
    """The guest's vmop agent said it started (``220``); fired on every (re)start."""


class VmopAgentDisconnected(Event[None], frozen=True, kw_only=True):
    """The vmop agent is gone: it quit (``240``), the guest closed its port, or QEMU exited."""

    reason: str = ""


class UserLoggedIn(Event[None], frozen=True, kw_only=True):
    """The vmop agent confirmed ``login <user>`` (``201``, also "already logged in")."""

    user: str


class UserLoggedOut(Event[None], frozen=True, kw_only=True):
    """The vmop agent confirmed ``logout`` (``202``)."""


class LoginFailed(Event[None], frozen=True, kw_only=True):
    """The vmop agent refused a command (``4xx``/``5xx``): ``code`` and ``text`` as it said
    them; ``user`` is the user of the failed ``login`` (``None``: a ``logout`` failed)."""

    code: int
    text: str
    user: str | None = None
