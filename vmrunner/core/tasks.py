"""Background tasks and timers owned by components (JGrapes' "generators", tree-scoped).

Every task created by ``Component.spawn`` and every timer from ``Component.schedule``
is registered with the owner's tree: a failure is fired as an :class:`Error` event on
the owner's channel (and logged if nobody handles it); ``run()`` cancels what is left
when the tree has stopped. Tasks and timer callbacks run in a fresh
``contextvars.Context``, so they never inherit the handler context that created them.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from .events import Error

if TYPE_CHECKING:
    from .component import Component

T = TypeVar("T")


class Timer:
    """A scheduled callback (``Component.schedule``); :meth:`cancel` before it runs.

    While pending it is registered with its owner's current tree (``OwnedTasks.timers``).
    """

    __slots__ = ("_callback", "_handle", "_owner", "done")

    def __init__(self, owner: Component, delay: float, callback: Callable[[], object]) -> None:
        self._owner = owner
        self._callback = callback
        self.done = False
        self._handle = asyncio.get_running_loop().call_later(
            delay, self._run, context=contextvars.Context())

    def cancel(self) -> None:
        """Cancel the timer (idempotent, harmless after it ran)."""
        if not self.done:
            self.done = True
            self._handle.cancel()
            self._owner.component_tree.tasks.timers.pop(self, None)

    def _run(self) -> None:
        self.done = True
        owner = self._owner
        owner.component_tree.tasks.timers.pop(self, None)
        try:
            result = self._callback()
            if inspect.iscoroutine(result):
                owner.spawn(result, name=f"timer-callback-{self._callback!r}")
        except Exception as exc:
            OwnedTasks.report(owner, f"timer callback {self._callback!r} failed", exc)


class OwnedTasks:
    """The tree's registry of owned background tasks and pending timers, each with its owner."""

    __slots__ = ("tasks", "timers")

    def __init__(self) -> None:
        self.tasks: dict[asyncio.Task[Any], Component] = {}
        self.timers: dict[Timer, Component] = {}

    def spawn(self, owner: Component, coro: Coroutine[Any, Any, T], name: str | None
              ) -> asyncio.Task[T]:
        """Create a task owned by ``owner`` in a fresh context."""
        task = asyncio.get_running_loop().create_task(
            coro, name=name or f"{owner.component_path}:{getattr(coro, '__qualname__', coro)}",
            context=contextvars.Context())
        self.tasks[task] = owner
        task.add_done_callback(lambda t: owner.component_tree.tasks.task_done(t, owner),
                               context=contextvars.Context())
        return task

    def schedule(self, owner: Component, delay: float, callback: Callable[[], object]
                 ) -> Timer:
        """Create a timer owned by ``owner`` (its callback runs in a fresh context)."""
        timer = Timer(owner, delay, callback)
        self.timers[timer] = owner
        return timer

    def owners(self) -> set[Component]:
        """The components that own a registered task or timer."""
        return {*self.tasks.values(), *self.timers.values()}

    def task_done(self, task: asyncio.Task[Any], owner: Component) -> None:
        """Unregister a finished task (of the owner's current tree); report its failure."""
        self.tasks.pop(task, None)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.report(owner, f"task {task.get_name()} failed", exc)

    @staticmethod
    def report(owner: Component, message: str, exc: BaseException) -> None:
        """Fire an :class:`Error` for a failure outside any handler."""
        owner.fire(Error(message=f"{owner.component_path}: {message}: {exc!r}", exception=exc))

    def move_to(self, other: OwnedTasks, owners: set[Component]) -> None:
        """Hand the tasks and timers of ``owners`` to another tree's registry."""
        for task, owner in list(self.tasks.items()):
            if owner in owners:
                other.tasks[task] = self.tasks.pop(task)
        for timer, owner in list(self.timers.items()):
            if owner in owners:
                other.timers[timer] = self.timers.pop(timer)

    async def shutdown(self) -> None:
        """Cancel all timers and tasks and wait for the tasks to end."""
        for timer in list(self.timers):
            timer.cancel()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
