"""Lifecycle: buffering before Start, run() and exit codes, owned tasks, two trees."""

from __future__ import annotations

import asyncio

import pytest

from vmrunner.components.exit_codes import ExitCode
from vmrunner.core import (
    Component,
    Event,
    Start,
    Started,
    StateError,
    Stop,
    Stopped,
    handler,
    run,
)
from vmrunner.core.recorder import EventRecorder


class Note(Event[None], frozen=True, kw_only=True):
    text: str


class Noter(Component):
    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name)
        self.log: list[str] = []

    @handler
    def on_note(self, event: Note) -> None:
        self.log.append(event.text)

    @handler
    def on_start(self, event: Start) -> None:
        self.log.append("start")

    @handler
    def on_stop(self, event: Stop) -> None:
        self.log.append("stop")

    @handler
    def on_stopped(self, event: Stopped) -> None:
        self.log.append("stopped")


async def test_events_fired_before_start_are_buffered_in_order() -> None:
    root = Noter()
    root.fire(Note(text="one"))
    child = Noter(name="child")
    child.fire(Note(text="child-early"), root)  # buffered in the child's tree, merged
    root.fire(Note(text="two"))
    root.attach(child)
    await asyncio.sleep(0.01)
    assert root.log == []  # nothing dispatched before Start
    await root.fire(Start())
    assert root.log == ["one", "two", "child-early", "start"]


class Quitter(Noter):
    @handler
    def on_started(self, event: Started) -> None:
        self.log.append("started")
        self.spawn(self.forever(), name="forever")
        self.set_exit_code(ExitCode.QEMU_DIED)
        self.set_exit_code(ExitCode.FORCED_STOP)  # first non-zero wins
        self.fire(Stop())

    async def forever(self) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            self.log.append("task cancelled")


async def test_run_returns_exit_code_after_stop_and_cancels_tasks() -> None:
    q = Quitter()
    assert await asyncio.wait_for(run(q), 2) == ExitCode.QEMU_DIED
    assert q.log == ["start", "started", "stop", "stopped", "task cancelled"]
    q.set_exit_code(0, force=True)
    assert q.exit_code == 0


async def test_run_with_stop_from_outside_and_errors() -> None:
    root = Noter()
    child = root.attach(Noter(name="child"))
    with pytest.raises(StateError, match="needs the root"):
        await run(child)
    task = asyncio.create_task(run(root))
    rec = root.attach(EventRecorder(root))
    await rec.wait_for(Started)
    root.fire(Stop())
    assert await asyncio.wait_for(task, 2) == 0
    assert root.log == ["start", "stop", "stopped"]
    with pytest.raises(StateError, match="already been started"):
        await run(root)


async def test_cancelling_run_cancels_owned_tasks() -> None:
    root = Noter()
    entered = asyncio.Event()

    async def forever() -> None:
        entered.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(run(root))
    await asyncio.sleep(0)
    owned = root.spawn(forever())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert owned.cancelled()


class CrossFirer(Component):
    def __init__(self, other: Component | None) -> None:
        super().__init__()
        self.other = other
        self.log: list[str] = []

    @handler
    def on_start(self, event: Start) -> None:
        self.log.append("start")

    @handler
    async def on_note(self, event: Note) -> None:
        self.log.append(event.text)
        if self.other is not None and event.text == "cross":
            self.other.fire(Note(text="from the other tree"))


async def test_two_trees_in_one_process_do_not_interfere() -> None:
    b = CrossFirer(None)
    a = CrossFirer(b)
    rec_a = a.attach(EventRecorder(a))
    rec_b = b.attach(EventRecorder(b))
    run_a = asyncio.create_task(run(a))
    run_b = asyncio.create_task(run(b))
    await rec_a.wait_for(Started)
    await rec_b.wait_for(Started)
    a.set_exit_code(3)
    await a.fire(Note(text="cross"))
    await b.wait_idle()
    assert a.log == ["start", "cross"]
    assert b.log == ["start", "from the other tree"]
    assert [e.text for e in rec_a.of_type(Note)] == ["cross"]
    assert [e.text for e in rec_b.of_type(Note)] == ["from the other tree"]
    a.fire(Stop())
    assert await asyncio.wait_for(run_a, 2) == 3
    assert not run_b.done()
    b.fire(Stop())
    assert await asyncio.wait_for(run_b, 2) == 0


async def test_timer_can_be_cancelled() -> None:
    root = Noter()
    await root.fire(Start())
    fired: list[str] = []
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    timer = root.schedule(0.01, lambda: fired.append("no"))

    def last() -> None:
        fired.append("yes")
        done.set_result(None)

    root.schedule(0.02, last)
    timer.cancel()
    await asyncio.wait_for(done, 1)
    assert fired == ["yes"]


class Spawner(Component):
    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []
        self.release = asyncio.Event()

    @handler
    def on_note(self, event: Note) -> None:
        self.log.append(event.text)
        if event.text == "spawn":
            self.spawn(self.later())

    async def later(self) -> None:
        await self.release.wait()
        self.fire(Note(text="from task"))  # fresh context: main pipeline, no cause


async def test_spawned_tasks_do_not_inherit_the_handler_context() -> None:
    s = Spawner()
    await s.fire(Start())
    handle = s.fire(Note(text="spawn"))
    await handle  # completes although the task will fire later: the task is not its cause
    assert s.log == ["spawn"]
    s.release.set()
    rec = s.attach(EventRecorder(s))
    await rec.wait_for(Note, lambda e: e.text == "from task")
    assert s.log == ["spawn", "from task"]
