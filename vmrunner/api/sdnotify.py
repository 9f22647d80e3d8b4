"""SystemdNotifier: ``sd_notify`` without libsystemd (one datagram to ``$NOTIFY_SOCKET``).

``READY=1`` once the VM runs (``cont`` succeeded: BOOTING), ``STATUS=`` on every state change
and shutdown rung, ``STOPPING=1`` when the shutdown begins, plus ``MAINPID=`` with READY.
On every shutdown rung with a deadline, ``EXTEND_TIMEOUT_USEC=`` the time left to it plus
:data:`EXTEND_MARGIN` (so ``TimeoutStopSec=`` need not know ``powerdownTimeout``). With
``$WATCHDOG_USEC`` set (and ``$WATCHDOG_PID`` unset or ours), ``WATCHDOG=1`` every half
interval from a task the component owns, on the event loop: a blocked loop stops the pings.
Does nothing when ``NOTIFY_SOCKET`` is unset (a name starting with ``@`` is an abstract
socket). Use ``Type=notify`` in the unit (``examples/vmrunner@.service``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping

from vmrunner.components.base import BusComponent
from vmrunner.core import Channel, Started, handler
from vmrunner.events import RunnerStateChanged, RunState, ShutdownRung

_log = logging.getLogger(__name__)

EXTEND_MARGIN = 30.0
"""Seconds added to the time left to the ladder's deadline (the SIGTERM/SIGKILL grace and
the clean-up after it)."""


def notify_address(env: Mapping[str, str]) -> str | None:
    """The socket address from ``NOTIFY_SOCKET`` (``@name`` → abstract), or None."""
    value = env.get("NOTIFY_SOCKET", "")
    if not value or value[0] not in "/@":
        return None
    return "\0" + value[1:] if value[0] == "@" else value


def watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``$WATCHDOG_USEC``), or None when the
    watchdog is off, the value is not a positive integer, or ``$WATCHDOG_PID`` names another
    process."""
    usec, owner = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not (usec.isascii() and usec.isdigit()) or int(usec) == 0:
        return None
    if owner and (not (owner.isascii() and owner.isdigit()) or int(owner) != pid):
        return None
    return int(usec) / 2e6


def sd_notify(address: str, *lines: str) -> bool:
    """Send ``lines`` as one notification datagram; False if it could not be sent."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(False)
            sock.sendto("\n".join(lines).encode(), address)
        return True
    except OSError as exc:
        _log.debug("sd_notify to %r failed: %s", address, exc)
        return False


class SystemdNotifier(BusComponent):
    """Tells systemd (or any ``NOTIFY_SOCKET`` listener) what the runner does."""

    def __init__(self, channel: Channel | None = None, name: str | None = None, *,
                 env: Mapping[str, str] | None = None) -> None:
        super().__init__(channel, name)
        environ = os.environ if env is None else env
        self.address = notify_address(environ)
        self.watchdog = (None if self.address is None
                         else watchdog_interval(environ, os.getpid()))
        """Seconds between ``WATCHDOG=1`` pings; None: no watchdog."""
        self.ready = False

    def _send(self, *lines: str) -> None:
        if self.address is not None:
            sd_notify(self.address, *lines)

    @handler
    def on_state(self, event: RunnerStateChanged) -> None:
        status = f"STATUS={event.new.value}: {event.message or event.reason}"
        if event.new.vm_active and not self.ready:
            self.ready = True
            self._send("READY=1", status, f"MAINPID={os.getpid()}")
        elif event.new is RunState.TERMINATING:
            self._send("STOPPING=1", status)
        else:
            self._send(status)

    @handler
    def on_started(self, event: Started) -> None:
        if self.watchdog is not None:
            self.spawn(self._ping(self.watchdog), name="sd-watchdog")

    async def _ping(self, interval: float) -> None:
        while True:
            self._send("WATCHDOG=1")
            await asyncio.sleep(interval)

    @handler
    def on_rung(self, event: ShutdownRung) -> None:
        lines = [f"STATUS=shutting down: {event.rung.value}: {event.detail}"]
        if event.deadline is not None:
            left = max(0.0, event.deadline - time.monotonic()) + EXTEND_MARGIN
            lines.append(f"EXTEND_TIMEOUT_USEC={int(left * 1e6)}")
        self._send(*lines)
