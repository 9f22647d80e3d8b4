"""Exceptions raised by the bus on API misuse.

Hierarchy::

    CoreError                  base of everything raised by vmrunner.core
    ├── StateError             operation not allowed in the current state
    │                          (detach before Start, attach of a started subtree, ...)
    ├── DeadlockError          a handler awaited an event queued behind itself
    └── HandlerDeclarationError  a malformed ``@handler`` (raised when the class is created)

Failures *inside* handlers are not exceptions for the caller: they become
:class:`~vmrunner.core.events.HandlingError` events.
"""

from __future__ import annotations


class CoreError(Exception):
    """Base class of the errors raised by :mod:`vmrunner.core`."""


class StateError(CoreError):
    """An operation is not allowed in the current state of a component, tree or event."""


class DeadlockError(CoreError):
    """A handler awaited an event that can only run after the handler itself has finished.

    Fire the event with ``await self.call(event)`` (a fresh pipeline), or use
    ``ctx.suspend()`` / ``handle.on_completion(...)`` instead of awaiting.
    """


class HandlerDeclarationError(CoreError, TypeError):
    """A ``@handler`` method is malformed (bad signature, missing or non-event annotation)."""
