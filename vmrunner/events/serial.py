"""The serial console the runner keeps (:class:`~vmrunner.components.serial_console.SerialConsole`):
its status and the query for its buffered output (``GET /console/tail``)."""

from __future__ import annotations

from vmrunner.core import Event
from vmrunner.events.status import StatusPart


class SerialConsoleStatus(StatusPart, frozen=True, kw_only=True):
    """The SerialConsole: whether it reads QEMU's serial port (``connected``), the bytes the
    guest wrote so far (``bytes_seen``), the log file (``None``: none), and the pid of the
    attached session (``None``: nobody attached)."""

    connected: bool = False
    bytes_seen: int = 0
    log_file: str | None = None
    client_pid: int | None = None


class SerialConsoleTail(Event[bytes], frozen=True, kw_only=True):
    """The last ``size`` bytes of the serial output the runner keeps in memory (at most its
    ring buffer's size); answered by the SerialConsole, no answer when it keeps none."""

    observable = False
    size: int
