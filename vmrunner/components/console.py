"""ConsoleTracker: who is connected to the VM's SPICE console.

QEMU reports every SPICE *channel* (main, display, inputs, cursor, ... each its own TCP
connection) with ``SPICE_CONNECTED``, ``SPICE_INITIALIZED`` once its password was accepted,
and ``SPICE_DISCONNECTED``. Only ``SPICE_INITIALIZED`` names the session
(``connection-id``) and the channel type; the other two carry the client's host and port
alone, and a client that goes away disconnects its channels in no fixed order. So:

* a channel is remembered by its client address ``(host, port)`` from its
  ``SPICE_INITIALIZED``, with its session and type; a ``SPICE_DISCONNECTED`` is matched by
  that address (one without an initialised channel, e.g. a refused password, is ignored);
* a **console client** is a session whose *main* channel (type 1) was initialised:
  :class:`~vmrunner.events.ConsoleConnected`; it ends when that main channel disconnects
  (:class:`~vmrunner.events.ConsoleDisconnected`); its other channels may go before or
  after and change nothing;
* with several sessions at once, the console client (``ConsoleStatus.client``,
  ``ConsoleDisconnected.console_client``) is the **most recently connected session still
  connected**: a new session takes over, and when it goes the previous one still connected
  is the console client again. A reconnect is a new session (new ``connection-id``);
* QEMU exiting (``ProcessExited`` of ``qemu``) or the monitor closing ends every session
  (``ConsoleDisconnected(reason="vm-stopped")``, newest first).

Nothing is counted: each disconnect removes exactly the channel it names.
"""

from __future__ import annotations

import logging
import time

import msgspec

from vmrunner.components.base import BusComponent
from vmrunner.core import Channel, handler
from vmrunner.events import (
    ConsoleConnected,
    ConsoleDisconnected,
    MonitorClosed,
    ProcessExited,
    ProcessRole,
    QmpSpiceDisconnected,
    QmpSpiceInitialized,
)
from vmrunner.events.console import ConsoleDisconnectReason
from vmrunner.events.status import ConsoleClientStatus, ConsoleStatus, StatusQuery

_log = logging.getLogger(__name__)

MAIN_CHANNEL = 1
"""SPICE's channel type of a session's main channel (``SPICE_CHANNEL_MAIN``)."""


class _Channel(msgspec.Struct, frozen=True):
    connection_id: int
    channel_type: int


class ConsoleTracker(BusComponent):
    """Follows the SPICE sessions' main channels; answers ``StatusQuery`` with
    :class:`~vmrunner.events.ConsoleStatus`."""

    def __init__(self, channel: Channel | None = None, name: str | None = None) -> None:
        super().__init__(channel, name)
        self._channels: dict[tuple[str, str], _Channel] = {}
        """Initialised channels still connected, by client ``(host, port)``."""
        self._sessions: dict[int, ConsoleClientStatus] = {}
        """Connected sessions (main channel initialised) by connection id, oldest first."""

    @property
    def client(self) -> str | None:
        """The console client's host: the most recently connected session still connected."""
        newest = next(reversed(self._sessions.values()), None)
        return None if newest is None else newest.host

    @property
    def clients(self) -> tuple[ConsoleClientStatus, ...]:
        """The connected sessions, oldest first."""
        return tuple(self._sessions.values())

    @handler
    def on_spice_initialized(self, event: QmpSpiceInitialized) -> None:
        self._channels[(event.host, event.port)] = _Channel(event.connection_id,
                                                            event.channel_type)
        if event.channel_type != MAIN_CHANNEL or event.connection_id in self._sessions:
            return
        self._sessions[event.connection_id] = ConsoleClientStatus(
            host=event.host, port=event.port, connection_id=event.connection_id,
            since=event.timestamp or time.time())
        _log.info("console: connection from %s (SPICE session %d)", event.host,
                  event.connection_id)
        self.fire(ConsoleConnected(host=event.host, connection_id=event.connection_id))

    @handler
    def on_spice_disconnected(self, event: QmpSpiceDisconnected) -> None:
        channel = self._channels.pop((event.host, event.port), None)
        if channel is None or channel.channel_type != MAIN_CHANNEL:
            return
        session = self._sessions.pop(channel.connection_id, None)
        if session is None:
            return
        self._end(session, "disconnected")

    @handler
    def on_process_exited(self, event: ProcessExited) -> None:
        if event.name == ProcessRole.QEMU:
            self._clear()

    @handler
    def on_monitor_closed(self, event: MonitorClosed) -> None:
        self._clear()

    def _clear(self) -> None:
        self._channels.clear()
        while self._sessions:
            _connection, session = self._sessions.popitem()
            self._end(session, "vm-stopped")

    def _end(self, session: ConsoleClientStatus,
             reason: ConsoleDisconnectReason) -> None:
        """Forget the other channels of ``session``, report that it ended."""
        self._channels = {address: channel for address, channel in self._channels.items()
                          if channel.connection_id != session.connection_id}
        current = self.client
        _log.info("console: %s disconnected (SPICE session %d, %s)%s", session.host,
                  session.connection_id, reason,
                  f"; console client now {current}" if current else "")
        self.fire(ConsoleDisconnected(host=session.host, connection_id=session.connection_id,
                                      reason=reason, console_client=current))

    @handler
    def on_status_query(self, event: StatusQuery) -> ConsoleStatus:
        return ConsoleStatus(client=self.client, clients=self.clients)
