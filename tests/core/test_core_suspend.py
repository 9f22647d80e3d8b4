"""Suspend/resume: JGrapes' SuspendTests sequence, resumed events run first."""

from __future__ import annotations

import pytest

from vmrunner.core import Component, Event, HandlerContext, Resumer, Start, StateError, handler


class Work(Event[None], frozen=True, kw_only=True):
    pass


class After(Event[None], frozen=True, kw_only=True):
    tag: str


class Suspender(Component):
    """Five Work handlers; three suspend and are resumed by After handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.seq: list[str] = []
        self.resumers: dict[str, Resumer] = {}

    @handler(priority=1000)
    def h1(self, event: Work, ctx: HandlerContext[None]) -> None:
        self.seq.append("1")
        self.fire(After(tag="A1"))
        self.resumers["A1"] = ctx.suspend()

    @handler(priority=900)
    async def h2(self, event: Work) -> None:
        self.seq.append("2")
        self.fire(After(tag="A2"))

    @handler(priority=800)
    def h3(self, event: Work, ctx: HandlerContext[None]) -> None:
        self.seq.append("3")
        self.resumers["A2"] = ctx.suspend()

    @handler(priority=700)
    async def h4(self, event: Work, ctx: HandlerContext[None]) -> None:
        self.seq.append("4")
        self.fire(After(tag="A3"))
        self.fire(After(tag="A4"))
        self.resumers["A3"] = ctx.suspend(on_resume=lambda: self.seq.append("4a"))

    @handler(priority=600)
    def h5(self, event: Work) -> None:
        self.seq.append("5")

    @handler
    def on_after(self, event: After) -> None:
        self.seq.append(event.tag)
        resumer = self.resumers.pop(event.tag, None)
        if resumer is not None:
            resumer.resume()
            resumer.resume()  # idempotent


async def test_suspend_sequence() -> None:
    s = Suspender()
    await s.fire(Start())
    handle = s.fire(Work())
    handle.on_completion(lambda _: s.seq.append("complete"))
    await handle
    await s.wait_idle()
    # A4 was queued before the resume, yet the resumed handlers (4a, 5) run first;
    # the Work event completes only after its caused After events.
    assert ", ".join(s.seq) == "1, A1, 2, 3, A2, 4, A3, 4a, 5, A4, complete"


class External(Component):
    def __init__(self) -> None:
        super().__init__()
        self.seq: list[str] = []

    @handler(priority=1)
    def first(self, event: Work, ctx: HandlerContext[None]) -> None:
        self.seq.append("suspend")
        resumer = ctx.suspend()
        self.schedule(0.01, resumer.resume)

    @handler
    def second(self, event: Work) -> None:
        self.seq.append("resumed")

    @handler
    def on_after(self, event: After) -> None:
        self.seq.append(event.tag)


async def test_resume_from_a_timer_and_pipeline_keeps_running_meanwhile() -> None:
    e = External()
    await e.fire(Start())
    work = e.fire(Work())
    after = e.fire(After(tag="other"))
    await after
    assert e.seq == ["suspend", "other"]
    assert not work.done
    await work
    assert e.seq == ["suspend", "other", "resumed"]


async def test_tree_with_suspended_event_is_not_idle() -> None:
    e = External()
    await e.fire(Start())
    work = e.fire(Work())
    await e.wait_idle()
    assert work.done and e.seq == ["suspend", "resumed"]


async def test_suspend_outside_handler_is_an_error() -> None:
    e = External()
    handle = e.fire(Work())
    from vmrunner.core.handle import HandlerContext as Ctx

    with pytest.raises(StateError, match="running handler"):
        Ctx(handle).suspend()
