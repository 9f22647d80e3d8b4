"""Guest faults: kernel panics (pvpanic) and failed disk requests, as the runner reports them.

The QMP events (:class:`~vmrunner.events.qmp.QmpGuestPanicked`,
:class:`~vmrunner.events.qmp.QmpGuestCrashloaded`,
:class:`~vmrunner.events.qmp.QmpBlockIoError`) are QEMU's words; the events here are the
runner's, fired once per fault by the PanicHandler and the DiskErrorWatcher, with what the
runner did about it. The status records answer the ``StatusQuery`` (``GET /status``,
``/metrics``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from vmrunner.core import Event
from vmrunner.events.status import StatusPart

PanicPolicy = Literal["reset", "stop", "pause"]
"""``/Runner/vm/onPanic``."""


class GuestPanicked(Event[None], frozen=True, kw_only=True):
    """The guest's kernel panicked (reported through pvpanic or another panic device).

    ``policy`` is ``onPanic`` at that moment and says what follows (``reset``: a
    ``system_reset``; ``stop``: the runner stops with exit code 8; ``pause``: QEMU keeps the
    guest paused). ``action`` is what QEMU said it does (``pause``, ``poweroff``, ``run``);
    ``info`` is the panic device's detail (``None`` from pvpanic). ``crash_loaded``: the guest
    goes on into its crash kernel (kdump) by itself; no policy is applied then.
    """

    policy: PanicPolicy
    action: str
    info: Mapping[str, Any] | None = None
    crash_loaded: bool = False


class DiskIoError(Event[None], frozen=True, kw_only=True):
    """A disk request of the guest failed on the host (``BLOCK_IO_ERROR``).

    ``drive`` is the drive's node name (``disk0``...), ``operation`` ``read`` or ``write``,
    ``action`` QEMU's response (``stop``: the guest is paused; ``report``: the guest sees an
    I/O error; ``ignore``), ``nospace`` whether the host is out of space (ENOSPC), ``reason``
    QEMU's text for the error (may be empty).
    """

    drive: str
    operation: str
    action: str
    nospace: bool
    reason: str


class PanicStatus(StatusPart, frozen=True, kw_only=True):
    """The PanicHandler: the policy in force, panics seen since the runner started (``count``),
    the last one (``last_time``, Unix time; QEMU's ``last_action`` and ``last_info``;
    ``last_crash_loaded``) and the resets the ``reset`` policy made."""

    policy: PanicPolicy | None = None
    count: int = 0
    last_time: float | None = None
    last_action: str | None = None
    last_info: Mapping[str, Any] | None = None
    last_crash_loaded: bool = False
    resets: int = 0


class DriveIoErrors(msgspec.Struct, frozen=True, kw_only=True):
    """Failed requests of one drive and operation: how many, and the last one's details."""

    drive: str
    operation: str
    count: int
    action: str
    nospace: bool
    reason: str
    last_time: float


class DiskErrorStatus(StatusPart, frozen=True, kw_only=True):
    """The DiskErrorWatcher: failed disk requests per drive and operation, in drive order."""

    drives: tuple[DriveIoErrors, ...] = ()
