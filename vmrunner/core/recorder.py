"""``EventRecorder``: a test component that records every event it sees.

It listens on all channels at the highest priority, so it sees each event before any
other handler. ``await recorder.wait_for(Type, predicate, timeout)`` waits on asyncio
futures woken by each recorded event (no polling) and also finds events recorded earlier.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from .channel import Channel
from .component import Component
from .events import Event
from .handler import handler

E = TypeVar("E", bound=Event[Any])


class EventRecorder(Component):
    """Records ``(event)`` in dispatch order; for tests and diagnostics."""

    def __init__(self, channel: Channel | None = None, name: str | None = None) -> None:
        super().__init__(channel, name)
        self.events: list[Event[Any]] = []
        self._waiters: list[asyncio.Future[None]] = []

    @handler(priority=sys.maxsize, channels=(Channel,))
    def on_any(self, event: Event[Any]) -> None:
        """Record every event."""
        self.events.append(event)
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def of_type(self, event_type: type[E]) -> list[E]:
        """The recorded events of ``event_type`` (subclasses included)."""
        return [e for e in self.events if isinstance(e, event_type)]

    def names(self) -> list[str]:
        """Class names of the recorded events, in order."""
        return [type(e).__name__ for e in self.events]

    async def wait_for(self, event_type: type[E], predicate: Callable[[E], bool] | None = None,
                       timeout: float = 1.0) -> E:  # noqa: ASYNC109
        """Return the first recorded event of ``event_type`` matching ``predicate``.

        Raises:
            TimeoutError: no such event within ``timeout`` seconds.
        """
        def find() -> E | None:
            for event in self.events:
                if isinstance(event, event_type) and (predicate is None or predicate(event)):
                    return event
            return None

        async with asyncio.timeout(timeout):
            while (found := find()) is None:
                fut = asyncio.get_running_loop().create_future()
                self._waiters.append(fut)
                await fut
            return found
