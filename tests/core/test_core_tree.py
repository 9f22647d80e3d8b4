"""Component tree: paths, attach/detach rules, Attached/Detached, late-attach Start."""

from __future__ import annotations

import pytest

from vmrunner.core import (
    Attached,
    Component,
    Detached,
    Event,
    Start,
    Started,
    StateError,
    handler,
)
from vmrunner.core.recorder import EventRecorder


class Ping(Event[None], frozen=True, kw_only=True):
    pass


class Runner(Component):
    pass


class QemuMonitor(Component):
    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name)
        self.log: list[str] = []

    @handler
    def on_start(self, event: Start) -> None:
        self.log.append("start")

    @handler
    def on_started(self, event: Started) -> None:
        self.log.append("started")

    @handler
    def on_ping(self, event: Ping) -> None:
        self.log.append("ping")


def test_component_path_and_names() -> None:
    runner = Runner()
    monitor = runner.attach(QemuMonitor())
    named = monitor.attach(QemuMonitor(name="inner"))
    assert runner.component_path == "/Runner"
    assert monitor.component_path == "/Runner/QemuMonitor"
    assert named.component_path == "/Runner/QemuMonitor/inner"
    assert named.root is runner and named.parent is monitor
    assert runner.children == (monitor,)
    assert list(runner.walk()) == [runner, monitor, named]
    assert repr(monitor) == "<QemuMonitor /Runner/QemuMonitor>"
    for bad in ("a/b", ""):
        with pytest.raises(ValueError, match="invalid component name"):
            Runner(name=bad)


async def test_attach_rules() -> None:
    runner = Runner()
    monitor = runner.attach(QemuMonitor())
    with pytest.raises(StateError, match="already has a parent"):
        Runner().attach(monitor)
    with pytest.raises(StateError, match="already has a parent"):
        monitor.attach(runner)
    with pytest.raises(StateError, match="before the tree has been started"):
        monitor.detach()
    other = Runner()
    await other.fire(Start())
    with pytest.raises(StateError, match="already been started"):
        runner.attach(other)


async def test_attached_events_are_buffered_and_delivered() -> None:
    runner = Runner()
    rec = runner.attach(EventRecorder(runner))
    monitor = runner.attach(QemuMonitor())
    await runner.fire(Start())
    attached = rec.of_type(Attached)
    assert [(a.node, a.parent) for a in attached] == [(rec, runner), (monitor, runner)]


async def test_late_attached_subtree_gets_its_own_start() -> None:
    runner = Runner()
    early = runner.attach(QemuMonitor(name="early"))
    runner.attach(EventRecorder(runner))
    await runner.fire(Start())
    await runner.wait_idle()
    assert early.log == ["start", "started"]
    late = QemuMonitor(name="late")
    late_child = late.attach(QemuMonitor(name="child"))
    runner.attach(late)
    await runner.wait_idle()
    assert late.log == ["start", "started"]
    assert late_child.log == ["start", "started"]
    assert early.log == ["start", "started"]  # no second Start for the running part
    await runner.fire(Ping(), late)
    assert late.log[-1] == "ping"


async def test_detach_makes_a_separate_started_tree() -> None:
    runner = Runner()
    rec = runner.attach(EventRecorder(runner))
    monitor = runner.attach(QemuMonitor())
    await runner.fire(Start())
    monitor.detach()
    assert monitor.parent is None and monitor.root is monitor
    assert monitor.component_path == "/QemuMonitor"
    assert runner.children == (rec,)
    await runner.wait_idle()
    await monitor.wait_idle()
    [detached] = rec.of_type(Detached)
    assert detached.node is monitor and detached.parent is runner
    await runner.fire(Ping(), monitor)  # the old tree no longer reaches it
    assert "ping" not in monitor.log
    await monitor.fire(Ping())  # its own tree does, without a new Start
    assert monitor.log == ["start", "started", "ping"]
