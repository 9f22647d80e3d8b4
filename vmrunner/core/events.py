"""Typed events: immutable payloads, matched by class (subclasses included).

An event class is a frozen, keyword-only :class:`msgspec.Struct` deriving from
``Event[R]`` where ``R`` is the type of the results handlers may contribute. Repeat
``frozen=True, kw_only=True`` on every subclass (msgspec applies ``kw_only`` only to the
fields of the class that says it, and mypy needs ``frozen`` on each)::

    class Greet(Event[str], frozen=True, kw_only=True):
        who: str

Per-firing state (channels, cause, results, completion) lives in the
:class:`~vmrunner.core.handle.EventHandle` returned by ``fire()``, never on the event.

Class-level knobs:

* ``default_channels``: channels used when ``fire()`` is called without any.
* ``completed_by``: a :class:`CompletionEvent` class automatically added as
  completion event each time the event is fired (``Start`` → ``Started``).
* ``observable``: whether completed instances are emitted to the tree's observers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import msgspec

from .channel import BROADCAST, Channel

if TYPE_CHECKING:
    from .component import Component

R_co = TypeVar("R_co", covariant=True)
E = TypeVar("E", bound="Event[Any]")


class Event(msgspec.Struct, Generic[R_co], frozen=True, kw_only=True):
    """Base class of all events; ``R`` is the result type (``Event[None]``: no result).

    A Struct, not a dataclass: its class is built in C, which keeps the import of the ~90
    event classes cheap (the runner's start time).
    """

    default_channels: ClassVar[tuple[Channel, ...]] = ()
    completed_by: ClassVar[type[CompletionEvent[Any]] | None] = None
    observable: ClassVar[bool] = True


class CompletionEvent(Event[None], Generic[E], frozen=True, kw_only=True):
    """Fired when ``completed`` (and everything it caused) has been handled.

    Fired by the bus on the completed event's pipeline and channels.
    """

    completed: E


class Start(Event[None], frozen=True, kw_only=True):
    """Starts the tree (or a late-attached subtree). Fired by ``run()`` on BROADCAST.

    Events fired before the tree's first ``Start`` are buffered and handled before it.
    Completion event: :class:`Started`.
    """

    default_channels: ClassVar[tuple[Channel, ...]] = (BROADCAST,)


class Started(CompletionEvent[Start], frozen=True, kw_only=True):
    """``Start`` and every event it caused have been handled. Channels: Start's."""


class Stop(Event[None], frozen=True, kw_only=True):
    """Asks the tree to stop; fired on BROADCAST by any component or by a signal handler.

    ``run()`` returns once ``Stop`` has completed and the tree is idle.
    Completion event: :class:`Stopped`.
    """

    default_channels: ClassVar[tuple[Channel, ...]] = (BROADCAST,)


class Stopped(CompletionEvent[Stop], frozen=True, kw_only=True):
    """``Stop`` and every event it caused have been handled. Channels: Stop's."""


Start.completed_by = Started
Stop.completed_by = Stopped


class Attached(Event[None], frozen=True, kw_only=True):
    """``node`` was attached to ``parent``. Fired by ``attach()`` on both components."""

    node: Component
    parent: Component


class Detached(Event[None], frozen=True, kw_only=True):
    """``node`` was detached from ``parent``. Fired by ``detach()`` in both trees."""

    node: Component
    parent: Component


class Error(Event[None], frozen=True, kw_only=True):
    """Something went wrong. If no handler takes it, the bus logs it with its traceback.

    Fired by the bus for failing background tasks and timers (on the owner's channel)
    and, as :class:`HandlingError`, for failing handlers.
    """

    message: str
    exception: BaseException | None = None


class HandlingError(Error, frozen=True, kw_only=True):
    """Handler ``handler`` raised ``exception`` while handling ``event``.

    Fired on the failed event's channels and pipeline, caused by the failed event;
    the remaining handlers of ``event`` still run.
    """

    event: Event[Any]
    handler: str
