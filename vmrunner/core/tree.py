"""The component tree's shared state: routing, handler cache, buffering, idleness.

One :class:`ComponentTree` exists per tree (never per process):

* ``fire()`` routes a new handle: inside a handler of this tree to the handler's
  pipeline (caused by the handled event), otherwise to the main pipeline, or into the
  pre-``Start`` buffer. The first ``Start`` creates the main pipeline and flushes the
  buffer into it ahead of itself.
* ``handlers_for()`` caches the ordered handler list per (event class, channels);
  the cache is cleared whenever the tree's shape changes.
* Idle = no pipeline task running and no suspended event; ``run()`` waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, NamedTuple

from .channel import Channel
from .events import Event, Start, Stop
from .handle import CompletionAction, EventHandle, current_handle
from .pipeline import Pipeline
from .tasks import OwnedTasks

if TYPE_CHECKING:
    from collections.abc import Callable

    from .component import Component
    from .observe import Observers

_log = logging.getLogger("vmrunner.core")


class Entry(NamedTuple):
    """One handler in a dispatch list (a tuple: the dispatch loop unpacks it per event)."""

    method: Callable[..., Any]
    pass_ctx: bool
    is_async: bool
    name: str


class HandlerList(NamedTuple):
    """The ordered handlers for one (event class, channels) combination."""

    entries: tuple[Entry, ...]
    all_sync: bool


def _run_action(event: CompletionAction) -> None:
    event.callback(event.target)


_ACTIONS = HandlerList((Entry(_run_action, False, False, "on_completion"),), True)


class ComponentTree:
    """State shared by all components of one tree (see module docstring)."""

    def __init__(self, root: Component) -> None:
        self.root = root
        self.started = False
        self.exit_code = 0
        self.tasks = OwnedTasks()
        self.observers_active = False
        self._observers: Observers | None = None
        self._main: Pipeline | None = None
        self._buffer: list[EventHandle[Any]] = []
        self._cache: dict[tuple[type[Event[Any]], tuple[Channel, ...]], HandlerList] = {}
        self._running: dict[Pipeline, asyncio.Task[None]] = {}
        self._parked = 0
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._stop_waiters: list[asyncio.Future[None]] = []
        self.stop_completed = False
        self.fatal: BaseException | None = None

    # -- firing --------------------------------------------------------------------------

    def fire(self, event: Event[Any], channels: tuple[Channel, ...],
             pipeline: Pipeline | None = None) -> EventHandle[Any]:
        """Create a handle for ``event`` and route it (see module docstring)."""
        cur = current_handle.get()
        if cur is not None and cur.tree is self and not cur.done:
            cur.open_count += 1
            handle: EventHandle[Any] = EventHandle(event, channels, self, cur)
            target = pipeline or cur.pipeline
        else:
            handle = EventHandle(event, channels, self, None)
            target = pipeline or self._main
        completed_by = type(event).completed_by
        if completed_by is not None:
            handle.add_completion_event(completed_by(completed=event))
            if isinstance(event, Start) and not self.started:
                target = target or self.start_main()
            elif isinstance(event, Stop):
                handle.on_completion(self._on_stop_completed)
        if target is None:
            self._buffer.append(handle)
        else:
            target.enqueue(handle)
        return handle

    def new_pipeline(self, name: str = "call") -> Pipeline:
        """A fresh pipeline (used by ``Component.call``)."""
        return Pipeline(self, name)

    def enqueue_completion(self, event: Event[Any], completed: EventHandle[Any]) -> None:
        """Queue a completion event of ``completed`` on its pipeline and channels."""
        cause = completed.cause
        if cause is not None:
            cause.open_count += 1
        handle = EventHandle(event, completed.channels, self, cause)
        target = completed.pipeline or self._main
        if target is None:
            self._buffer.append(handle)
        else:
            target.enqueue(handle)

    def take_buffered(self) -> list[EventHandle[Any]]:
        """Remove and return the pre-``Start`` buffer (the tree is being merged)."""
        buffered, self._buffer = self._buffer, []
        return buffered

    def start_main(self) -> Pipeline:
        """Mark the tree started; create the main pipeline and flush the buffer into it."""
        self.started = True
        self._main = main = Pipeline(self, "main")
        for handle in self.take_buffered():
            main.enqueue(handle)
        return main

    def adopt(self, other: ComponentTree) -> None:
        """Take over the buffered events and owned tasks of a tree attached to this one."""
        for handle in other.take_buffered():
            handle.tree = self
            if self._main is None:
                self._buffer.append(handle)
            else:
                self._main.enqueue(handle)
        other.tasks.move_to(self.tasks, other.tasks.owners())
        self._cache.clear()

    def split(self, node: Component, members: set[Component]) -> ComponentTree:
        """A new, started tree for the detached subtree ``node``."""
        tree = ComponentTree(node)
        tree.start_main()
        self.tasks.move_to(tree.tasks, members)
        self._cache.clear()
        return tree

    def invalidate(self) -> None:
        """Clear the handler cache (the tree's shape or handlers changed)."""
        self._cache.clear()

    # -- handler lookup ------------------------------------------------------------------

    def handlers_for(self, cls: type[Event[Any]], channels: tuple[Channel, ...]
                     ) -> HandlerList:
        """The ordered handlers for events of ``cls`` fired on ``channels`` (cached)."""
        key = (cls, channels)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._collect(cls, channels)
        return found

    def _collect(self, cls: type[Event[Any]], channels: tuple[Channel, ...]) -> HandlerList:
        if cls is CompletionAction:
            return _ACTIONS
        found: list[tuple[int, int, Entry]] = []
        order = 0
        for comp in self.root.walk():
            default = (comp.channel.default_criterion(),)
            for info in type(comp).__handlers__:
                order += 1
                if not issubclass(cls, info.events):
                    continue
                criteria = (*(default if info.criteria is None else info.criteria), comp)
                if any(ch.is_eligible_for(c) for ch in channels for c in criteria):
                    entry = Entry(getattr(comp, info.name), info.pass_ctx, info.is_async,
                                  f"{comp.component_path}:{info.qualname}")
                    found.append((-info.priority, order, entry))
        found.sort(key=lambda item: (item[0], item[1]))
        entries = tuple(item[2] for item in found)
        return HandlerList(entries, not any(e.is_async for e in entries))

    # -- idleness and stopping -----------------------------------------------------------

    def pipeline_started(self, pipeline: Pipeline, task: asyncio.Task[None]) -> None:
        """Register a pipeline's running task (strong reference)."""
        self._running[pipeline] = task
        task.add_done_callback(self._pipeline_task_done)

    def pipeline_stopped(self, pipeline: Pipeline) -> None:
        """A pipeline's queue ran empty (or its task ended)."""
        self._running.pop(pipeline, None)
        self._check_idle()

    def parked_changed(self, delta: int) -> None:
        """Count suspended events (a tree with suspended events is not idle)."""
        self._parked += delta
        self._check_idle()

    @property
    def idle(self) -> bool:
        """No pipeline running and no suspended event."""
        return not self._running and self._parked == 0

    async def wait_idle(self) -> None:
        """Wait until the tree is idle."""
        while not self.idle:
            fut = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(fut)
            await fut

    async def wait_stopped(self) -> None:
        """Wait until a ``Stop`` has completed (or the framework failed)."""
        while not self.stop_completed and self.fatal is None:
            fut = asyncio.get_running_loop().create_future()
            self._stop_waiters.append(fut)
            await fut
        if self.fatal is not None:
            raise self.fatal

    def cancel_pipelines(self) -> None:
        """Cancel all running pipeline tasks (abnormal shutdown)."""
        for pipeline in list(self._running):
            pipeline.cancel()

    def _check_idle(self) -> None:
        if self.idle and self._idle_waiters:
            waiters, self._idle_waiters = self._idle_waiters, []
            _wake(waiters)

    def _on_stop_completed(self, handle: EventHandle[Any]) -> None:
        self.stop_completed = True
        waiters, self._stop_waiters = self._stop_waiters, []
        _wake(waiters)

    def _pipeline_task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        _log.critical("event pipeline %s crashed", task.get_name(), exc_info=exc)
        if isinstance(exc, Exception):
            self.fatal = exc
            waiters, self._stop_waiters = self._stop_waiters, []
            _wake(waiters)

    # -- observers -----------------------------------------------------------------------

    @property
    def observers(self) -> Observers:
        """The tree's pyee observer facade (created on first use)."""
        if self._observers is None:
            from .observe import Observers

            self._observers = Observers()
            self.observers_active = True
        return self._observers

    def notify_observers(self, event: Event[Any]) -> None:
        """Emit a completed event to the observers (errors are logged, never raised)."""
        if self._observers is not None and type(event).observable:
            self._observers.notify(event)


def _wake(waiters: list[asyncio.Future[None]]) -> None:
    for fut in waiters:
        if not fut.done():
            fut.set_result(None)
