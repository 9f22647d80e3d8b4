"""Completion locks (ctx.hold): explicit release and release by timeout."""

from __future__ import annotations

import asyncio

from vmrunner.core import CompletionLock, Component, Event, HandlerContext, Start, handler


class Job(Event[None], frozen=True, kw_only=True):
    timeout: float | None = None


class Holder(Component):
    def __init__(self) -> None:
        super().__init__()
        self.locks: list[CompletionLock] = []

    @handler
    def on_job(self, event: Job, ctx: HandlerContext[None]) -> None:
        self.locks.append(ctx.hold(event.timeout))


async def test_lock_holds_completion_until_released() -> None:
    h = Holder()
    await h.fire(Start())
    handle = h.fire(Job())
    completed = asyncio.Event()
    handle.on_completion(lambda _: completed.set())
    await h.wait_idle()  # the pipeline has run the handler and is idle again
    assert not handle.done and not h.locks[0].released
    h.locks[0].release()
    h.locks[0].release()  # idempotent
    await handle
    await asyncio.wait_for(completed.wait(), 1)
    assert handle.done


async def test_lock_released_by_timeout() -> None:
    h = Holder()
    await h.fire(Start())
    loop = asyncio.get_running_loop()
    began = loop.time()
    handle = h.fire(Job(timeout=0.05))
    await asyncio.wait_for(handle, 2)
    assert h.locks[0].released
    assert loop.time() - began >= 0.045


async def test_lock_as_context_manager() -> None:
    h = Holder()
    await h.fire(Start())
    handle = h.fire(Job())
    await h.wait_idle()
    with h.locks[0]:
        assert not handle.done
    await asyncio.wait_for(handle, 1)
