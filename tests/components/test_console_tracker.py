"""ConsoleTracker with scripted QMP SPICE events (shaped like QEMU 7.2's; the real client is in
tests/live/test_live_console.py): several sessions, channels disconnecting in any order,
reconnects, refused passwords, QEMU going away."""

from __future__ import annotations

import itertools
import random

from vmrunner.components.base import BusComponent
from vmrunner.components.console import ConsoleTracker
from vmrunner.core import Start
from vmrunner.core.recorder import EventRecorder
from vmrunner.events import (
    ConsoleConnected,
    ConsoleDisconnected,
    ConsoleStatus,
    MonitorClosed,
    ProcessExited,
    ProcessRole,
    QmpSpiceConnected,
    QmpSpiceDisconnected,
    QmpSpiceInitialized,
    StatusQuery,
)
from vmrunner.proc import ExitStatus

MAIN, DISPLAY, INPUTS, CURSOR = 1, 2, 3, 4
_ports = itertools.count(40000)


class Session:
    """One SPICE client: a port per channel, one connection id (as remote-viewer does)."""

    def __init__(self, connection_id: int, host: str = "127.0.0.1") -> None:
        self.connection_id = connection_id
        self.host = host
        self.ports = {kind: str(next(_ports)) for kind in (MAIN, DISPLAY, INPUTS, CURSOR)}

    def connect(self, root: BusComponent, *kinds: int) -> None:
        for kind in kinds or (MAIN, DISPLAY, CURSOR, INPUTS):
            port = self.ports[kind]
            root.fire(QmpSpiceConnected(timestamp=1.0, host=self.host, port=port))
            root.fire(QmpSpiceInitialized(timestamp=100.0 + self.connection_id % 1000,
                                          host=self.host, port=port, channel_type=kind,
                                          connection_id=self.connection_id))

    def disconnect(self, root: BusComponent, *kinds: int) -> None:
        for kind in kinds or (CURSOR, INPUTS, DISPLAY, MAIN):
            root.fire(QmpSpiceDisconnected(timestamp=2.0, host=self.host,
                                           port=self.ports[kind]))


async def _tree() -> tuple[BusComponent, ConsoleTracker, EventRecorder]:
    root = BusComponent(name="Root")
    tracker = root.attach(ConsoleTracker())
    recorder = root.attach(EventRecorder())
    await root.fire(Start())
    return root, tracker, recorder


async def _settle(root: BusComponent) -> ConsoleStatus:
    """The tracker's status answer once everything fired so far has been handled (the
    query queues behind the scripted events on the main pipeline)."""
    answers = [a for a in await root.fire(StatusQuery()).wait() if isinstance(a, ConsoleStatus)]
    assert len(answers) == 1
    return answers[0]


def _console(recorder: EventRecorder) -> list[tuple[str, str, int, str | None]]:
    return [("connected", e.host, e.connection_id, e.host) if isinstance(e, ConsoleConnected)
            else ("disconnected", e.host, e.connection_id, e.console_client)
            for e in recorder.events if isinstance(e, ConsoleConnected | ConsoleDisconnected)]


async def test_one_client_main_channel_connects_and_disconnects() -> None:
    root, tracker, recorder = await _tree()
    assert await _settle(root) == ConsoleStatus(client=None, clients=())
    a = Session(-484278287)
    a.connect(root)
    status = await _settle(root)
    assert status.client == "127.0.0.1"
    assert [(c.host, c.port, c.connection_id) for c in status.clients] == [
        ("127.0.0.1", a.ports[MAIN], -484278287)]
    assert recorder.of_type(ConsoleConnected) == [
        ConsoleConnected(host="127.0.0.1", connection_id=-484278287)]  # once, not per channel
    a.disconnect(root)
    assert await _settle(root) == ConsoleStatus(client=None, clients=())
    assert _console(recorder) == [("connected", "127.0.0.1", -484278287, "127.0.0.1"),
                                  ("disconnected", "127.0.0.1", -484278287, None)]
    assert tracker._channels == {}


async def test_only_the_main_channel_ends_a_session_whatever_the_order() -> None:
    for order in itertools.permutations((MAIN, DISPLAY, INPUTS, CURSOR)):
        root, _tracker, recorder = await _tree()
        a = Session(5)
        a.connect(root)
        for kind in order:
            a.disconnect(root, kind)
            status = await _settle(root)
            gone = kind == MAIN or MAIN in order[:order.index(kind)]
            assert status.client == (None if gone else "127.0.0.1"), (order, kind)
        assert len(recorder.of_type(ConsoleDisconnected)) == 1, order


