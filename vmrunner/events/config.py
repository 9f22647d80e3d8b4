"""The reload plan: what an accepted configuration change does to the running VM."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
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

    def describe(self) -> str:
        """``/Runner/vm/maximumRam: 1 GiB → 2 GiB: needs restart (...)``."""
        return (f"{self.path}: {_show(self.path, self.old)} → {_show(self.path, self.new)}: "
                f"{self.klass.label} ({self.reason})")


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


def _show(path: str, value: Any) -> str:
    if value is None:
        return "(unset)"
    if path.endswith("Ram") and isinstance(value, int) and not isinstance(value, bool):
        from vmrunner.config.sizes import format_memory

        return format_memory(value)
    if isinstance(value, str):
        return value if value == REDACTED else repr(value)
    if isinstance(value, Mapping | tuple):
        return json.dumps(_thaw(value), separators=(", ", ": "))
    return repr(value)



def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items() if v is not None}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value
