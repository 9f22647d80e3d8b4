"""Completion: open counts, completion events, results, cancel, require_result."""

from __future__ import annotations

import asyncio

from vmrunner.core import (
    CompletionEvent,
    Component,
    Event,
    EventHandle,
    HandlerContext,
    Start,
    Started,
    handler,
)
from vmrunner.core.recorder import EventRecorder


class Step(Event[None], frozen=True, kw_only=True):
    depth: int


class Done(CompletionEvent[Step], frozen=True, kw_only=True):
    pass


class Cascade(Component):
    """Start fires a chain of Steps, one through a fresh pipeline, one held by a lock."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []

    @handler
    async def on_start(self, event: Start) -> None:
        self.log.append("start")
        self.fire(Step(depth=1))
        await self.call(Step(depth=10))

    @handler
    def on_step(self, event: Step, ctx: HandlerContext[None]) -> None:
        self.log.append(f"step{event.depth}")
        if event.depth < 3:
            self.fire(Step(depth=event.depth + 1))
        if event.depth == 3:
            lock = ctx.hold()

            def unlock() -> None:
                self.log.append("unlock")
                lock.release()

            self.schedule(0.02, unlock)

    @handler
    def on_started(self, event: Started) -> None:
        self.log.append("started")

    @handler
    def on_done(self, event: Done) -> None:
        self.log.append(f"done{event.completed.depth}")


async def test_started_after_the_whole_start_cascade() -> None:
    c = Cascade()
    rec = c.attach(EventRecorder(c))
    handle = c.fire(Start())
    await rec.wait_for(Started)
    assert handle.done
    assert c.log == ["start", "step10", "step1", "step2", "step3", "unlock", "started"]


class DoneListener(Component):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    @handler
    def on_done(self, event: Done) -> None:
        self.log.append(f"listener done{event.completed.depth}")


async def test_completion_events_use_the_completed_events_channels() -> None:
    c = Cascade()
    listener = c.attach(DoneListener(c.log))
    await c.fire(Start())
    await c.wait_idle()
    c.log.clear()
    on_listener = c.fire(Step(depth=5), listener)  # nobody handles Step on listener's channel
    on_listener.add_completion_event(Done(completed=Step(depth=5)))
    on_listener.on_completion(lambda h: c.log.append(f"callback done={h.done}"))
    on_root = c.fire(Step(depth=6))
    on_root.add_completion_event(Done(completed=Step(depth=6)))
    await c.wait_idle()
    assert c.log == ["step6", "listener done5", "callback done=True", "done6"]


class Chain(Component):
    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []

    @handler
    def on_step(self, event: Step, ctx: HandlerContext[None]) -> None:
        self.log.append(f"step{event.depth}")
        if event.depth == 1:
            inner = self.fire(Step(depth=2))
            inner.add_completion_event(Done(completed=Step(depth=2)))

    @handler
    def on_done(self, event: Done) -> None:
        self.log.append(f"done{event.completed.depth}")


async def test_outer_event_completes_after_completion_events_of_caused_events() -> None:
    c = Chain()
    await c.fire(Start())
    outer = c.fire(Step(depth=1))
    outer.on_completion(lambda h: c.log.append("outer complete"))
    await outer
    await c.wait_idle()
    assert c.log == ["step1", "step2", "done2", "outer complete"]


class Lazy(Component):
    @handler
    def on_step(self, event: Step, ctx: HandlerContext[str]) -> None:
        ctx.handle.require_result()
        self.schedule(0.01, lambda: ctx.set_result("late"))


async def test_require_result_keeps_the_event_open_until_the_first_result() -> None:
    lazy = Lazy()
    await lazy.fire(Start())
    handle: EventHandle[object] = lazy.fire(Step(depth=1))
    await asyncio.sleep(0)
    assert not handle.done
    assert await handle == "late"


async def test_cancel_suppresses_completion_events_and_remaining_handlers() -> None:
    c = Chain()
    await c.fire(Start())
    handle = c.fire(Step(depth=7))
    handle.add_completion_event(Done(completed=Step(depth=7)))
    handle.cancel()
    await handle
    await c.wait_idle()
    assert handle.cancelled and handle.done
    assert c.log == []


async def test_events_fired_from_outside_go_to_the_main_pipeline_in_order() -> None:
    c = Chain()
    await c.fire(Start())
    handles = [c.fire(Step(depth=d)) for d in (3, 4, 5)]
    await handles[-1]
    assert all(h.done for h in handles)
    assert c.log == ["step3", "step4", "step5"]
