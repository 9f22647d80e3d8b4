"""GuestAgent: the qemu-guest-agent connection, its responsiveness and the guest's facts.

The agent's port is connected when the guest opens it (QMP ``VSERPORT_CHANGE`` for the
virtserialport of ``org.qemu.guest_agent.0``): ``guest-sync-delimited`` (retried),
``guest-ping`` → ``GuestAgentConnected``, ``guest-get-osinfo`` → ``OsInfo`` (the runner's
"booted" signal). Then, while connected (:class:`GuestAgentConfig`, node
``/Runner/GuestAgent``):

* every ``pingInterval`` s a ``guest-ping`` that must be answered within ``pingTimeout`` s;
  a miss makes the agent ``unresponsive`` (``GuestAgentUnresponsive``, one WARNING), the
  next answer ``responsive`` again (``GuestAgentResponsive``, one INFO line): one event and
  one line per transition, never per ping;
* every ``factsInterval`` s (and at once after connecting or recovering) the facts
  (:mod:`vmrunner.protocols.qga_facts`); ``GuestFactsUpdated`` only when they changed.
  ``RefreshGuestFacts`` (``POST /guest/refresh``) asks at once. No facts are asked of an
  unresponsive agent (a refresh then answers with the last facts).

``GuestShutdown`` sends ``guest-shutdown`` (result: sent) only to an agent that answers a
timed ``guest-ping`` first; an unresponsive one is not asked (result False), so the shutdown
ladder goes on to the ACPI button at once.
``GuestAgentRequest`` runs any agent command for another component (its answer or error).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from vmrunner.components.base import BusComponent
from vmrunner.core import Channel, Configurable, HandlerContext, Stopped, handler
from vmrunner.core.waiting import first_of
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
from vmrunner.events.guest_facts import (
    AgentState,
    GuestAgentResponsive,
    GuestAgentUnresponsive,
    GuestFacts,
    GuestFactsStatus,
    GuestFactsUpdated,
    RefreshGuestFacts,
)
from vmrunner.events.status import GuestAgentStatus, StatusQuery
from vmrunner.protocols import qga_facts
from vmrunner.protocols.qga import GuestAgent as QgaClient
from vmrunner.protocols.qga import QgaDisconnected, QgaError, QgaTimeout

_log = logging.getLogger(__name__)

SYNC_ATTEMPTS = 3
REPLY_GRACE = 0.5
"""qemu-ga does not answer a successful guest-shutdown; an error comes at once."""


class GuestAgentConfig(BaseModel):
    """``/Runner/GuestAgent``: how often qemu-ga is checked and asked for the guest's facts."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True,
                              extra="ignore")

    ping_interval: float = Field(10.0, gt=0)
    """Seconds between two timed ``guest-ping``s while the agent is connected."""
    ping_timeout: float = Field(3.0, gt=0)
    """Seconds the agent has to answer a ``guest-ping`` before it counts as unresponsive
    (also the ping before ``guest-shutdown``)."""
    facts_interval: float = Field(30.0, ge=0)
    """Seconds between two refreshes of the guest's facts (network interfaces, users,
    filesystems); 0: only on demand (``POST /guest/refresh``)."""


