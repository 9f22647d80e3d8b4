"""Event pipelines: FIFO queues, each drained by one asyncio task, one event at a time.

Invariants:

1. A pipeline handles one event at a time; its handlers run in the cached order
   (priority descending, tree pre-order, declaration order).
2. Events fired by a handler are appended to the handler's pipeline (FIFO, after
   everything already queued) and are caused by the handled event.
3. Resumed (formerly suspended) events run before queued events.
4. The draining task runs in a fresh ``contextvars.Context``; ``current_handle`` is set
   for each event it dispatches. It ends when both queues are empty; enqueuing restarts it.
5. A handler's ``Exception`` becomes a ``HandlingError`` on the event's channels and the
   next handler runs. ``KeyboardInterrupt``/``SystemExit`` and framework bugs propagate.
   A ``CancelledError`` raised by a handler (not by cancelling the pipeline) ends the
   event's handling and is re-raised in everybody awaiting the event; it is never wrapped.
6. Sync-only handler lists are dispatched without creating a coroutine; the task yields
   to the loop every ``_BURST`` events so other pipelines and I/O are not starved.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from ._internal import Suspension
from .events import Error, HandlingError
from .handle import EventHandle, HandlerContext, current_handle

if TYPE_CHECKING:
    from .tree import ComponentTree, Entry, HandlerList

_log = logging.getLogger("vmrunner.core")
_BURST = 64


class Pipeline:
    """A FIFO of event handles drained by one task (created lazily, owned by the tree)."""

    __slots__ = ("_queue", "_resumed", "_task", "name", "tree")

    def __init__(self, tree: ComponentTree, name: str) -> None:
        self.tree = tree
        self.name = name
        self._queue: deque[EventHandle[Any]] = deque()
        self._resumed: deque[tuple[EventHandle[Any], Suspension]] = deque()
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Pipeline {self.name} queued={len(self._queue)}>"

    @property
    def busy(self) -> bool:
        """Whether the pipeline's task is running."""
        return self._task is not None

    def enqueue(self, handle: EventHandle[Any]) -> None:
        """Append ``handle`` and make sure the pipeline runs."""
        handle.pipeline = self
        self._queue.append(handle)
        if self._task is None:
            self._start()

    def resume(self, handle: EventHandle[Any], suspension: Suspension) -> None:
        """Queue a suspended handle for resumption (ahead of the normal queue)."""
        self._resumed.append((handle, suspension))
        suspension.parked = False
        if self._task is None:
            self._start()
        self.tree.parked_changed(-1)

    def cancel(self) -> None:
        """Cancel the draining task (tree shutdown)."""
        if self._task is not None:
            self._task.cancel()

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(
            self._run(), name=f"vmrunner-pipeline-{self.name}", context=contextvars.Context())
        self.tree.pipeline_started(self, self._task)

    async def _run(self) -> None:
        queue = self._queue
        resumed = self._resumed
        lookup = self.tree.handlers_for
        burst = 0
        try:
            while True:
                if resumed:
                    handle, suspension = resumed.popleft()
                    current_handle.set(handle)
                    if suspension.on_resume is not None:
                        suspension.on_resume()
                    await self._dispatch(handle, suspension.handlers, suspension.index)
                elif queue:
                    handle = queue.popleft()
                    hlist = lookup(type(handle.event), handle.channels)
                    current_handle.set(handle)
                    if handle.stopped:
                        handle.release()
                    elif hlist.all_sync:
                        self._dispatch_sync(handle, hlist)
                    else:
                        await self._dispatch(handle, hlist.entries, 0)
                    burst += 1
                    if burst >= _BURST:
                        burst = 0
                        current_handle.set(None)
                        await asyncio.sleep(0)
                else:
                    break
        finally:
            current_handle.set(None)
            self._task = None
            self.tree.pipeline_stopped(self)

    def _dispatch_sync(self, handle: EventHandle[Any], hlist: HandlerList) -> None:
        event = handle.event
        ctx: HandlerContext[Any] | None = None
        entries = hlist.entries
        if not entries:
            if isinstance(event, Error):
                self._unhandled(event)
            handle.release()
            return
        for index, entry in enumerate(entries):
            try:
                if entry.pass_ctx:
                    if ctx is None:
                        ctx = HandlerContext(handle)
                    result = entry.method(event, ctx)
                else:
                    result = entry.method(event)
                if result is not None:
                    handle.set_result(result)
            except Exception as exc:
                self._failed(handle, entry, exc)
            except asyncio.CancelledError:
                self._cancelled(handle, entry)
                break
            if handle.suspension is not None:
                self._park(handle, entries, index + 1)
                return
            if handle.stopped:
                break
        handle.release()

    async def _dispatch(self, handle: EventHandle[Any], entries: tuple[Entry, ...],
                        start: int) -> None:
        event = handle.event
        ctx: HandlerContext[Any] | None = None
        if not entries and isinstance(event, Error):
            self._unhandled(event)
        index = start
        while index < len(entries) and not handle.stopped:
            entry = entries[index]
            index += 1
            try:
                if entry.pass_ctx:
                    if ctx is None:
                        ctx = HandlerContext(handle)
                    result = entry.method(event, ctx)
                else:
                    result = entry.method(event)
                if entry.is_async:
                    result = await result
                if result is not None:
                    handle.set_result(result)
            except Exception as exc:
                self._failed(handle, entry, exc)
            except asyncio.CancelledError:
                self._cancelled(handle, entry)
                break
            if handle.suspension is not None:
                self._park(handle, entries, index)
                return
        handle.release()

    def _park(self, handle: EventHandle[Any], entries: tuple[Entry, ...], index: int) -> None:
        suspension = handle.suspension
        assert suspension is not None
        suspension.handlers = entries
        suspension.index = index
        suspension.parked = True
        self.tree.parked_changed(+1)

    @staticmethod
    def _cancelled(handle: EventHandle[Any], entry: Entry) -> None:
        """A handler raised CancelledError: re-raise if this pipeline is being cancelled,
        otherwise cancel the event and deliver the cancellation to its awaiters."""
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise
        _log.warning("handler %s raised CancelledError; %r is cancelled",
                     entry.name, handle.event)
        handle.cancel()
        handle.cancel_waiters()

    def _failed(self, handle: EventHandle[Any], entry: Entry, exc: Exception) -> None:
        event = handle.event
        if isinstance(event, Error):
            _log.error("handler %s failed while handling %r", entry.name, event, exc_info=exc)
            return
        self.tree.fire(
            HandlingError(message=f"{entry.name} failed handling {type(event).__name__}: "
                          f"{exc!r}", exception=exc, event=event, handler=entry.name),
            handle.channels)

    @staticmethod
    def _unhandled(event: Error) -> None:
        exc = event.exception
        _log.error("unhandled %s: %s", type(event).__name__, event.message,
                   exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None)
