"""The pyee observer facade and the EventRecorder test kit."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import vmrunner.core
from vmrunner.core import Component, Event, EventHandle, HandlerContext, Start, handler
from vmrunner.core.recorder import EventRecorder


class Measured(Event[int], frozen=True, kw_only=True):
    value: int


class Doubler(Component):
    @handler
    def on_measured(self, event: Measured, ctx: HandlerContext[int]) -> None:
        lock = ctx.hold()
        self.schedule(0.01, lock.release)


async def test_observers_see_completed_events_and_failures_are_isolated(
        caplog: pytest.LogCaptureFixture) -> None:
    d = Doubler()
    seen: list[tuple[str, Any, bool]] = []
    handles: list[EventHandle[int]] = []

    def broken(event: Measured) -> None:
        raise RuntimeError("observer bug")

    d.observers.on("Measured", broken)
    d.observers.on("Measured", lambda e: seen.append(("Measured", e.value, handles[0].done)))
    errors: list[Exception] = []
    d.observers.on("error", errors.append)
    await d.fire(Start())
    with caplog.at_level(logging.ERROR, logger="vmrunner.core.observe"):
        handles.append(d.fire(Measured(value=4)))
        await handles[0]
    assert seen == [("Measured", 4, True)]  # emitted after completion
    assert [str(e) for e in errors] == ["observer bug"]
    assert any("observer" in r.getMessage() for r in caplog.records)


async def test_recorder_wait_for_past_and_future_events_and_timeout() -> None:
    d = Doubler()
    rec = d.attach(EventRecorder(d))
    await d.fire(Start())
    d.fire(Measured(value=1))
    assert (await rec.wait_for(Measured)).value == 1
    waiter = asyncio.create_task(rec.wait_for(Measured, lambda e: e.value == 2))
    await asyncio.sleep(0)
    assert not waiter.done()
    d.fire(Measured(value=2))
    assert (await waiter).value == 2
    with pytest.raises(TimeoutError):
        await rec.wait_for(Measured, lambda e: e.value == 3, timeout=0.02)
    assert rec.names()[:2] == ["Attached", "Start"]


def test_public_api_surface() -> None:
    expected = {
        "Event", "CompletionEvent", "Component", "handler", "HandlerContext", "EventHandle",
        "Channel", "BROADCAST", "NamedChannel", "Start", "Started", "Stop", "Stopped",
        "Attached", "Detached", "Error", "HandlingError", "run", "CoreError", "StateError",
        "DeadlockError", "HandlerDeclarationError", "CompletionLock", "Resumer", "Timer",
        "Observers",
    }
    assert expected <= set(vmrunner.core.__all__)
    for name in vmrunner.core.__all__:
        assert getattr(vmrunner.core, name) is not None