class GuestAgent(Configurable[GuestAgentConfig], BusComponent):
    """Talks to qemu-ga once the guest has opened its port (see the module docstring)."""

    config_model = GuestAgentConfig

    def __init__(self, channel: Channel | None = None, name: str | None = None, *,
                 timeout: float = 5.0) -> None:
        super().__init__(channel, name)
        self.timeout = timeout
        self._settings = GuestAgentConfig.model_validate({})
        self._socket: Path | None = None
        self._port: str | None = None
        self._client: QgaClient | None = None
        self._session: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._state = AgentState.DISCONNECTED
        self._last_pong: float | None = None
        self._ping_seconds: float | None = None
        self._facts: GuestFacts | None = None
        """The last facts (kept after a disconnect)."""
        self._unsupported: set[str] = set()
        """Fact commands this connection's agent does not have."""
        self._status_os_info: dict[str, object] | None = None
        """The last ``guest-get-osinfo`` answer (kept after a disconnect)."""

    def on_config(self, config: GuestAgentConfig, initial: bool) -> None:
        """New intervals apply from the next wake-up of the watch loop (at once)."""
        self._settings = config
        self._wake.set()

    @property
    def connected(self) -> bool:
        """Whether a synchronised session exists."""
        return self._client is not None

    @property
    def state(self) -> AgentState:
        """Responsive, unresponsive (hung) or disconnected."""
        return self._state

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
            sent = time.monotonic()
            await client.ping()
            self._ping_seconds = time.monotonic() - sent
        except QgaError as exc:
            _log.warning("guest agent not usable: %s", exc)
            await client.close()
            return
        self._client = client
        self._unsupported = set()
        self._state = AgentState.RESPONSIVE
        self._last_pong = time.time()
        _log.info("guest agent connected")
        self.fire(GuestAgentConnected())
        try:
            info = await client.get_osinfo()
        except QgaError as exc:
            _log.warning("guest-get-osinfo failed: %s", exc)
        else:
            _log.info("guest OS: %s", info.pretty_name or info.name or info.id)
            self.fire(OsInfo(info=dict(info.raw)))
        try:
            await self._watch(client)
        except QgaDisconnected as exc:
            _log.debug("guest agent watch ended: %s", exc)

    async def _watch(self, client: QgaClient) -> None:
        """Pings and fact refreshes on the configured schedule, until cancelled."""
        last_ping = last_facts = time.monotonic()
        await self._refresh(client)
        while True:
            self._wake.clear()
            settings = self._settings
            now = time.monotonic()
            if now >= last_ping + settings.ping_interval:
                last_ping = now
                recovered = await self._ping(client)
                if recovered:
                    last_facts = time.monotonic()
                    await self._refresh(client)
                continue
            due = last_ping + settings.ping_interval
            if settings.facts_interval > 0:
                if now >= last_facts + settings.facts_interval:
                    last_facts = now
                    if self._state is AgentState.RESPONSIVE:
                        await self._refresh(client)
                    continue
                due = min(due, last_facts + settings.facts_interval)
            await first_of(self._wake.wait(), timeout=due - now)

    async def _ping(self, client: QgaClient) -> bool:
        """One timed ping and the state transition it means; True when it recovered."""
        timeout = self._settings.ping_timeout
        sent = time.monotonic()
        try:
            await client.ping(timeout=timeout)
        except QgaTimeout as exc:
            self._unresponsive(timeout, str(exc))
            return False
        self._ping_seconds = time.monotonic() - sent
        self._last_pong = time.time()
        if self._state is AgentState.UNRESPONSIVE:
            self._state = AgentState.RESPONSIVE
            _log.info("guest agent responsive again")
            self.fire(GuestAgentResponsive())
            return True
        return False

    def _unresponsive(self, timeout: float, detail: str) -> None:
        if self._state is not AgentState.RESPONSIVE:
            return
        self._state = AgentState.UNRESPONSIVE
        _log.warning("guest agent unresponsive: no answer to guest-ping within %g s (hung "
                     "qemu-ga?); a shutdown will use the ACPI button", timeout)
        self.fire(GuestAgentUnresponsive(timeout=timeout, detail=detail))

    async def _refresh(self, client: QgaClient) -> GuestFacts:
        """Ask for the facts; fire ``GuestFactsUpdated`` when they changed."""
        facts = await qga_facts.gather(client, skip=self._unsupported, previous=self._facts,
                                       command_timeout=self.timeout)
        new = set(facts.unsupported) - self._unsupported
        if new:
            _log.info("guest agent does not support %s: not asked again",
                      ", ".join(sorted(new)))
            self._unsupported |= new
        changed = not facts.same_as(self._facts)
        self._facts = facts
        if changed:
            self.fire(GuestFactsUpdated(facts=facts))
        return facts

    @handler
    def on_refresh(self, event: RefreshGuestFacts,
                   ctx: HandlerContext[GuestFacts]) -> GuestFacts | None:
        client = self._client
        if client is None:
            return None
        if self._state is AgentState.UNRESPONSIVE:  # it would time out command by command
            return self._facts
        lock = ctx.hold()
        handle = ctx.handle

        async def refresh() -> None:
            try:
                handle.set_result(await self._refresh(client))
            except QgaDisconnected as exc:
                _log.info("guest facts not refreshed: %s", exc)
            finally:
                lock.release()

        self.spawn(refresh(), name="qga-refresh")
        return None

    def _drop(self) -> None:
        client, self._client = self._client, None
        self._state = AgentState.DISCONNECTED
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
        if self._state is AgentState.UNRESPONSIVE:
            _log.info("guest agent unresponsive: guest-shutdown not sent")
            return False
        lock = ctx.hold()
        handle = ctx.handle
        timeout = self._settings.ping_timeout

        async def send() -> None:
            try:
                handle.set_result(await self._ping_then_shutdown(client, timeout))
            finally:
                lock.release()

        self.spawn(send(), name="qga-shutdown")
        return None

    async def _ping_then_shutdown(self, client: QgaClient, ping_timeout: float) -> bool:
        """``guest-shutdown`` if the agent answers a timed ping first; True when sent."""
        try:
            await client.ping(timeout=ping_timeout)
        except QgaTimeout as exc:
            self._unresponsive(ping_timeout, str(exc))
            return False
        except QgaError as exc:
            _log.warning("guest-ping before guest-shutdown failed: %s", exc)
            return False
        try:
            await client.shutdown(reply_grace=REPLY_GRACE)
        except QgaError as exc:
            _log.warning("guest-shutdown refused: %s", exc)
            return False
        return True

    @handler
    async def on_request(self, event: GuestAgentRequest) -> GuestAgentAnswer:
        """Any agent command for another component (day-2 operations); never raises."""
        client = self._client
        if client is None:
            return GuestAgentAnswer(error="the guest agent is not connected")
        try:
            return GuestAgentAnswer(value=await client.execute(event.command, event.arguments,
                                                               timeout=event.timeout))
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

    @handler
    def on_facts_query(self, event: StatusQuery) -> GuestFactsStatus:
        return GuestFactsStatus(agent=self._state, last_pong=self._last_pong,
                                ping_seconds=self._ping_seconds, facts=self._facts)
