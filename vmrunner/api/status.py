"""StatusTracker: what the runner is doing, learnt from the typed events on the bus alone.

It keeps a snapshot for ``GET /status`` (:meth:`StatusTracker.snapshot`), counters for
``GET /metrics`` (:class:`Counters`) and the recent events for ``GET /events``
(:meth:`StatusTracker.subscribe`). It never calls another component.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from vmrunner.components.base import BusComponent
from vmrunner.core import (
    Channel,
    ConfigurationRejected,
    Error,
    Event,
    HandlerContext,
    handler,
)
from vmrunner.events import (
    CdromEjectedByGuest,
    CdromMediumChange,
    ConfigureQemu,
    CpuChange,
    DisplayPasswordChange,
    ExecuteQmp,
    GuestAgentConnected,
    GuestAgentDisconnected,
    OsInfo,
    Outcome,
    ProcessExited,
    ProcessRole,
    ProcessStarted,
    QmpBalloonChange,
    QmpDeviceTrayMoved,
    QmpReply,
    RamChange,
    ReloadPlan,
    ResetChange,
    Rung,
    RunnerStateChanged,
    RunState,
    ShutdownRung,
    StartFailed,
    VmPrepared,
)

from .serialize import event_record, to_json

MAX_ERRORS = 20
MAX_BACKLOG = 256
"""Events kept for subscribers that ask for the recent past (``since``)."""
SUBSCRIBER_QUEUE = 1024
"""Events a slow subscriber may lag behind before it is dropped."""
_BAD_OUTCOMES = (Outcome.REJECTED, Outcome.FAILED, Outcome.NOT_REACHED)


class Counters(msgspec.Struct):
    """Monotonic counts for the metrics."""

    qmp_commands: dict[str, int] = msgspec.field(default_factory=dict)
    qmp_errors: dict[str, int] = msgspec.field(default_factory=dict)
    qmp_seconds: dict[str, float] = msgspec.field(default_factory=dict)
    config_reloads: int = 0
    config_rejections: int = 0
    shutdown_started: float | None = None
    """``time.monotonic()`` of the TERMINATING transition."""
    shutdown_seconds: float | None = None
    """From TERMINATING to STOPPED (once stopped)."""


class _Cdrom(msgspec.Struct):
    key: str
    medium: str | None
    tray_open: bool = False
    pending: str | None = None
    pending_since: float | None = None
    last_outcome: str | None = None
    message: str = ""


class Subscriber:
    """A queue of event records for one ``GET /events`` client; ``None`` ends the stream."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(SUBSCRIBER_QUEUE)

    def offer(self, record: dict[str, Any] | None) -> bool:
        """Queue ``record``; False if the subscriber is too far behind (then it is ended)."""
        try:
            self.queue.put_nowait(record)
            return True
        except asyncio.QueueFull:
            return False


def _wall(deadline: float | None) -> float | None:
    """A ``time.monotonic()`` value as Unix time."""
    return None if deadline is None else time.time() + (deadline - time.monotonic())


def _path(value: Path | None) -> str | None:
    return None if value is None else str(value)


