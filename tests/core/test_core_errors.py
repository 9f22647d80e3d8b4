"""Errors: HandlingError and the next handler runs; fallback logging; cancellation."""

from __future__ import annotations

import asyncio
import logging

import pytest

from vmrunner.core import (
    Component,
    Error,
    Event,
    HandlingError,
    Start,
    Stop,
    handler,
    run,
)
from vmrunner.core.recorder import EventRecorder


class Boom(Event[str], frozen=True, kw_only=True):
    kind: str = "value"


class Faulty(Component):
    def __init__(self) -> None:
        super().__init__()
        self.seq: list[str] = []

    @handler(priority=2)
    def explode(self, event: Boom) -> None:
        self.seq.append("explode")
        if event.kind == "value":
            raise ValueError("kaputt")
        if event.kind == "cancel":
            raise asyncio.CancelledError()

    @handler(priority=1)
    def next_one(self, event: Boom) -> str:
        self.seq.append("next")
        return "ok"


class ErrorCatcher(Component):
    def __init__(self, channel: Component) -> None:
        super().__init__(channel)
        self.errors: list[HandlingError] = []

    @handler
    def on_error(self, event: HandlingError) -> None:
        self.errors.append(event)


async def test_handling_error_fired_and_next_handler_still_runs() -> None:
    f = Faulty()
    catcher = f.attach(ErrorCatcher(f))
    await f.fire(Start())
    boom = Boom()
    handle = f.fire(boom)
    assert await handle == "ok"
    await f.wait_idle()
    assert f.seq == ["explode", "next"]
    [error] = catcher.errors
    assert error.event is boom
    assert isinstance(error.exception, ValueError)
    assert error.exception.__traceback__ is not None
    assert error.handler == "/Faulty:Faulty.explode"
    assert "kaputt" in error.message


async def test_unhandled_error_is_logged_with_traceback(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    f = Faulty()
    await f.fire(Start())
    with caplog.at_level(logging.ERROR, logger="vmrunner.core"):
        await f.fire(Boom())
        await f.wait_idle()
    [record] = [r for r in caplog.records if "unhandled HandlingError" in r.getMessage()]
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)


class BadErrorHandler(Component):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    @handler(channels=(Component,))
    def on_error(self, event: Error) -> None:
        self.calls += 1
        raise RuntimeError("error handler broken")


async def test_failing_error_handler_is_logged_not_refired(caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    f = Faulty()
    bad = f.attach(BadErrorHandler())
    await f.fire(Start())
    with caplog.at_level(logging.ERROR, logger="vmrunner.core"):
        await f.fire(Boom())
        await f.wait_idle()
    assert bad.calls == 1
    assert any("failed while handling HandlingError" in r.getMessage() for r in caplog.records)


async def test_cancelled_error_is_not_wrapped_and_reaches_the_awaiter() -> None:
    f = Faulty()
    rec = f.attach(EventRecorder(f))
    await f.fire(Start())
    handle = f.fire(Boom(kind="cancel"))
    later = f.fire(Boom(kind="fine"))
    with pytest.raises(asyncio.CancelledError):
        await handle
    assert await later == "ok"  # the pipeline goes on with the next event
    assert f.seq == ["explode", "explode", "next"]
    assert rec.of_type(HandlingError) == []
    assert handle.cancelled


class Slow(Component):
    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()

    @handler
    async def on_boom(self, event: Boom) -> None:
        self.entered.set()
        await asyncio.sleep(3600)


async def test_cancelling_a_caller_propagates_cancelled_error() -> None:
    s = Slow()
    await s.fire(Start())
    caller = asyncio.create_task(s.call(Boom()))
    await s.entered.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller


class Exiter(Component):
    @handler
    def on_start(self, event: Start) -> None:
        raise SystemExit(7)


def test_system_exit_is_never_wrapped() -> None:
    with pytest.raises(SystemExit) as info:
        asyncio.run(run(Exiter()))
    assert info.value.code == 7


class TaskOwner(Component):
    @handler
    def on_start(self, event: Start) -> None:
        self.spawn(self.fail(), name="failing-task")
        self.schedule(0.0, self.fail_sync)

    async def fail(self) -> None:
        raise OSError("reader broke")

    def fail_sync(self) -> None:
        raise KeyError("timer broke")

    @handler
    def on_error(self, event: Error) -> None:
        if "timer" in event.message:
            self.fire(Stop())


async def test_background_task_and_timer_failures_become_error_events() -> None:
    owner = TaskOwner()
    rec = owner.attach(EventRecorder(owner))
    assert await asyncio.wait_for(run(owner), 2) == 0
    messages = sorted(e.message for e in rec.of_type(Error))
    assert len(messages) == 2
    assert "failing-task failed: OSError('reader broke')" in messages[0]
    assert "timer callback" in messages[1] and "timer broke" in messages[1]
    assert all(e.exception is not None for e in rec.of_type(Error))
