"""Per-firing state: :class:`EventHandle`, :class:`HandlerContext`, locks and resumers.

Open-count rules (JGrapes' completion model):

1. A handle starts with an open count of 1 for the event itself.
2. +1 for every event fired while it is being handled (its *caused* events), on
   whatever pipeline they run; -1 when such an event completes.
3. +1 per :class:`CompletionLock` (``ctx.hold()``), -1 on release or timeout.
4. +1 for ``require_result()``, -1 when the first result arrives.
5. The event's own 1 is released after its last handler has run; a suspended event
   releases it only after its resumed handlers have run.

When the count reaches 0 the handle is *done*: awaiters wake up, completion events
(unless cancelled) are queued on the handle's pipeline and channels with the handle's
cause as their cause, observers are notified, and the cause's count drops by 1.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._internal import HandleState, Suspension
from .channel import Channel
from .errors import DeadlockError, StateError
from .events import Event

if TYPE_CHECKING:
    from types import TracebackType

    from .pipeline import Pipeline
    from .tree import ComponentTree

R = TypeVar("R")

current_handle: contextvars.ContextVar[EventHandle[Any] | None] = contextvars.ContextVar(
    "vmrunner_core_current_handle", default=None)
"""The handle being dispatched by the pipeline task that runs the current code."""


class CompletionAction(Event[None], frozen=True, kw_only=True):
    """Internal completion event running a ``handle.on_completion`` callback."""

    callback: Callable[[EventHandle[Any]], object]
    target: EventHandle[Any]
    observable = False


class EventHandle(HandleState, Generic[R]):
    """One firing of an event: channels, cause, results and completion.

    Awaiting it waits for completion and returns the first result (or ``None``). The
    dispatch state the core's other modules drive is inherited from
    :class:`~vmrunner.core._internal.HandleState` (internal).
    """

    __slots__ = (
        "_cancelled", "_completion", "_needs_result", "_results", "cause", "channels", "done",
        "event", "pipeline", "tree",
    )

    def __init__(self, event: Event[R], channels: tuple[Channel, ...], tree: ComponentTree,
                 cause: EventHandle[Any] | None) -> None:
        self.event = event
        self.channels = channels
        self.tree = tree
        self.cause = cause
        self.pipeline: Pipeline | None = None
        self.done = False
        self.open_count = 1
        self._results: list[R] | None = None
        self._completion: list[Event[Any]] | None = None
        self.waiters = None
        self.stopped = False
        self._cancelled = False
        self._needs_result = False
        self.suspension = None

    def __repr__(self) -> str:
        state = "done" if self.done else f"open={self.open_count}"
        return f"<EventHandle {self.event!r} {state}>"

    # -- results -------------------------------------------------------------------------

    def results(self) -> list[R]:
        """The results contributed so far (all of them once ``done``)."""
        return [] if self._results is None else list(self._results)

    def set_result(self, value: R) -> None:
        """Add a result (handlers usually just return it)."""
        if self._results is None:
            self._results = [value]
        else:
            self._results.append(value)
        if self._needs_result:
            self._needs_result = False
            self.release()

    def require_result(self) -> None:
        """Keep the event open until a result has been set (JGrapes ``setRequiresResult``)."""
        if self.done:
            raise StateError(f"{self.event!r} is already complete")
        if not self._needs_result and self._results is None:
            self._needs_result = True
            self.open_count += 1

    def __await__(self) -> Generator[Any, None, R | None]:
        if not self.done:
            yield from self._wait().__await__()
        return None if not self._results else self._results[0]

    async def wait(self) -> list[R]:
        """Wait for completion and return all results."""
        if not self.done:
            await self._wait()
        return self.results()

    async def _wait(self) -> None:
        current = current_handle.get()
        if current is not None and current.pipeline is self.pipeline is not None:
            raise DeadlockError(
                f"awaiting {self.event!r} from a handler of {current.event!r} on the same "
                "pipeline would deadlock: it runs only after this handler returns; use "
                "'await self.call(event)' or ctx.suspend()/handle.on_completion() instead")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.waiters is None:
            self.waiters = [fut]
        else:
            self.waiters.append(fut)
        await fut

    # -- completion ----------------------------------------------------------------------

    def add_completion_event(self, event: Event[Any]) -> None:
        """Fire ``event`` on this handle's pipeline and channels once it completes."""
        if self.done:
            raise StateError(f"{self.event!r} is already complete")
        if self._completion is None:
            self._completion = [event]
        else:
            self._completion.append(event)

    def on_completion(self, callback: Callable[[EventHandle[R]], object]) -> None:
        """Run ``callback(handle)`` as an action on this handle's pipeline after completion."""
        self.add_completion_event(CompletionAction(callback=callback, target=self))

    def stop(self) -> None:
        """Skip the remaining handlers (completion still happens)."""
        self.stopped = True

    def cancel(self) -> None:
        """Skip the remaining handlers and suppress the completion events."""
        self.stopped = True
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled

    def hold(self, timeout: float | None = None) -> CompletionLock:
        """Keep the event from completing until the lock is released (or ``timeout`` s)."""
        return CompletionLock(self, timeout)

    def _complete(self) -> None:
        self.done = True
        waiters = self.waiters
        if waiters is not None:
            self.waiters = None
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
        tree = self.tree
        if self._completion is not None and not self._cancelled:
            for event in self._completion:
                tree.enqueue_completion(event, self)
        if tree.observers_active:
            tree.notify_observers(self.event)
        cause = self.cause
        if cause is not None:
            cause.release()


