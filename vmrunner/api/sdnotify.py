"""SystemdNotifier: ``sd_notify`` without libsystemd (one datagram to ``$NOTIFY_SOCKET``).

``READY=1`` once the VM runs (``cont`` succeeded: BOOTING), ``STATUS=`` on every state change
and shutdown rung, ``STOPPING=1`` when the shutdown begins, plus ``MAINPID=`` with READY.
Does nothing when ``NOTIFY_SOCKET`` is unset (a name starting with ``@`` is an abstract
socket). Use ``Type=notify`` in the unit (``examples/vmrunner@.service``).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from vmrunner.components.base import BusComponent
from vmrunner.core import Channel, handler
from vmrunner.events import RunnerStateChanged, RunState, ShutdownRung

_log = logging.getLogger(__name__)


def notify_address(env: Mapping[str, str]) -> str | None:
    """The socket address from ``NOTIFY_SOCKET`` (``@name`` → abstract), or None."""
    value = env.get("NOTIFY_SOCKET", "")
    if not value or value[0] not in "/@":
        return None
    return "\0" + value[1:] if value[0] == "@" else value


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
        self.address = notify_address(os.environ if env is None else env)
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
    def on_rung(self, event: ShutdownRung) -> None:
        self._send(f"STATUS=shutting down: {event.rung.value}: {event.detail}")
