"""EventLog: what the API keeps of its own, learnt from the bus.

* the event stream of ``GET /events``: every event numbered (``seq``), the last
  :data:`MAX_BACKLOG` kept, fed to the subscribers (:meth:`EventLog.subscribe`);
* the recent errors (start failures, rejected configurations, failed or unreached changes,
  children that died);
* :class:`Counters` for ``GET /metrics``: QMP commands, configuration reloads and rejections,
  the shutdown's duration.

The state of the VM is not kept here: the components answer a
:class:`~vmrunner.events.StatusQuery` for that (:mod:`vmrunner.api.status`).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Any

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
    CdromMediumChange,
    ConfigureQemu,
    CpuChange,
    DisplayPasswordChange,
    ExecuteQmp,
    Outcome,
    ProcessExited,
    QmpReply,
    RamChange,
    ResetChange,
    RunnerStateChanged,
    RunState,
    StartFailed,
    StatusQuery,
)
from vmrunner.events.stats import SampleQmp

from .serialize import event_record

MAX_ERRORS = 20
MAX_BACKLOG = 256
"""Events kept for subscribers that ask for the recent past (``since``)."""
SUBSCRIBER_QUEUE = 1024
"""Events a slow subscriber may lag behind before it is dropped."""
_BAD_OUTCOMES = (Outcome.REJECTED, Outcome.FAILED, Outcome.NOT_REACHED)
ERROR_KINDS = ("config", "start", "process", "change", "internal", "other")
"""The kinds of :attr:`Counters.errors_by_kind`: a rejected configuration, a failed start, a
child that died, a live change that failed or was not reached, an unhandled handler error,
anything else."""


class Counters:
    """Monotonic counts for the metrics."""

    def __init__(self) -> None:
        self.qmp_commands: dict[str, int] = {}
        self.qmp_errors: dict[str, int] = {}
        self.qmp_seconds: dict[str, float] = {}
        self.config_reloads = 0
        self.config_rejections = 0
        self.shutdown_started: float | None = None
        """``time.monotonic()`` of the TERMINATING transition."""
        self.shutdown_seconds: float | None = None
        """From TERMINATING to STOPPED (once stopped)."""
        self.errors_by_kind: dict[str, int] = dict.fromkeys(ERROR_KINDS, 0)
        """Errors recorded so far (also those that fell out of the kept recent ones)."""


class Subscriber:
    """A queue of event records for one ``GET /events`` client; ``None`` ends the stream.
    Once a record did not fit, :attr:`dropped` is set and nothing more is queued: the stream
    ends, after what is queued, with a marker saying so."""

    def __init__(self, size: int = SUBSCRIBER_QUEUE) -> None:
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(size)
        self.dropped = False

    def offer(self, record: dict[str, Any] | None) -> bool:
        """Queue ``record``; False if the subscriber is too far behind (then it is ended)."""
        if self.dropped:
            return False
        try:
            self.queue.put_nowait(record)
            return True
        except asyncio.QueueFull:
            self.dropped = True
            return False


class EventLog(BusComponent):
    """Numbers and keeps the bus's events, the recent errors and the counters (module
    docstring). Status queries and the statistics sampler's QMP commands
    (:class:`~vmrunner.events.stats.SampleQmp`) are not numbered or streamed."""

    def __init__(self, channel: Channel | None = None, name: str | None = None, *,
                 subscriber_queue: int = SUBSCRIBER_QUEUE) -> None:
        super().__init__(channel, name)
        self.subscriber_queue = subscriber_queue
        self.created = time.time()
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
        sub = Subscriber(self.subscriber_queue)
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
        if isinstance(event, StatusQuery | SampleQmp):
            return
        self.seq += 1
        when = time.time()
        self._backlog.append((self.seq, when, event))
        if not self._subscribers:
            return
        record = event_record(self.seq, when, event)
        for sub in list(self._subscribers):
            if not sub.offer(record):
                self._subscribers.remove(sub)

    # -- counters ------------------------------------------------------------------------

    @handler
    def on_state(self, event: RunnerStateChanged) -> None:
        """Times the shutdown (TERMINATING to STOPPED)."""
        counters = self.counters
        if event.new is RunState.TERMINATING:
            counters.shutdown_started = time.monotonic()
        elif event.new is RunState.STOPPED and counters.shutdown_started is not None:
            counters.shutdown_seconds = time.monotonic() - counters.shutdown_started

    @handler
    def on_configure(self, event: ConfigureQemu) -> None:
        if not event.initial:
            self.counters.config_reloads += 1

    @handler
    def on_rejected(self, event: ConfigurationRejected) -> None:
        self.counters.config_rejections += 1
        for line in event.errors:
            self._error(f"configuration rejected: {line}", "config")

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

    # -- errors --------------------------------------------------------------------------

    @handler
    def on_process(self, event: ProcessExited) -> None:
        if not event.status.success and self.counters.shutdown_started is None:
            self._error(f"{event.name} {event.status}", "process")

    @handler
    def on_ram(self, event: RamChange) -> None:
        self._outcome("RAM", event.outcome, event.detail)

    @handler
    def on_cpus(self, event: CpuChange) -> None:
        self._outcome("vCPU", event.outcome, event.detail)

    @handler
    def on_reset(self, event: ResetChange) -> None:
        self._outcome("reset", event.outcome, event.detail)

    @handler
    def on_display(self, event: DisplayPasswordChange) -> None:
        self._outcome("display password", event.outcome, event.message)

    def _outcome(self, what: str, outcome: Outcome, detail: str) -> None:
        if outcome in _BAD_OUTCOMES:
            self._error(f"{what} change {outcome.value}: {detail}", "change")

    @handler
    def on_cdrom(self, event: CdromMediumChange) -> None:
        if event.outcome in (Outcome.REJECTED, Outcome.FAILED):
            self._error(f"{event.drive}: {event.outcome.value}: {event.message}", "change")

    @handler
    def on_start_failed(self, event: StartFailed) -> None:
        self._error(f"start failed at {event.step}: {event.reason}", "start")

    @handler
    def on_error(self, event: Error) -> None:
        self._error(event.message, "internal")

    def _error(self, message: str, kind: str = "other") -> None:
        self.errors.append({"time": round(time.time(), 3), "message": message})
        by_kind = self.counters.errors_by_kind
        by_kind[kind] = by_kind.get(kind, 0) + 1
