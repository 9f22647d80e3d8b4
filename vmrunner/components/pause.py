"""PauseWatcher: makes a guest that QEMU paused on its own visible.

QEMU stops the vCPUs by itself when a disk request fails with the ``stop`` error action
(``werror=enospc``, the default, on a full host filesystem), on a guest panic with the
``pause`` action, or on an internal error; it reports ``STOP`` and nothing else that lasts.
A paused guest cannot power off, so the shutdown ladder must know (it fires straight to
``terminate``), ``/ready`` must say no, and the operator must see why.

Invariants:

* :class:`~vmrunner.events.GuestPaused` is fired once per pause of a guest that has run
  (``VmContinued``) and has not shut down (a ``STOP`` after ``SHUTDOWN`` is QEMU keeping a
  powered-off guest, not a pause); :class:`~vmrunner.events.GuestResumed` once when it runs
  again. Each logs a WARNING / INFO line.
* The reason is QEMU's run state from ``query-status`` (``io-error``, ``guest-panicked``,
  ``internal-error``, ``paused``...), asked without blocking the pipeline; the detail names
  the last ``BLOCK_IO_ERROR`` (device, operation, "no space left" or QEMU's reason).
* QEMU's exit ends a pause (nothing to resume; no event).
* A pause the operator asked for (``PauseRequested``, ``vmrunner pause``) has the reason
  ``requested`` and the detail "paused by the operator", logged at INFO; it is still a pause
  (``/ready`` says no), but the PauseController resumes it before the shutdown ladder.
"""

from __future__ import annotations

import logging
import time

from vmrunner.components.base import BusComponent
from vmrunner.core import Channel, handler
from vmrunner.events import (
    GuestPaused,
    GuestResumed,
    Outcome,
    ProcessExited,
    ProcessRole,
    QmpBlockIoError,
    QmpReply,
    QmpResume,
    QmpShutdown,
    QmpStop,
    VmContinued,
)
from vmrunner.events.day2 import PAUSE_REASON, PauseChange, PauseRequested
from vmrunner.events.status import PauseStatus, StatusQuery
from vmrunner.protocols.qmp import commands

_log = logging.getLogger(__name__)


class PauseWatcher(BusComponent):
    """Follows ``STOP``/``RESUME`` of a running guest (see the module docstring)."""

    def __init__(self, channel: Channel | None = None, name: str | None = None) -> None:
        super().__init__(channel, name)
        self._running = False
        """``cont`` sent and no ``SHUTDOWN`` since: a ``STOP`` now is a pause."""
        self._last_io_error: QmpBlockIoError | None = None
        self._status = PauseStatus()
        self._announced = False
        """``GuestPaused`` was fired for the current pause."""
        self._requested = False
        """The next (or current) pause is the operator's."""

    @handler
    def on_continued(self, event: VmContinued) -> None:
        self._running = True

    @handler
    def on_shutdown(self, event: QmpShutdown) -> None:
        self._running = False

    @handler
    def on_io_error(self, event: QmpBlockIoError) -> None:
        """Remembered for the detail of a pause (the DiskErrorWatcher logs and counts it)."""
        self._last_io_error = event

    @handler(priority=100)  # before the PauseController sends ``stop``
    def on_pause_requested(self, event: PauseRequested) -> None:
        self._requested = True

    @handler
    def on_pause_change(self, event: PauseChange) -> None:
        if event.action == "pause" and event.outcome is not Outcome.APPLIED \
                and not self._status.paused:
            self._requested = False  # refused: no STOP of the operator's will come

    @handler
    def on_stop(self, event: QmpStop) -> None:
        if not self._running or self._status.paused:
            return
        if self._requested:
            self._status = PauseStatus(paused=True, reason=PAUSE_REASON,
                                       detail="paused by the operator", since=time.time())
            self._announced = True
            _log.info("the guest is paused by the operator")
            self.fire(GuestPaused(reason=PAUSE_REASON, detail=self._status.detail))
            return
        self._status = PauseStatus(paused=True, reason="paused", detail=self._detail(),
                                   since=time.time())
        self.execute_then(commands.QueryStatus(), self._classify)

    def _classify(self, reply: QmpReply) -> None:
        if not self._status.paused:
            return  # resumed meanwhile
        if reply.error is None and isinstance(reply.value, dict):
            reason = str(reply.value.get("status", "paused"))
            self._status = PauseStatus(paused=True, reason=reason, detail=self._detail(),
                                       since=self._status.since)
        status = self._status
        assert status.reason is not None
        self._announced = True
        _log.warning("QEMU paused the guest (%s)%s: it cannot run or power off until resumed",
                     status.reason, f": {status.detail}" if status.detail else "")
        self.fire(GuestPaused(reason=status.reason, detail=status.detail))

    def _detail(self) -> str:
        error = self._last_io_error
        if error is None or error.action != "stop":
            return ""
        why = "no space left on the host" if error.nospace else (error.reason or "I/O error")
        return f"{error.operation} on disk {error.device or error.node_name} failed: {why}"

    @handler
    def on_resume(self, event: QmpResume) -> None:
        if not self._status.paused:
            return
        _log.info("the guest runs again (was paused: %s)", self._status.reason)
        self._status = PauseStatus()
        self._requested = False
        self._last_io_error = None
        if self._announced:
            self._announced = False
            self.fire(GuestResumed())

    @handler
    def on_exited(self, event: ProcessExited) -> None:
        if event.name == ProcessRole.QEMU:
            self._running = False
            self._status = PauseStatus()
            self._announced = False
            self._requested = False

    @handler
    def on_status_query(self, event: StatusQuery) -> PauseStatus:
        return self._status
