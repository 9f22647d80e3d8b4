"""Channels and event matching: BROADCAST, component-as-channel, names, subclasses."""

from __future__ import annotations

from typing import ClassVar

from vmrunner.core import BROADCAST, Channel, Component, Event, NamedChannel, Start, handler


class Base(Event[None], frozen=True, kw_only=True):
    tag: str = ""


class Sub(Base, frozen=True, kw_only=True):
    pass


class Announce(Event[None], frozen=True, kw_only=True):
    default_channels: ClassVar[tuple[Channel, ...]] = (NamedChannel("news"),)


class Listener(Component):
    def __init__(self, log: list[str], name: str, channel: Channel | None = None) -> None:
        super().__init__(channel, name)
        self.log = log

    @handler
    def on_base(self, event: Base) -> None:
        self.log.append(f"{self.name}:{type(event).__name__}")


class SubOnly(Listener):
    @handler
    def on_sub(self, event: Sub) -> None:
        self.log.append(f"{self.name}:sub-only")


class Everything(Listener):
    @handler(channels=(BROADCAST,))
    def on_all(self, event: Base) -> None:
        self.log.append(f"{self.name}:all")


class News(Listener):
    @handler(channels=("news",))
    def on_news(self, event: Announce) -> None:
        self.log.append(f"{self.name}:news")


class Typed(Listener):
    @handler(channels=(SubOnly,))
    def on_typed(self, event: Base) -> None:
        self.log.append(f"{self.name}:typed")


async def tree() -> tuple[Listener, dict[str, Listener], list[str]]:
    log: list[str] = []
    root = Listener(log, "root")
    parts: dict[str, Listener] = {"root": root}
    parts["a"] = root.attach(Listener(log, "a"))
    parts["shared"] = root.attach(Listener(log, "shared", channel=root))
    parts["sub"] = root.attach(SubOnly(log, "sub"))
    parts["every"] = root.attach(Everything(log, "every"))
    parts["news"] = root.attach(News(log, "news"))
    parts["typed"] = root.attach(Typed(log, "typed"))
    await root.fire(Start())
    return root, parts, log


async def test_broadcast_reaches_every_matching_handler() -> None:
    root, _, log = await tree()
    await root.fire(Base(), BROADCAST)
    assert log == ["root:Base", "a:Base", "shared:Base", "sub:Base", "every:Base", "every:all",
                   "news:Base", "typed:Base", "typed:typed"]


async def test_component_channel_reaches_its_own_and_sharing_handlers() -> None:
    root, parts, log = await tree()
    await root.fire(Base())  # on root's channel: root itself and "shared" (channel=root)
    assert log == ["root:Base", "shared:Base", "every:all"]
    log.clear()
    await parts["shared"].fire(Base(), parts["shared"])  # a component always hears itself
    assert log == ["shared:Base", "every:all"]
    log.clear()
    await parts["a"].fire(Base())
    assert log == ["a:Base", "every:all"]


async def test_subclass_matching() -> None:
    root, parts, log = await tree()
    await root.fire(Sub(), parts["sub"])
    assert log == ["sub:Sub", "sub:sub-only", "every:all", "typed:typed"]
    log.clear()
    await root.fire(Base(), parts["sub"])
    assert log == ["sub:Base", "every:all", "typed:typed"]  # no sub-only for the base class


async def test_named_channels_and_default_channels() -> None:
    root, _, log = await tree()
    await root.fire(Announce())  # default_channels = (NamedChannel("news"),)
    assert log == ["news:news"]
    log.clear()
    await root.fire(Announce(), NamedChannel("sports"))
    assert log == []
    assert NamedChannel("x") == NamedChannel("x") and NamedChannel("x") != NamedChannel("y")
    assert len({NamedChannel("x"), NamedChannel("x")}) == 1