async def test_several_clients_most_recent_still_connected_is_the_console_client() -> None:
    root, _tracker, recorder = await _tree()
    a, b, c = Session(1, "10.0.0.1"), Session(2, "::1"), Session(3, "10.0.0.3")
    a.connect(root)
    b.connect(root)
    assert (await _settle(root)).client == "::1"
    c.connect(root)
    status = await _settle(root)
    assert status.client == "10.0.0.3"
    assert [x.host for x in status.clients] == ["10.0.0.1", "::1", "10.0.0.3"]  # oldest first
    b.disconnect(root)  # a middle one: the console client stays
    assert (await _settle(root)).client == "10.0.0.3"
    c.disconnect(root)  # the newest: back to the newest still connected
    assert (await _settle(root)).client == "10.0.0.1"
    a.disconnect(root)
    assert await _settle(root) == ConsoleStatus()
    assert _console(recorder) == [
        ("connected", "10.0.0.1", 1, "10.0.0.1"), ("connected", "::1", 2, "::1"),
        ("connected", "10.0.0.3", 3, "10.0.0.3"), ("disconnected", "::1", 2, "10.0.0.3"),
        ("disconnected", "10.0.0.3", 3, "10.0.0.1"), ("disconnected", "10.0.0.1", 1, None)]


async def test_interleaved_disconnects_of_two_sessions_from_one_host() -> None:
    """Same host, two sessions: each disconnect is matched by its port, never counted."""
    rng = random.Random(14)
    for _ in range(20):
        root, _tracker, recorder = await _tree()
        a, b = Session(10), Session(11)
        a.connect(root)
        b.connect(root)
        channels = [(a, k) for k in a.ports] + [(b, k) for k in b.ports]
        rng.shuffle(channels)
        for session, kind in channels:
            session.disconnect(root, kind)
        assert await _settle(root) == ConsoleStatus()
        ended = sorted(e.connection_id for e in recorder.of_type(ConsoleDisconnected))
        assert ended == [10, 11]
        last = recorder.of_type(ConsoleDisconnected)[-1]
        assert last.console_client is None


async def test_reconnect_is_a_new_session_even_before_the_old_one_is_reported_gone() -> None:
    root, _tracker, recorder = await _tree()
    old = Session(20)
    old.connect(root)
    new = Session(21)  # the viewer reconnected; QEMU reports the old channels' end later
    new.connect(root)
    old.disconnect(root, DISPLAY, MAIN, CURSOR, INPUTS)
    status = await _settle(root)
    assert status.client == "127.0.0.1"
    assert [c.connection_id for c in status.clients] == [21]
    assert _console(recorder)[-1] == ("disconnected", "127.0.0.1", 20, "127.0.0.1")


async def test_refused_password_and_stray_events_change_nothing() -> None:
    root, _tracker, recorder = await _tree()
    port = str(next(_ports))  # wrong password: connected, never initialised, disconnected
    root.fire(QmpSpiceConnected(timestamp=1.0, host="127.0.0.1", port=port))
    root.fire(QmpSpiceDisconnected(timestamp=1.0, host="127.0.0.1", port=port))
    lonely = Session(30)  # channels of a session whose main channel was never seen
    lonely.connect(root, DISPLAY)
    lonely.disconnect(root, DISPLAY, MAIN)
    assert await _settle(root) == ConsoleStatus()
    assert _console(recorder) == []


async def test_duplicate_main_channel_report_does_not_fire_twice() -> None:
    root, _tracker, recorder = await _tree()
    a = Session(40)
    a.connect(root, MAIN)
    a.connect(root, MAIN)
    await _settle(root)
    assert len(recorder.of_type(ConsoleConnected)) == 1


async def test_qemu_exit_or_monitor_close_ends_every_session() -> None:
    for ending in (ProcessExited(name=ProcessRole.QEMU, pid=1, status=ExitStatus(0),
                                 stderr_tail=""), MonitorClosed()):
        root, tracker, recorder = await _tree()
        a, b = Session(50, "10.0.0.1"), Session(51, "10.0.0.2")
        a.connect(root)
        b.connect(root)
        root.fire(ProcessExited(name=ProcessRole.SWTPM, pid=2, status=ExitStatus(0),
                                stderr_tail=""))  # not QEMU: nothing happens
        assert (await _settle(root)).client == "10.0.0.2"
        root.fire(ending)
        assert await _settle(root) == ConsoleStatus()
        gone = recorder.of_type(ConsoleDisconnected)
        assert [(e.host, e.reason, e.console_client) for e in gone] == [
            ("10.0.0.2", "vm-stopped", "10.0.0.1"), ("10.0.0.1", "vm-stopped", None)]
        assert tracker._channels == {}
        a.disconnect(root)  # QEMU's late reports of the old channels: ignored
        assert len(recorder.of_type(ConsoleDisconnected)) == 2
