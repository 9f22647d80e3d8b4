"""Plumbing shared between vmrunner.core's modules. Not API: nothing outside the core uses it.

Rule: a ``_private`` member is used by its own class only. State or operations that one core
module needs on another module's objects are declared here, in base classes the public
classes inherit (JGrapes' ``internal`` split):

- :class:`HandleState`, base of ``EventHandle``: the open count, the stop flag, the suspension
  and the waiters that the tree, the pipelines, locks and resumers drive.
- :class:`Suspension`: where a suspended event's handling resumes.
- :class:`TreeMember`, base of ``Component``: the tree the component belongs to now.

The hot path (``fire``, pipeline dispatch) reads and writes these slots directly; that is as
fast as private slots and keeps the bus benchmark's ratios.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from .tree import ComponentTree


class Suspension:
    """A suspended event's resume point: the handler list and the index of the next one.

    ``parked`` is true while the event waits for ``Resumer.resume`` with its handler
    returned; ``on_resume`` runs on the pipeline before the remaining handlers.
    """

    __slots__ = ("handlers", "index", "on_resume", "parked")

    def __init__(self, on_resume: Callable[[], object] | None) -> None:
        self.on_resume = on_resume
        self.parked = False
        self.handlers: tuple[Any, ...] = ()
        self.index = 0


class HandleState:
    """Dispatch state of one firing; base of ``EventHandle`` (see its open-count rules).

    - ``open_count``: ``ComponentTree.fire`` and ``CompletionLock`` add to it directly;
      every decrement goes through :meth:`release`, which completes the handle at 0.
    - ``stopped``: the pipeline runs no further handler once it is set.
    - ``suspension``: set by ``HandlerContext.suspend``, cleared by ``Resumer.resume``.
    - ``waiters``: futures of ``await handle``; woken on completion, cancelled by
      :meth:`cancel_waiters`.

    Subclasses initialise the slots (no ``__init__`` here: handle creation is hot) and
    implement :meth:`_complete`.
    """

    __slots__ = ("open_count", "stopped", "suspension", "waiters")

    open_count: int
    stopped: bool
    suspension: Suspension | None
    waiters: list[asyncio.Future[None]] | None

    def release(self) -> None:
        """Drop one from the open count; at 0 the handle completes."""
        self.open_count -= 1
        if self.open_count == 0:
            self._complete()
        elif self.open_count < 0:
            raise AssertionError(f"open count of {self!r} dropped below zero")

    def cancel_waiters(self) -> None:
        """Cancel everybody awaiting the handle (a handler raised ``CancelledError``)."""
        waiters = self.waiters
        self.waiters = None
        for fut in waiters or ():
            fut.cancel()

    def _complete(self) -> None:
        raise NotImplementedError


class TreeMember:
    """Base of ``Component``: ``component_tree`` is the :class:`ComponentTree` it belongs to.

    ``Component`` creates it (a tree of one) and replaces it on attach and detach; the other
    core modules (tasks, ``run``) only read it.
    """

    __slots__ = ()

    component_tree: ComponentTree
