"""Channels: what events are fired *on* and what handlers listen *to*.

A handler declares *criteria* (hashable values); an event is fired on one or
more channels.  The handler matches when one of the event's channels
``is_eligible_for`` one of the handler's criteria.

* A :class:`~vmrunner.core.component.Component` is a channel: its criterion is
  itself, and every component's handlers always listen to the component itself.
* :class:`NamedChannel` ("ports" shared by name) match by name.
* :data:`BROADCAST` is eligible for every criterion: it reaches all handlers.
* The criterion :class:`Channel` (the class itself) means "any channel"; a
  channel class as criterion matches every instance of that class.
"""

from __future__ import annotations

from typing import Final

Criterion = object
"""A handler's channel criterion: a channel instance or a channel class."""


class Channel:
    """Base class of everything events can be fired on."""

    __slots__ = ()

    def default_criterion(self) -> Criterion:
        """The criterion a handler uses when it listens to this channel by default."""
        return self

    def is_eligible_for(self, criterion: Criterion) -> bool:
        """Whether an event fired on this channel reaches handlers with ``criterion``."""
        if isinstance(criterion, type):
            return isinstance(self, criterion)
        return criterion is self or criterion == self


class NamedChannel(Channel):
    """A channel identified by its name; equal names are the same channel."""

    __slots__ = ("_hash", "name")

    def __init__(self, name: str) -> None:
        if not name:
            raise ValueError("a NamedChannel needs a non-empty name")
        self.name: Final = name
        self._hash: Final = hash(("NamedChannel", name))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NamedChannel) and other.name == self.name

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"NamedChannel({self.name!r})"


class _Broadcast(Channel):
    """The channel that reaches every handler (see :data:`BROADCAST`)."""

    __slots__ = ()

    def default_criterion(self) -> Criterion:
        return Channel

    def is_eligible_for(self, criterion: Criterion) -> bool:
        return True

    def __repr__(self) -> str:
        return "BROADCAST"


BROADCAST: Final[Channel] = _Broadcast()
"""Fire on this channel to reach every handler; as a handler criterion: listen to all channels."""
