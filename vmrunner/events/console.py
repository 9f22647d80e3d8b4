"""The SPICE console: which client is connected (QMP ``SPICE_*`` events, followed by the
:class:`~vmrunner.components.console.ConsoleTracker`).

A *console client* is one SPICE session whose main channel (SPICE channel type 1) was
initialised, i.e. its password was accepted; it ends when that main channel disconnects.
Several may be connected at once; the one that counts (``console_client``) is the most
recently connected of those still connected.
"""

from __future__ import annotations

from typing import Literal

from vmrunner.core import Event

ConsoleDisconnectReason = Literal["disconnected", "vm-stopped"]


class ConsoleConnected(Event[None], frozen=True, kw_only=True):
    """A SPICE client's main channel was initialised: ``host`` is now the console client.

    ``connection_id`` is QEMU's id of the SPICE session (signed 32-bit; unique while it
    lasts, not across QEMU runs).
    """

    host: str
    connection_id: int


class ConsoleDisconnected(Event[None], frozen=True, kw_only=True):
    """The SPICE session ``connection_id`` of ``host`` ended.

    ``reason`` is ``disconnected`` (its main channel closed) or ``vm-stopped`` (QEMU or its
    monitor went away, which ends every session). ``console_client`` is the console client
    after this change: the host of the most recently connected session still connected,
    ``None`` when none is left.
    """

    host: str
    connection_id: int
    reason: ConsoleDisconnectReason = "disconnected"
    console_client: str | None = None
