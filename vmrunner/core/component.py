"""Components: tree nodes that are channels and own handlers, tasks and timers.

Rules (JGrapes): ``attach(child)`` needs a parentless, not yet started child, merges the
child's buffered events, fires ``Attached`` on both components and, if this tree has
started, a ``Start`` on the channels of every newly attached component. ``detach()`` is
allowed only after ``Start``; the subtree becomes a started tree of its own and
``Detached`` is fired in both trees. ``component_path`` is ``/`` + the names from the
root down; a name defaults to the class name.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ._internal import TreeMember
from .channel import Channel
from .errors import StateError
from .events import Attached, Detached, Event, Start
from .handle import EventHandle
from .handler import HandlerInfo, caller_namespace, collect_handlers
from .tasks import Timer
from .tree import ComponentTree

if TYPE_CHECKING:
    import asyncio

    from .observe import Observers

R = TypeVar("R")
T = TypeVar("T")
C = TypeVar("C", bound="Component")


class Component(TreeMember, Channel):
    """Base class of all components.

    Args:
        channel: the channel the handlers listen to by default (default: the component
            itself). Pass a parent's channel to share its "bus".
        name: the path segment (default: the class name); must not contain ``/``.
    """

    __handlers__: ClassVar[tuple[HandlerInfo, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__handlers__ = collect_handlers(cls, caller_namespace("__init_subclass__"))

    def __init__(self, channel: Channel | None = None, name: str | None = None) -> None:
        if name is not None and (not name or "/" in name):
            raise ValueError(f"invalid component name {name!r}: must be non-empty without '/'")
        self._channel: Channel = self if channel is None else channel
        self._own_channels: tuple[Channel, ...] = (self._channel,)
        self._name = name
        self._parent: Component | None = None
        self._children: list[Component] = []
        self.component_tree = ComponentTree(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.component_path}>"

    # -- tree ----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The path segment of this component."""
        return self._name if self._name is not None else type(self).__name__

    @property
    def channel(self) -> Channel:
        """The default channel of this component's handlers and fired events."""
        return self._channel

    @property
    def parent(self) -> Component | None:
        """The parent, ``None`` for a root."""
        return self._parent

    @property
    def children(self) -> tuple[Component, ...]:
        """The children in attach order."""
        return tuple(self._children)

    @property
    def root(self) -> Component:
        """The root of this component's tree."""
        return self.component_tree.root

    @property
    def component_path(self) -> str:
        """``/``-joined names from the root, e.g. ``/Runner/QemuMonitor``."""
        names = []
        node: Component | None = self
        while node is not None:
            names.append(node.name)
            node = node.parent
        return "/" + "/".join(reversed(names))

    def walk(self) -> Iterator[Component]:
        """This component and its descendants in pre-order."""
        yield self
        for child in self._children:
            yield from child.walk()

    def attach(self, child: C) -> C:
        """Attach a parentless, not started component (and its subtree) as last child."""
        if child.parent is not None or child is self.root:
            raise StateError(f"{child!r} already has a parent (or is this tree's root)")
        if child.component_tree.started:
            raise StateError(f"cannot attach {child!r}: its tree has already been started")
        tree = self.component_tree
        old = child.component_tree
        self._children.append(child)
        child._parent = self
        for node in child.walk():
            node.component_tree = tree
        tree.adopt(old)
        self.fire(Attached(node=child, parent=self), *_distinct(self._channel, child.channel))
        if tree.started:
            self.fire(Start(), *child.walk())
        return child

    def detach(self) -> None:
        """Detach this subtree; it becomes a started tree of its own."""
        parent = self._parent
        if parent is None:
            return
        tree = self.component_tree
        if not tree.started:
            raise StateError(f"cannot detach {self!r} before the tree has been started")
        parent._children.remove(self)
        self._parent = None
        members = set(self.walk())
        new = tree.split(self, members)
        for node in members:
            node.component_tree = new
        tree.fire(Detached(node=self, parent=parent), (parent.channel,))
        self.fire(Detached(node=self, parent=parent), self._channel)

    # -- events --------------------------------------------------------------------------

    def fire(self, event: Event[R], *channels: Channel) -> EventHandle[R]:
        """Fire ``event`` on ``channels`` (default: the event's ``default_channels``, else
        this component's channel). Inside a handler it joins the handler's pipeline."""
        return self.component_tree.fire(
            event, channels or type(event).default_channels or self._own_channels)

    async def call(self, event: Event[R], *channels: Channel) -> R | None:
        """Fire ``event`` on a fresh pipeline, wait for completion, return the first result."""
        tree = self.component_tree
        return await tree.fire(
            event, channels or type(event).default_channels or self._own_channels,
            tree.new_pipeline())

    async def call_all(self, event: Event[R], *channels: Channel) -> list[R]:
        """Like :meth:`call`, but return every result the handlers contributed (a query)."""
        tree = self.component_tree
        return await tree.fire(
            event, channels or type(event).default_channels or self._own_channels,
            tree.new_pipeline()).wait()

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None
              ) -> asyncio.Task[T]:
        """Run ``coro`` as a background task owned by this component and its tree.

        The task starts in a fresh context (no handler state); its failure is fired as an
        ``Error`` on this component's channel; ``run()`` cancels it when the tree stops.
        """
        return self.component_tree.tasks.spawn(self, coro, name)

    def schedule(self, delay: float, callback: Callable[[], object]) -> Timer:
        """Call ``callback`` after ``delay`` seconds (a coroutine result is spawned)."""
        return self.component_tree.tasks.schedule(self, delay, callback)

    def set_exit_code(self, code: int, *, force: bool = False) -> None:
        """Record the exit code ``run()`` returns; the first non-zero code wins."""
        tree = self.component_tree
        if force or tree.exit_code == 0:
            tree.exit_code = int(code)

    async def wait_idle(self) -> None:
        """Wait until no pipeline of this tree runs and no event is suspended."""
        await self.component_tree.wait_idle()

    @property
    def exit_code(self) -> int:
        """The exit code recorded on this tree so far."""
        return self.component_tree.exit_code

    @property
    def observers(self) -> Observers:
        """The tree's pyee observer facade (see :mod:`vmrunner.core.observe`)."""
        return self.component_tree.observers


def _distinct(*channels: Channel) -> tuple[Channel, ...]:
    return tuple(dict.fromkeys(channels))
