"""The deadlock guard: awaiting an event queued behind yourself raises DeadlockError."""

from __future__ import annotations

import asyncio

from vmrunner.core import (
    BROADCAST,
    Component,
    DeadlockError,
    Event,
    HandlerContext,
    Start,
    handler,
)


class Outer(Event[None], frozen=True, kw_only=True):
    mode: str


class Inner(Event[str], frozen=True, kw_only=True):
    pass


class Awaiter(Component):
    def __init__(self) -> None:
        super().__init__()
        self.outcome: list[str] = []

    @handler
    async def on_outer(self, event: Outer, ctx: HandlerContext[None]) -> None:
        try:
            if event.mode == "fire":
                await self.fire(Inner())
            elif event.mode == "self":
                await ctx.handle
            else:
                self.outcome.append(f"call={await self.call(Inner())}")
        except DeadlockError as exc:
            self.outcome.append(f"deadlock: {exc}")

    @handler
    def on_inner(self, event: Inner) -> str:
        self.outcome.append("inner")
        return "answer"


async def test_awaiting_an_event_fired_on_the_own_pipeline_raises() -> None:
    a = Awaiter()
    await a.fire(Start())
    await a.fire(Outer(mode="fire"))
    assert a.outcome[0].startswith("deadlock: awaiting Inner() from a handler of Outer")
    assert a.outcome[1:] == ["inner"]  # the fired event still runs afterwards


async def test_awaiting_the_own_event_raises() -> None:
    a = Awaiter()
    await a.fire(Start())
    await a.fire(Outer(mode="self"))
    assert a.outcome[0].startswith("deadlock:")


async def test_call_runs_on_a_fresh_pipeline_and_returns_the_result() -> None:
    a = Awaiter()
    await a.fire(Start())
    await a.fire(Outer(mode="call"))
    assert a.outcome == ["inner", "call=answer"]


class Ask(Event[int], frozen=True, kw_only=True):
    pass


class Answerer(Component):
    def __init__(self, value: int) -> None:
        super().__init__()
        self.value = value

    @handler(channels=(BROADCAST,))
    def on_ask(self, event: Ask) -> int:
        return self.value


class Blocker(Component):
    """Holds the main pipeline until released, to show call_all does not queue behind it."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    @handler
    async def on_block(self, event: Outer) -> None:
        await self.release.wait()


async def test_call_all_collects_every_answer_on_a_fresh_pipeline() -> None:
    root = Blocker()
    root.attach(Answerer(1))
    root.attach(Answerer(2))
    await root.fire(Start())
    blocked = root.fire(Outer(mode="block"))  # the main pipeline now waits in on_block
    answers = await asyncio.wait_for(root.call_all(Ask(), BROADCAST), 2)
    assert sorted(answers) == [1, 2]
    assert not blocked.done
    root.release.set()
    await blocked
