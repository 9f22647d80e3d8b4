"""Events of the live changes: RAM, vCPUs, reset, CD-ROM media and the display password.

Fired by the controllers in :mod:`vmrunner.components`; each change ends in an event with an
:class:`Outcome`, never claimed before QEMU confirmed it (docs/guide/live-changes.md).
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Literal

from vmrunner.core import Event


class Outcome(enum.Enum):
    """How a requested change ended (so far)."""

    APPLIED = "applied"
    """Done, and confirmed by QEMU (a query or the event that proves it)."""
    PENDING = "pending"
    """Waiting for the guest (e.g. it has locked the CD tray); applied when the guest lets go."""
    REJECTED = "rejected"
    """Bad input (the message names the key path or file); nothing was sent to QEMU."""
    FAILED = "failed"
    """QEMU refused or QMP broke; the message says why."""
    SUPERSEDED = "superseded"
    """A newer configuration replaced this pending change before it could be applied."""
    NOT_REACHED = "not-reached"
    """QEMU accepted the request but the guest did not get there within the bounded wait
    (e.g. no balloon driver, a refused vCPU unplug); not retried."""


class CdromMediumChange(Event[None], frozen=True, kw_only=True):
    """The medium change of drive ``drive`` (``cd0``...) from ``old`` to ``new`` (``None``:
    empty) reached ``outcome``. ``key`` is the drive's config key path (``/Runner/vm/drives/N``);
    ``forced``: the tray was opened with ``force`` (``forceAfter``)."""

    drive: str
    key: str
    old: Path | None
    new: Path | None
    outcome: Outcome
    message: str = ""
    forced: bool = False


class CdromEjectedByGuest(Event[None], frozen=True, kw_only=True):
    """The guest opened the tray of ``drive`` with no change pending; ``medium`` stays in the
    open tray and is not re-inserted (the guest's decision stands)."""

    drive: str
    medium: Path | None


class DisplayPasswordChange(Event[None], frozen=True, kw_only=True):
    """The display password (from ``display-password``) and/or its expiry (from
    ``password-expiry``) reached ``outcome``. Never carries the password itself.

    ``serial`` counts the passwords QEMU accepted (0 before the first one); ``expiry`` is the
    value sent (``now``, ``never``, ``+N``, ``N``), if any.
    """

    protocol: str
    outcome: Outcome
    serial: int
    password_changed: bool
    expiry: str | None = None
    message: str = ""


class RamChange(Event[None], frozen=True, kw_only=True):
    """Where a balloon target stands. Sizes in bytes; ``actual`` is the guest's size as QEMU
    last reported it (``None``: not known yet)."""

    requested: int
    actual: int | None
    outcome: Outcome
    detail: str = ""


class CpuChange(Event[None], frozen=True, kw_only=True):
    """Where a ``currentCpus`` change stands. ``present``: the vCPUs QEMU has (``None``:
    unknown); QMP cannot tell whether the guest has them online."""

    requested: int
    present: int | None
    outcome: Outcome
    detail: str = ""


class RestartNeeded(Event[None], frozen=True, kw_only=True):
    """A controller cannot apply ``path`` to the running QEMU (``needed``, with the
    ``reason``), or can again (``needed=False``, e.g. the value went back). The status's
    ``restartPending`` lists the paths that need one."""

    path: str
    needed: bool
    reason: str = ""


class ResetChange(Event[None], frozen=True, kw_only=True):
    """The reset requested by raising ``resetCounter`` from ``previous`` to ``counter``
    (``source="resetCounter"``), or through the API (``source="api"``: ``previous`` and
    ``counter`` are both the counter's current value, 0 when unset)."""

    previous: int
    counter: int
    outcome: Outcome
    detail: str = ""
    source: Literal["resetCounter", "api"] = "resetCounter"
