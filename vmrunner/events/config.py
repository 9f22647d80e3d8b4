"""The reload plan: what an accepted configuration change does to the running VM."""

from __future__ import annotations

import enum
from typing import Any

import msgspec

from vmrunner.core import Event

REDACTED = "<redacted>"
"""Stands for the values of sensitive keys in plans and logs."""


class PlanClass(enum.Enum):
    """When a changed key takes effect."""

    LIVE = "live"
    """Applied to the running VM now; the controller's outcome event tells the result."""
    NEXT_BOOT = "next-boot"
    """At the guest's next reboot, without restarting QEMU (no key today)."""
    RESTART = "restart"
    """Only when the runner is started again; the running VM keeps the old value."""

    @property
    def label(self) -> str:
        """Short words for logs: ``live``, ``at next boot``, ``needs restart``."""
        return {"live": "live", "next-boot": "at next boot",
                "restart": "needs restart"}[self.value]


class PlanEntry(msgspec.Struct, frozen=True):
    """One changed leaf: its key path, old and new value (``None``: absent) and class."""

    path: str
    old: Any
    new: Any
    klass: PlanClass
    reason: str


class ReloadPlan(Event[None], frozen=True, kw_only=True):
    """The plan for an accepted configuration change (fired by the ReloadPlanner).

    ``generation`` counts the plans of this runner (1, 2, ...). ``entries`` has one
    :class:`PlanEntry` per changed leaf key. ``restart_pending`` lists the key paths whose
    value now differs from the configuration QEMU was started with and that need a restart
    (cumulative over earlier plans; empty again when such an edit is undone).
    """

    generation: int
    entries: tuple[PlanEntry, ...]
    restart_pending: tuple[str, ...] = ()

    def of_class(self, klass: PlanClass) -> tuple[PlanEntry, ...]:
        """The entries of one class."""
        return tuple(e for e in self.entries if e.klass is klass)

    @property
    def needs_restart(self) -> bool:
        """Whether some key of this plan takes effect only after a restart."""
        return any(e.klass is PlanClass.RESTART for e in self.entries)
