"""pyee observer facade: embedding code listens to completed events by class name.

``component.observers`` is a synchronous :class:`pyee.EventEmitter` per tree. After an
event has *completed* (handlers, caused events, locks), the tree emits it under its class
name, e.g.::

    root.observers.on("Started", lambda event: print("up"))

Observers are notification-only: they run after dispatch, cannot influence ordering or
results, and an exception in one is logged (and emitted as pyee's ``error`` event if
someone listens to that) without affecting the bus or the other observers. Event classes
with ``observable = False`` are not emitted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pyee import EventEmitter

from .events import Event

_log = logging.getLogger("vmrunner.core.observe")


class Observers(EventEmitter):
    """A sync pyee emitter that isolates failing listeners."""

    def notify(self, event: Event[Any]) -> None:
        """Emit ``event`` under its class name if anybody listens to that name."""
        name = type(event).__name__
        if name in self._events:
            self.emit(name, event)

    def _emit_run(self, f: Callable[..., Any], args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> None:
        try:
            f(*args, **kwargs)
        except Exception as exc:
            _log.exception("observer %r failed", f)
            if args and not isinstance(args[0], Exception) and "error" in self._events:
                self.emit("error", exc)
