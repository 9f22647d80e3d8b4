"""The ``@handler`` decorator and the per-class handler table.

``@handler`` stores a :class:`HandlerSpec` on the function; when a component class is
created, :func:`collect_handlers` resolves every spec into a :class:`HandlerInfo` and
fails with :class:`~vmrunner.core.errors.HandlerDeclarationError` if it is malformed.

Rules:

1. The event types come from ``events=`` or, if absent, from the annotation of the first
   parameter after ``self`` (a class or a union of classes, all ``Event`` subclasses).
2. The signature is ``(self, event)`` or ``(self, event, ctx)``; no other parameters.
3. ``channels=`` holds channel instances (``BROADCAST``: every channel), channel classes
   (``Channel``: every channel) or names (``NamedChannel``). Without it, the handler
   listens to its component's channel. The component itself is always listened to.
4. Order inside a class is declaration order, base classes first. An override without
   ``@handler`` is not a handler.
"""

from __future__ import annotations

import inspect
import sys
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

import msgspec

from .channel import Channel, Criterion, NamedChannel
from .errors import HandlerDeclarationError
from .events import Event

F = TypeVar("F", bound=Callable[..., Any])

_SPEC_ATTR = "__vmrunner_handler__"

ChannelSpec = Channel | type[Channel] | str
"""What ``@handler(channels=...)`` accepts."""


class HandlerSpec:
    """Raw ``@handler`` arguments stored on the decorated function; ``resolved`` caches the
    event classes read from the annotation once a class using the function is created."""

    __slots__ = ("channels", "events", "priority", "resolved")

    def __init__(self, *, priority: int, channels: tuple[ChannelSpec, ...] | None,
                 events: tuple[type[Event[Any]], ...] | None) -> None:
        self.priority = priority
        self.channels = channels
        self.events = events
        self.resolved: tuple[type[Event[Any]], ...] | None = None


class HandlerInfo(msgspec.Struct, frozen=True):
    """A resolved handler of a component class."""

    name: str
    """Method name."""
    qualname: str
    events: tuple[type[Event[Any]], ...]
    priority: int
    criteria: tuple[Criterion, ...] | None
    """Explicit channel criteria; ``None``: the component's channel."""
    is_async: bool
    pass_ctx: bool


@overload
def handler(func: F, /) -> F: ...
@overload
def handler(
    *,
    priority: int = 0,
    channels: Iterable[ChannelSpec] | None = None,
    events: Iterable[type[Event[Any]]] | None = None,
) -> Callable[[F], F]: ...


def handler(
    func: F | None = None,
    /,
    *,
    priority: int = 0,
    channels: Iterable[ChannelSpec] | None = None,
    events: Iterable[type[Event[Any]]] | None = None,
) -> F | Callable[[F], F]:
    """Declare a component method as event handler.

    Example::

        class Greeter(Component):
            @handler(priority=10)
            async def on_start(self, event: Start, ctx: HandlerContext) -> None:
                ...

    Args:
        priority: higher runs first; ties run in tree pre-order, then declaration order.
        channels: channel instances, channel classes or names; default: the component's channel.
        events: event classes; default: from the first parameter's annotation.
    """
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise HandlerDeclarationError(f"@handler priority must be an int, got {priority!r}")
    spec = HandlerSpec(
        priority=priority,
        channels=None if channels is None else tuple(channels),
        events=None if events is None else tuple(events),
    )

    def decorate(f: F) -> F:
        if not inspect.isfunction(f):
            raise HandlerDeclarationError(f"@handler must decorate a function, got {f!r}")
        setattr(f, _SPEC_ATTR, spec)
        return f

    return decorate if func is None else decorate(func)