class CompletionLock:
    """Holds an event open (``ctx.hold()``) until :meth:`release` or the timeout.

    Usable as (async) context manager; releasing twice is harmless.
    """

    __slots__ = ("_handle", "_released", "_timer")

    def __init__(self, handle: EventHandle[Any], timeout: float | None) -> None:
        if handle.done:
            raise StateError(f"{handle.event!r} is already complete")
        self._handle = handle
        self._released = False
        handle.open_count += 1
        self._timer: asyncio.TimerHandle | None = None
        if timeout is not None:
            self._timer = asyncio.get_running_loop().call_later(
                timeout, self.release, context=contextvars.Context())

    @property
    def released(self) -> bool:
        """Whether the lock has been released (explicitly or by its timeout)."""
        return self._released

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._released:
            return
        self._released = True
        if self._timer is not None:
            self._timer.cancel()
        self._handle.release()

    def __enter__(self) -> CompletionLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    async def __aenter__(self) -> CompletionLock:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


class Resumer:
    """Resumes a suspended event (``ctx.suspend()``); resuming twice is harmless."""

    __slots__ = ("_handle", "_loop")

    def __init__(self, handle: EventHandle[Any]) -> None:
        self._handle = handle
        self._loop = asyncio.get_running_loop()

    def resume(self) -> None:
        """Queue the rest of the handlers; resumed events run before queued ones."""
        handle = self._handle
        suspension = handle.suspension
        if suspension is None:
            return
        handle.suspension = None
        if suspension.parked and handle.pipeline is not None:
            handle.pipeline.resume(handle, suspension)

    def resume_threadsafe(self) -> None:
        """Like :meth:`resume`, callable from any thread."""
        self._loop.call_soon_threadsafe(self.resume, context=contextvars.Context())


class HandlerContext(Generic[R]):
    """What a handler may do with the event it handles (its optional ``ctx`` parameter)."""

    __slots__ = ("handle",)

    def __init__(self, handle: EventHandle[R]) -> None:
        self.handle = handle

    @property
    def event(self) -> Event[R]:
        """The event being handled."""
        return self.handle.event

    @property
    def channels(self) -> tuple[Channel, ...]:
        """The channels the event was fired on."""
        return self.handle.channels

    def stop(self) -> None:
        """Skip the remaining handlers of this event."""
        self.handle.stop()

    def set_result(self, value: R) -> None:
        """Add a result (same as returning a non-None value)."""
        self.handle.set_result(value)

    def hold(self, timeout: float | None = None) -> CompletionLock:
        """Keep the event open until the returned lock is released (or ``timeout`` s)."""
        return self.handle.hold(timeout)

    def suspend(self, on_resume: Callable[[], object] | None = None) -> Resumer:
        """Suspend handling after this handler returns; the pipeline goes on meanwhile.

        ``resumer.resume()`` queues the remaining handlers ahead of the pipeline's queue;
        ``on_resume`` runs first.
        """
        handle = self.handle
        if handle.done or current_handle.get() is not handle:
            raise StateError("suspend() must be called by a running handler of the event")
        if handle.suspension is not None:
            raise StateError(f"{handle.event!r} is already suspended")
        handle.suspension = Suspension(on_resume)
        return Resumer(handle)
