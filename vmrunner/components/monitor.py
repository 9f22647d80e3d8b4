"""QemuMonitor: starts QEMU (paused, ``-S``) and speaks QMP with it.

``StartQemu`` → ``StartProcess(qemu)`` (the ProcessManager removes a stale monitor
socket). Once QEMU runs, the QMP session is opened through
:class:`vmrunner.protocols.qmp.QmpClient` (``qemu.qmp``: greeting, negotiation, id matching),
racing QEMU's exit and a timeout → ``MonitorReady`` or ``StartFailed``. Each QMP event is
fired as it was parsed, one bus event class per kind (:mod:`vmrunner.events.qmp`);
``ExecuteQmp`` is answered with a :class:`~vmrunner.events.QmpReply` (value or typed error).
QMP traffic is logged on ``vmrunner.protocols.qmp.traffic`` at DEBUG.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from vmrunner.components.base import BusComponent
from vmrunner.core import Channel, HandlerContext, Stopped, handler
from vmrunner.core.waiting import first_of
from vmrunner.events import (
    ExecuteQmp,
    MonitorClosed,
    MonitorReady,
    ProcessExited,
    ProcessFailed,
    ProcessRole,
    ProcessStarted,
    QemuStarted,
    QmpReply,
    StartFailed,
    StartProcess,
    StartQemu,
)
from vmrunner.protocols.qmp import QmpDisconnected, QmpError

if TYPE_CHECKING:
    from vmrunner.protocols.qmp.client import QmpClient

_log = logging.getLogger(__name__)


class QemuMonitor(BusComponent):
    """QEMU's process start and its QMP connection."""

    def __init__(self, channel: Channel | None = None, name: str | None = None, *,
                 connect_timeout: float = 10.0, command_timeout: float = 30.0) -> None:
        super().__init__(channel, name)
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._socket: Path | None = None
        self._client: QmpClient | None = None
        """The session (its module, with ``qemu.qmp``, is imported once QEMU runs)."""
        self._exited: asyncio.Future[ProcessExited] | None = None

    @property
    def connected(self) -> bool:
        """Whether the QMP session is up."""
        return self._client is not None and self._client.connected

    @handler
    def on_start_qemu(self, event: StartQemu) -> None:
        self._socket = event.plan.paths.monitor_socket
        self._exited = asyncio.get_running_loop().create_future()
        command = event.plan.qemu
        self.fire(StartProcess(name=ProcessRole.QEMU, argv=tuple(command.argv),
                               env=tuple(command.environment.items()),
                               stale_sockets=(self._socket,)))

    @handler
    def on_process_started(self, event: ProcessStarted) -> None:
        if event.name != ProcessRole.QEMU or self._socket is None:
            return
        self.fire(QemuStarted(pid=event.pid))
        self.spawn(self._connect(self._socket), name="qmp-connect")

    @handler
    def on_process_failed(self, event: ProcessFailed) -> None:
        if event.name == ProcessRole.QEMU:
            self.fire(StartFailed(step=ProcessRole.QEMU, reason=event.reason))

    async def _connect(self, socket: Path) -> None:
        from vmrunner.protocols.qmp.client import QmpClient

        assert self._exited is not None
        client = QmpClient("qemu", connect_timeout=self.connect_timeout,
                           command_timeout=self.command_timeout)
        connecting: asyncio.Future[None] = asyncio.ensure_future(client.connect(socket))
        await first_of(connecting, asyncio.shield(self._exited))
        error = None if connecting.cancelled() else connecting.exception()
        if error is not None and not isinstance(error, QmpError):
            raise error  # a bug, not a failed start
        if self._exited.done() or connecting.cancelled() or error is not None:
            await client.disconnect()
            if self._exited.done():
                exited = self._exited.result()
                reason = f"QEMU {exited.status} before QMP was ready"
                if exited.stderr_tail:
                    reason += f"; its stderr:\n{exited.stderr_tail}"
            else:
                reason = str(error)
            self.fire(StartFailed(step="qmp", reason=reason))
            return
        self._client = client
        _log.info("QMP session established (QEMU %s)",
                  ".".join(map(str, client.qemu_version or ())))
        self.fire(MonitorReady(version=client.qemu_version))
        async for qmp in client.events():
            _log.debug("QMP event %s", qmp)
            self.fire(qmp)
        self.fire(MonitorClosed())

    @handler
    def on_execute(self, event: ExecuteQmp, ctx: HandlerContext[QmpReply]) -> None:
        client = self._client
        if client is None or not client.connected:
            ctx.set_result(QmpReply(error=QmpDisconnected(
                f"cannot send {event.command.name}: QMP is not connected")))
            return
        lock = ctx.hold()
        handle = ctx.handle

        async def execute() -> None:
            try:
                handle.set_result(QmpReply(value=await client.execute(event.command)))
            except QmpError as exc:
                _log.debug("%s failed: %s", event.command.name, exc)
                handle.set_result(QmpReply(error=exc))
            finally:
                lock.release()

        self.spawn(execute(), name=f"qmp-{event.command.name}")

    @handler
    def on_exited(self, event: ProcessExited) -> None:
        if event.name != ProcessRole.QEMU:
            return
        if self._exited is not None and not self._exited.done():
            self._exited.set_result(event)
        if self._client is not None:
            self.spawn(self._client.disconnect(), name="qmp-disconnect")

    @handler
    async def on_stopped(self, event: Stopped) -> None:
        if self._client is not None:
            await self._client.disconnect()
