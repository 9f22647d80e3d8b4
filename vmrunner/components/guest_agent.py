"""GuestAgent: the qemu-guest-agent connection.

The agent's port is connected when the guest opens it (QMP ``VSERPORT_CHANGE`` for the
virtserialport of ``org.qemu.guest_agent.0``): ``guest-sync-delimited`` (retried),
``guest-ping`` → ``GuestAgentConnected``, ``guest-get-osinfo`` → ``OsInfo`` (the runner's
"booted" signal). ``GuestShutdown`` sends ``guest-shutdown`` if connected (result: sent).
``GuestAgentRequest`` runs any agent command for another component (its answer or error).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from vmrunner.components.base import BusComponent
from vmrunner.core import Channel, HandlerContext, Stopped, handler
from vmrunner.events import (
    GuestAgentConnected,
    GuestAgentDisconnected,
    GuestShutdown,
    OsInfo,
    ProcessExited,
    ProcessRole,
    QmpVserportChange,
    VmPrepared,
)
from vmrunner.events.guest import GuestAgentAnswer, GuestAgentRequest
from vmrunner.events.status import GuestAgentStatus, StatusQuery
from vmrunner.protocols.qga import GuestAgent as QgaClient
from vmrunner.protocols.qga import QgaError, QgaTimeout

_log = logging.getLogger(__name__)

SYNC_ATTEMPTS = 3
REPLY_GRACE = 0.5
"""qemu-ga does not answer a successful guest-shutdown; an error comes at once."""


class GuestAgent(BusComponent):
    """Talks to qemu-ga once the guest has opened its port."""

    def __init__(self, channel: Channel | None = None, name: str | None = None, *,
                 timeout: float = 5.0) -> None:
        super().__init__(channel, name)
        self.timeout = timeout
        self._socket: Path | None = None
        self._port: str | None = None
        self._client: QgaClient | None = None
        self._session: asyncio.Task[None] | None = None
        self._status_os_info: dict[str, object] | None = None
        """The last ``guest-get-osinfo`` answer (kept after a disconnect)."""

    @property
    def connected(self) -> bool:
        """Whether a synchronised session exists."""
        return self._client is not None

    @handler
    def on_prepared(self, event: VmPrepared) -> None:
        self._port = event.plan.guest_agent_channel
        self._socket = event.plan.paths.guest_agent_socket if self._port else None

    @handler
    def on_vserport(self, event: QmpVserportChange) -> None:
        qmp = event
        if qmp.id != self._port:
            return
        if qmp.open and self._socket is not None:
            if self._session is None or self._session.done():
                self._session = self.spawn(self._open(self._socket), name="qga-session")
        else:
            _log.info("guest agent port closed by the guest")
            self._drop()

    async def _open(self, socket: Path) -> None:
        client = QgaClient("qga", timeout=self.timeout, sync_timeout=self.timeout)
        try:
            await client.connect(socket)
            for attempt in range(1, SYNC_ATTEMPTS + 1):
                try:
                    await client.sync()
                    break
                except QgaTimeout:
                    if attempt == SYNC_ATTEMPTS:
                        raise
            await client.ping()
        except QgaError as exc:
            _log.warning("guest agent not usable: %s", exc)
            await client.close()
            return
        self._client = client
        _log.info("guest agent connected")
        self.fire(GuestAgentConnected())
        try:
            info = await client.get_osinfo()
        except QgaError as exc:
            _log.warning("guest-get-osinfo failed: %s", exc)
            return
        _log.info("guest OS: %s", info.pretty_name or info.name or info.id)
        self.fire(OsInfo(info=dict(info.raw)))

    def _drop(self) -> None:
        client, self._client = self._client, None
        if self._session is not None and not self._session.done():
            self._session.cancel()
        if client is not None:
            self.spawn(client.close(), name="qga-close")
            self.fire(GuestAgentDisconnected())

    @handler
    def on_shutdown(self, event: GuestShutdown, ctx: HandlerContext[bool]) -> bool | None:
        client = self._client
        if client is None:
            return False
        lock = ctx.hold()
        handle = ctx.handle

        async def send() -> None:
            try:
                await client.shutdown(reply_grace=REPLY_GRACE)
                handle.set_result(True)
            except QgaError as exc:
                _log.warning("guest-shutdown refused: %s", exc)
                handle.set_result(False)
            finally:
                lock.release()

        self.spawn(send(), name="qga-shutdown")
        return None

    @handler
    async def on_request(self, event: GuestAgentRequest) -> GuestAgentAnswer:
        """Any agent command for another component (day-2 operations); never raises."""
        client = self._client
        if client is None:
            return GuestAgentAnswer(error="the guest agent is not connected")
        try:
            return GuestAgentAnswer(value=await client.execute(event.command, event.arguments))
        except QgaError as exc:
            return GuestAgentAnswer(error=str(exc) or type(exc).__name__)

    @handler
    def on_exited(self, event: ProcessExited) -> None:
        if event.name == ProcessRole.QEMU:
            self._drop()

    @handler
    def on_stopped(self, event: Stopped) -> None:
        self._drop()

    # -- status (GET /status) ----------------------------------------------------------------

    @handler
    def on_status_osinfo(self, event: OsInfo) -> None:
        self._status_os_info = dict(event.info)

    @handler
    def on_status_query(self, event: StatusQuery) -> GuestAgentStatus:
        return GuestAgentStatus(connected=self.connected, os_info=self._status_os_info)
