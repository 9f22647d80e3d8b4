"""Handler declaration and order: priority desc, tree pre-order, declaration order."""

from __future__ import annotations

import pytest

from vmrunner.core import (
    Component,
    Event,
    HandlerContext,
    HandlerDeclarationError,
    Start,
    handler,
)


class Ping(Event[str], frozen=True, kw_only=True):
    n: int = 0


class Pong(Event[None], frozen=True, kw_only=True):
    pass


class Hello(Component):
    """JGrapes' PriorityTest: five handlers, declared scrambled, spell "Hello"."""

    def __init__(self) -> None:
        super().__init__()
        self.text = ""

    @handler(priority=3)
    def on_l1(self, event: Ping) -> None:
        self.text += "l"

    @handler(priority=-10)
    async def on_o(self, event: Ping) -> None:
        self.text += "o"

    @handler(priority=100)
    def on_h(self, event: Ping) -> None:
        self.text += "H"

    @handler(priority=2)
    async def on_l2(self, event: Ping) -> None:
        self.text += "l"

    @handler(priority=50)
    def on_e(self, event: Ping) -> None:
        self.text += "e"


async def test_hello_from_five_priorities() -> None:
    hello = Hello()
    await hello.fire(Start())
    await hello.fire(Ping())
    assert hello.text == "Hello"
    await hello.fire(Ping())
    assert hello.text == "HelloHello"


class Node(Component):
    def __init__(self, log: list[str], name: str, prio: int = 0) -> None:
        super().__init__(name=name)
        self.log = log
        self.prio = prio

    @handler
    def on_ping(self, event: Ping) -> None:
        self.log.append(self.name)


class High(Node):
    @handler(priority=10)
    def on_ping(self, event: Ping) -> None:
        self.log.append(self.name)


async def test_ties_run_in_tree_preorder_and_priority_beats_tree_order() -> None:
    log: list[str] = []
    root = Node(log, "root")
    a = root.attach(Node(log, "a"))
    b = root.attach(Node(log, "b"))
    a.attach(Node(log, "a1"))  # attached after b, still before b in pre-order
    a.attach(High(log, "a2"))
    b.attach(Node(log, "b1"))
    await root.fire(Start())
    await root.fire(Ping(), *root.walk())
    assert log == ["a2", "root", "a", "a1", "b", "b1"]


class Base(Component):
    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []

    @handler
    def first(self, event: Ping) -> None:
        self.log.append("base.first")

    @handler
    def second(self, event: Ping) -> None:
        self.log.append("base.second")


class Derived(Base):
    @handler
    def third(self, event: Ping) -> None:
        self.log.append("derived.third")

    def second(self, event: Ping) -> None:  # overridden without @handler: not a handler
        self.log.append("never")

    @handler
    def first(self, event: Ping) -> None:  # keeps its base position
        self.log.append("derived.first")


async def test_declaration_order_base_first_and_override_rules() -> None:
    d = Derived()
    await d.fire(Start())
    await d.fire(Ping())
    assert d.log == ["derived.first", "derived.third"]
    b = Base()
    await b.fire(Start())
    await b.fire(Ping())
    assert b.log == ["base.first", "base.second"]


class Results(Component):
    @handler(priority=1)
    def one(self, event: Ping) -> str:
        return f"one{event.n}"

    @handler
    async def two(self, event: Ping, ctx: HandlerContext[str]) -> None:
        ctx.set_result("two")

    @handler(priority=-1)
    def three(self, event: Ping) -> str:
        return "three"


async def test_results_first_and_all_sync_and_async() -> None:
    r = Results()
    await r.fire(Start())
    handle = r.fire(Ping(n=7))
    assert await handle == "one7"
    assert handle.results() == ["one7", "two", "three"]
    assert await handle.wait() == ["one7", "two", "three"]


class Stopper(Component):
    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []

    @handler(priority=2)
    def a(self, event: Ping, ctx: HandlerContext[str]) -> None:
        self.log.append("a")
        ctx.stop()

    @handler(priority=1)
    def b(self, event: Ping) -> None:
        self.log.append("b")


async def test_stop_skips_remaining_handlers_and_still_completes() -> None:
    s = Stopper()
    await s.fire(Start())
    handle = s.fire(Ping())
    await handle
    assert handle.done and s.log == ["a"]


class UnionHandler(Component):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    @handler
    def on_either(self, event: Ping | Pong) -> None:
        self.seen.append(type(event).__name__)

    @handler(events=(Pong,))
    def on_explicit(self, event: Event[None]) -> None:
        self.seen.append("explicit")


async def test_union_annotation_and_explicit_events() -> None:
    u = UnionHandler()
    await u.fire(Start())
    await u.fire(Ping())
    await u.fire(Pong())
    assert u.seen == ["Ping", "Pong", "explicit"]


def test_locally_defined_event_types_resolve() -> None:
    class Local(Event[None], frozen=True, kw_only=True):
        pass

    class C(Component):
        @handler
        def on_local(self, event: Local) -> None: ...

    assert C.__handlers__[0].events == (Local,)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def on_x(self, event): ...", "annotate the event parameter 'event'"),
        ("def on_x(self, event: int): ...", "must be an Event class"),
        ("def on_x(self, event: Ping | int): ...", "must be an Event class"),
        ("def on_x(self, event: Ping, ctx: HandlerContext, extra: int): ...",
         "takes (self, event) or (self, event, ctx)"),
        ("def on_x(self): ...", "takes (self, event) or (self, event, ctx)"),
        ("def on_x(self, *events: Ping): ...", "takes (self, event) or (self, event, ctx)"),
        ("def on_x(self, event: NoSuchEvent): ...", "cannot resolve the annotation"),
    ],
)
def test_malformed_handler_fails_at_class_creation(source: str, message: str) -> None:
    namespace = {"Component": Component, "handler": handler, "Ping": Ping,
                 "HandlerContext": HandlerContext}
    code = f"class Bad(Component):\n    @handler\n    {source}\n"
    with pytest.raises(HandlerDeclarationError, match=r"Bad\.on_x") as info:
        exec(compile("from __future__ import annotations\n" + code, "<test>", "exec"), namespace)
    assert message in str(info.value)


def test_decorator_argument_errors() -> None:
    with pytest.raises(HandlerDeclarationError, match="priority must be an int"):
        handler(priority="high")  # type: ignore[call-overload]
    with pytest.raises(HandlerDeclarationError, match="must decorate a function"):
        handler(42)  # type: ignore[call-overload]
    with pytest.raises(HandlerDeclarationError, match="channels must be"):
        class Bad(Component):
            @handler(channels=(42,))  # type: ignore[arg-type]
            def on_ping(self, event: Ping) -> None: ...
