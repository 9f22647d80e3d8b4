"""DiskErrorWatcher: failed disk requests of the guest (QEMU's ``BLOCK_IO_ERROR``).

Invariants:

* Every ``BLOCK_IO_ERROR`` is one :class:`~vmrunner.events.DiskIoError` and one more in the
  count of its drive and operation (``GET /status`` ``ioErrors``, the metric
  ``vmrunner_block_io_errors_total{drive,operation}``), kept for the runner's life.
* A WARNING names the drive, the operation, the cause and QEMU's action. A guest retrying a
  failing disk can cause thousands a second (action ``report``), so for each drive and
  operation at most one line per ``log_interval`` (:data:`LOG_INTERVAL`) s is written; the
  next one says how many were not logged.
"""

from __future__ import annotations

import logging
import time

from vmrunner.components.base import BusComponent
from vmrunner.core import Channel, handler
from vmrunner.events import (
    DiskErrorStatus,
    DiskIoError,
    DriveIoErrors,
    QmpBlockIoError,
    StatusQuery,
)

_log = logging.getLogger(__name__)

LOG_INTERVAL = 10.0
"""Seconds between two WARNING lines about the same drive and operation."""


def cause(event: QmpBlockIoError | DiskIoError) -> str:
    """Why a request failed, in words: ``no space left on the host`` or QEMU's reason."""
    return "no space left on the host" if event.nospace else (event.reason or "I/O error")


class DiskErrorWatcher(BusComponent):
    """Reports and counts failed disk requests (see the module docstring)."""

    def __init__(self, channel: Channel | None = None, name: str | None = None, *,
                 log_interval: float = LOG_INTERVAL) -> None:
        super().__init__(channel, name)
        self.log_interval = log_interval
        self._errors: dict[tuple[str, str], DriveIoErrors] = {}
        self._logged: dict[tuple[str, str], tuple[float, int]] = {}
        """(drive, operation) → (``time.monotonic()`` of its last line, errors since)."""

    @handler
    def on_io_error(self, event: QmpBlockIoError) -> None:
        drive = event.node_name or event.device
        key = (drive, event.operation)
        seen = self._errors.get(key)
        self._errors[key] = DriveIoErrors(
            drive=drive, operation=event.operation, count=1 if seen is None else seen.count + 1,
            action=event.action, nospace=event.nospace, reason=event.reason,
            last_time=time.time())
        self.fire(DiskIoError(drive=drive, operation=event.operation, action=event.action,
                              nospace=event.nospace, reason=event.reason))
        now = time.monotonic()
        last, unlogged = self._logged.get(key, (None, 0))
        if last is not None and now - last < self.log_interval:
            self._logged[key] = (last, unlogged + 1)
            return
        self._logged[key] = (now, 0)
        more = f" ({unlogged} more since the last line)" if unlogged else ""
        _log.warning("disk %s: %s failed (%s); QEMU's action: %s%s",
                     drive, event.operation, cause(event), event.action, more)

    @handler
    def on_status_query(self, event: StatusQuery) -> DiskErrorStatus:
        return DiskErrorStatus(drives=tuple(self._errors[k] for k in sorted(self._errors)))
