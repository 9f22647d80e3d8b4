"""BusComponent.execute / execute_then: the one way to send a QMP command and get its reply."""

from __future__ import annotations

import asyncio

from vmrunner.components.base import BusComponent
from vmrunner.core import DeadlockError, Event, HandlerContext, Start, handler
from vmrunner.events import ExecuteQmp, QmpReply
from vmrunner.protocols.qmp import QmpDisconnected, QmpError, commands


class FakeMonitor(BusComponent):
    """Answers like the QemuMonitor: a held event, the reply set from a task."""

    def __init__(self) -> None:
        super().__init__(name="FakeMonitor")
        self.sent: list[str] = []

    @handler
    def on_execute(self, event: ExecuteQmp, ctx: HandlerContext[QmpReply]) -> None:
        self.sent.append(event.command.name)
        lock = ctx.hold()
        handle = ctx.handle

        async def answer() -> None:
            await asyncio.sleep(0.01)
            if isinstance(event.command, commands.Cont):
                handle.set_result(QmpReply(error=QmpError("cont refused")))
            else:
                handle.set_result(QmpReply(value={"answer": event.command.name}))
            lock.release()

        self.spawn(answer())


class Go(Event[None], frozen=True, kw_only=True):
    pass


class Asker(BusComponent):
    def __init__(self) -> None:
        super().__init__(name="Asker")
        self.seen: list[object] = []

    @handler
    def on_go(self, event: Go) -> None:
        handle = self.execute_then(commands.QueryStatus(), self._answered)
        self.seen.append(("fired", handle.done))
        self.execute_then(commands.Cont(), self._answered)

    def _answered(self, reply: QmpReply) -> None:
        self.seen.append(reply.value if reply.error is None else str(reply.error))

    @handler
    async def on_deadlock(self, event: Start) -> None:
        try:
            await self.execute(commands.QueryStatus())
        except DeadlockError:
            self.seen.append("deadlock")


async def _tree(*children: BusComponent) -> BusComponent:
    root = BusComponent(name="Root")
    for child in children:
        root.attach(child)
    await root.fire(Start())
    return root


async def test_execute_returns_the_reply_or_its_error() -> None:
    monitor = FakeMonitor()
    root = await _tree(monitor)
    reply = await root.execute(commands.QueryStatus())
    assert reply == QmpReply(value={"answer": "query-status"})
    refused = await root.execute(commands.Cont())
    assert isinstance(refused.error, QmpError) and refused.value is None
    assert monitor.sent == ["query-status", "cont"]


async def test_execute_without_a_monitor_is_a_disconnected_error() -> None:
    root = await _tree()
    reply = await root.execute(commands.QueryStatus())
    assert isinstance(reply.error, QmpDisconnected)
    assert "query-status" in str(reply.error)


async def test_execute_then_calls_back_on_the_pipeline_without_blocking_it() -> None:
    asker = Asker()
    root = await _tree(FakeMonitor(), asker)
    assert asker.seen == ["deadlock"]  # awaiting execute in a handler: the guard says no
    await root.fire(Go())  # completes after its ExecuteQmps and their callbacks
    assert asker.seen == ["deadlock", ("fired", False), {"answer": "query-status"},
                          "cont refused"]


async def test_execute_then_without_a_monitor_calls_back_with_the_error() -> None:
    asker = Asker()
    root = await _tree(asker)
    await root.fire(Go())
    assert asker.seen[2:] == ["query-status: no monitor answered", "cont: no monitor answered"]