def collect_handlers(cls: type, localns: dict[str, Any] | None) -> tuple[HandlerInfo, ...]:
    """Resolve the handlers of ``cls`` (over its MRO, base classes first)."""
    names: dict[str, None] = {}  # names some class of the MRO defines a handler under
    for base in reversed(cls.__mro__):
        for name, value in vars(base).items():
            if isinstance(getattr(value, _SPEC_ATTR, None), HandlerSpec):
                names.setdefault(name, None)
    result = []
    for name in names:
        attr = inspect.getattr_static(cls, name, None)
        spec = getattr(attr, _SPEC_ATTR, None)
        if isinstance(spec, HandlerSpec) and inspect.isfunction(attr):
            result.append(_resolve(cls, name, attr, spec, localns))
    return tuple(result)


def caller_namespace(skip: str) -> dict[str, Any] | None:
    """Locals of the frame executing a class statement (for locally defined event types)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_name in (skip, "__init_subclass__"):
        frame = frame.f_back  # type: ignore[assignment]
    return None if frame is None else dict(frame.f_locals)


def _resolve(
    cls: type, name: str, func: Callable[..., Any], spec: HandlerSpec,
    localns: dict[str, Any] | None,
) -> HandlerInfo:
    where = f"{cls.__qualname__}.{name}"
    params = list(inspect.signature(func).parameters.values())
    kinds = {inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD}
    if len(params) not in (2, 3) or any(p.kind not in kinds for p in params):
        raise HandlerDeclarationError(
            f"{where}: a handler takes (self, event) or (self, event, ctx), got {params}")
    if any(p.default is not inspect.Parameter.empty for p in params[1:2]):
        raise HandlerDeclarationError(f"{where}: the event parameter must not have a default")
    events = spec.events or spec.resolved
    if events is None:
        events = _events_from_annotation(where, func, params[1].name, localns)
        spec.resolved = events
    for ev in events:
        if not (isinstance(ev, type) and issubclass(ev, Event)):
            raise HandlerDeclarationError(f"{where}: {ev!r} is not an Event subclass")
    return HandlerInfo(
        name=name,
        qualname=f"{cls.__qualname__}.{name}",
        events=events,
        priority=spec.priority,
        criteria=None if spec.channels is None else _criteria(where, spec.channels),
        is_async=inspect.iscoroutinefunction(func),
        pass_ctx=len(params) == 3,
    )


def _events_from_annotation(
    where: str, func: Callable[..., Any], param: str, localns: dict[str, Any] | None
) -> tuple[type[Event[Any]], ...]:
    if param not in func.__annotations__:
        raise HandlerDeclarationError(
            f"{where}: annotate the event parameter '{param}' with an Event class "
            "(or pass events=(...) to @handler)")
    hint = func.__annotations__[param]
    try:
        if isinstance(hint, str):
            hint = eval(hint, getattr(func, "__globals__", {}), localns)
    except NameError as exc:
        raise HandlerDeclarationError(
            f"{where}: cannot resolve the annotation of '{param}': {exc}; define the event "
            "class before the component or pass events=(...) to @handler") from exc
    members = typing.get_args(hint) if _is_union(hint) else (hint,)
    result = []
    for member in members:
        origin = typing.get_origin(member) or member
        if not (isinstance(origin, type) and issubclass(origin, Event)):
            raise HandlerDeclarationError(
                f"{where}: the annotation of '{param}' must be an Event class or a union of "
                f"them, got {member!r}")
        result.append(origin)
    return tuple(result)


def _is_union(hint: object) -> bool:
    return isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union


def _criteria(where: str, channels: tuple[ChannelSpec, ...]) -> tuple[Criterion, ...]:
    result: list[Criterion] = []
    for ch in channels:
        if isinstance(ch, str):
            result.append(NamedChannel(ch))
        elif isinstance(ch, Channel):
            result.append(ch.default_criterion())
        elif isinstance(ch, type) and issubclass(ch, Channel):
            result.append(ch)
        else:
            raise HandlerDeclarationError(
                f"{where}: channels must be Channel instances, Channel classes or names, "
                f"got {ch!r}")
    return tuple(result)
