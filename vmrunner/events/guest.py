"""Events of the QEMU guest agent (qemu-ga) in the guest."""

from __future__ import annotations

from typing import Any

from vmrunner.core import Event


class GuestAgentConnected(Event[None], frozen=True, kw_only=True):
    """qemu-ga answered ``guest-sync-delimited`` and ``guest-ping``."""


class GuestAgentDisconnected(Event[None], frozen=True, kw_only=True):
    """The guest closed qemu-ga's port (or the connection broke)."""


class OsInfo(Event[None], frozen=True, kw_only=True):
    """The ``guest-get-osinfo`` answer: the guest has booted far enough to run its agent."""

    info: dict[str, Any]


class GuestShutdown(Event[bool], frozen=True, kw_only=True):
    """Ask qemu-ga to power the guest off. Result: whether the request was sent."""