class StatusTracker(BusComponent):
    """Follows the bus and keeps the runner's status (see the module docstring)."""

    def __init__(self, channel: Channel | None = None, name: str | None = None) -> None:
        super().__init__(channel, name)
        self.state = RunState.INITIALIZING
        self.state_reason = ""
        self.state_since = time.time()
        self.vm_name: str | None = None
        self.qemu_pid: int | None = None
        self.rung: Rung | None = None
        self.rungs: list[str] = []
        self.rung_detail = ""
        self.deadline: float | None = None
        """``time.monotonic()`` at which the graceful shutdown phase ends."""
        self.ram_maximum: int | None = None
        self.ram_requested: int | None = None
        self.ram_actual: int | None = None
        self.ram_outcome: str | None = None
        self.cpus_maximum: int | None = None
        self.cpus_requested: int | None = None
        self.cpus_present: int | None = None
        self.cpus_outcome: str | None = None
        self.cdroms: dict[str, _Cdrom] = {}
        self.agent_connected = False
        self.os_info: dict[str, Any] | None = None
        self.generation = 0
        self.last_plan: dict[str, Any] | None = None
        self.restart_pending: list[str] = []
        self.errors: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_ERRORS)
        self.counters = Counters()
        self.seq = 0
        self._backlog: collections.deque[tuple[int, float, Event[Any]]] = collections.deque(
            maxlen=MAX_BACKLOG)
        self._subscribers: list[Subscriber] = []
        self._closed = False

    # -- event stream ----------------------------------------------------------------------

    def subscribe(self, since: int | None = None) -> Subscriber:
        """A new subscriber; with ``since``, the kept events after that ``seq`` come first."""
        sub = Subscriber()
        if since is not None:
            for seq, when, event in self._backlog:
                if seq > since:
                    sub.offer(event_record(seq, when, event))
        if self._closed:
            sub.offer(None)
        else:
            self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Stop feeding ``sub``."""
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    def close_streams(self) -> None:
        """End every stream (the runner has stopped)."""
        self._closed = True
        for sub in self._subscribers:
            sub.offer(None)
        self._subscribers.clear()

    @handler(events=[Event], priority=1_000_000)
    def on_any(self, event: Event[Any]) -> None:
        self.seq += 1
        when = time.time()
        self._backlog.append((self.seq, when, event))
        if not self._subscribers:
            return
        record = event_record(self.seq, when, event)
        for sub in list(self._subscribers):
            if not sub.offer(record):
                self._subscribers.remove(sub)

    # -- state and shutdown -------------------------------------------------------------------

    @handler
    def on_state(self, event: RunnerStateChanged) -> None:
        self.state = event.new
        self.state_reason = event.message or event.reason
        self.state_since = time.time()
        now = time.monotonic()
        if event.new is RunState.TERMINATING:
            self.counters.shutdown_started = now
        elif event.new is RunState.STOPPED and self.counters.shutdown_started is not None:
            self.counters.shutdown_seconds = now - self.counters.shutdown_started

    @handler
    def on_rung(self, event: ShutdownRung) -> None:
        self.rung = event.rung
        self.rungs.append(event.rung.value)
        self.rung_detail = event.detail
        self.deadline = event.deadline

    @handler
    def on_prepared(self, event: VmPrepared) -> None:
        self._configured(event.plan.config)

    @handler
    def on_process(self, event: ProcessStarted | ProcessExited) -> None:
        if event.name == ProcessRole.QEMU:
            self.qemu_pid = event.pid if isinstance(event, ProcessStarted) else None
        if isinstance(event, ProcessExited) and not event.status.success \
                and self.state is not RunState.TERMINATING:
            self._error(f"{event.name} {event.status}")

    # -- configuration --------------------------------------------------------------------

    @handler
    def on_configure(self, event: ConfigureQemu) -> None:
        if not event.initial:
            self.generation += 1
            self.counters.config_reloads += 1
        self._configured(event.config)

    def _configured(self, config: Any) -> None:
        from vmrunner.components.cdrom import cdrom_drives

        vm = config.vm
        self.vm_name = vm.name
        self.ram_maximum = vm.maximum_ram
        self.ram_requested = vm.current_ram or vm.maximum_ram
        self.cpus_maximum = vm.maximum_cpus
        self.cpus_requested = vm.current_cpus or vm.maximum_cpus
        for drive in cdrom_drives(config):
            if drive.id not in self.cdroms:
                self.cdroms[drive.id] = _Cdrom(key=drive.key, medium=_path(drive.file))

    @handler
    def on_rejected(self, event: ConfigurationRejected) -> None:
        self.counters.config_rejections += 1
        for line in event.errors:
            self._error(f"configuration rejected: {line}")

    @handler
    def on_plan(self, event: ReloadPlan) -> None:
        self.last_plan = to_json(event)
        self.restart_pending = list(event.restart_pending)

    # -- RAM, vCPUs, CD-ROMs, guest agent ------------------------------------------------

    @handler
    def on_balloon(self, event: QmpBalloonChange) -> None:
        self.ram_actual = event.actual

    @handler
    def on_ram(self, event: RamChange) -> None:
        self.ram_requested = event.requested
        if event.actual is not None:
            self.ram_actual = event.actual
        self.ram_outcome = event.outcome.value
        self._outcome("RAM", event.outcome, event.detail)

    @handler
    def on_cpus(self, event: CpuChange) -> None:
        self.cpus_requested = event.requested
        if event.present is not None:
            self.cpus_present = event.present
        self.cpus_outcome = event.outcome.value
        self._outcome("vCPU", event.outcome, event.detail)

    @handler
    def on_reset(self, event: ResetChange) -> None:
        self._outcome("reset", event.outcome, event.detail)

    @handler
    def on_display(self, event: DisplayPasswordChange) -> None:
        self._outcome("display password", event.outcome, event.message)

    def _outcome(self, what: str, outcome: Outcome, detail: str) -> None:
        if outcome in _BAD_OUTCOMES:
            self._error(f"{what} change {outcome.value}: {detail}")

    @handler
    def on_cdrom(self, event: CdromMediumChange) -> None:
        drive = self.cdroms.setdefault(event.drive, _Cdrom(key=event.key,
                                                           medium=_path(event.old)))
        drive.last_outcome = event.outcome.value
        drive.message = event.message
        if event.outcome is Outcome.APPLIED:
            drive.medium, drive.pending, drive.pending_since = _path(event.new), None, None
            drive.tray_open = False
        elif event.outcome is Outcome.PENDING:
            drive.pending, drive.pending_since = _path(event.new), time.time()
        elif event.outcome in (Outcome.SUPERSEDED, Outcome.REJECTED, Outcome.FAILED):
            if event.outcome is not Outcome.SUPERSEDED:
                self._error(f"{event.drive}: {event.outcome.value}: {event.message}")
            drive.pending = drive.pending_since = None

    @handler
    def on_tray(self, event: QmpDeviceTrayMoved) -> None:
        self._tray(event.id, event.tray_open)

    @handler
    def on_ejected(self, event: CdromEjectedByGuest) -> None:
        self._tray(event.drive, True)

    def _tray(self, drive_id: str, is_open: bool) -> None:
        if drive_id in self.cdroms:
            self.cdroms[drive_id].tray_open = is_open

    @handler
    def on_agent(self, event: GuestAgentConnected | GuestAgentDisconnected) -> None:
        self.agent_connected = isinstance(event, GuestAgentConnected)

    @handler
    def on_osinfo(self, event: OsInfo) -> None:
        self.os_info = dict(event.info)

    # -- QMP and errors -----------------------------------------------------------------

    @handler
    def on_qmp(self, event: ExecuteQmp, ctx: HandlerContext[QmpReply]) -> None:
        name = event.command.name
        started = time.monotonic()
        counters = self.counters
        counters.qmp_commands[name] = counters.qmp_commands.get(name, 0) + 1

        def done(results: Callable[[], list[QmpReply]]) -> None:
            counters.qmp_seconds[name] = (counters.qmp_seconds.get(name, 0.0)
                                          + time.monotonic() - started)
            replies = results()
            if not replies or replies[0].error is not None:
                counters.qmp_errors[name] = counters.qmp_errors.get(name, 0) + 1

        ctx.handle.on_completion(lambda h: done(h.results))

    @handler
    def on_start_failed(self, event: StartFailed) -> None:
        self._error(f"start failed at {event.step}: {event.reason}")

    @handler
    def on_error(self, event: Error) -> None:
        self._error(event.message)

    def _error(self, message: str) -> None:
        self.errors.append({"time": round(time.time(), 3), "message": message})

    # -- the snapshot --------------------------------------------------------------------

    @property
    def remaining(self) -> float | None:
        """Seconds left in the graceful shutdown phase (while it runs)."""
        if self.deadline is None or self.state is RunState.STOPPED:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def snapshot(self) -> dict[str, Any]:
        """The ``GET /status`` document."""
        remaining = self.remaining
        return {
            "vm": self.vm_name,
            "state": self.state.value,
            "stateReason": self.state_reason,
            "stateSince": round(self.state_since, 3),
            "qemuPid": self.qemu_pid,
            "shutdown": {
                "rung": None if self.rung is None else self.rung.value,
                "rungs": list(self.rungs),
                "detail": self.rung_detail,
                "deadline": None if remaining is None else round(_wall(self.deadline) or 0, 3),
                "remaining": None if remaining is None else round(remaining, 1),
                "duration": (None if self.counters.shutdown_seconds is None
                             else round(self.counters.shutdown_seconds, 3)),
            },
            "ram": {"maximum": self.ram_maximum, "requested": self.ram_requested,
                    "actual": self.ram_actual, "outcome": self.ram_outcome},
            "cpus": {"maximum": self.cpus_maximum, "requested": self.cpus_requested,
                     "present": self.cpus_present, "outcome": self.cpus_outcome},
            "cdroms": [
                {"drive": drive_id, "key": d.key, "medium": d.medium, "trayOpen": d.tray_open,
                 "pending": d.pending, "pendingSince": d.pending_since,
                 "lastOutcome": d.last_outcome, "message": d.message}
                for drive_id, d in self.cdroms.items()],
            "guestAgent": {"connected": self.agent_connected, "osInfo": self.os_info},
            "config": {"generation": self.generation, "lastPlan": self.last_plan,
                       "restartPending": list(self.restart_pending),
                       "rejections": self.counters.config_rejections},
            "errors": list(self.errors),
            "eventSeq": self.seq,
        }
