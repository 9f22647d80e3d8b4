"""Where the guest's serial output goes besides an attached client: a ring buffer, a rotated
log file and (when asked) the runner's own log. Plain objects, no asyncio: the
:class:`~vmrunner.components.serial_console.SerialConsole` feeds them every chunk it reads.

* :class:`RingBuffer` keeps the last ``size`` bytes; :meth:`RingBuffer.tail` cuts at a line
  start when it can, so a replay does not begin mid-line.
* :class:`RotatingLog` appends to ``dataDir/console.log``; a file never grows past
  ``max_bytes`` (the chunk is split), then ``console.log`` becomes ``console.log.1`` and so on,
  ``keep`` old files at most. A write that fails (full disk, read-only, I/O error) is logged
  as one WARNING until a write succeeds again; the output is then missing from the file,
  never from the ring buffer, the client or the runner's log.
* :class:`LineForwarder` turns the byte stream into one INFO record per non-empty line on
  the logger ``vmrunner.guest.console``, control characters escaped, lines longer than
  :data:`MAX_LINE` split.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from pathlib import Path

_log = logging.getLogger(__name__)
GUEST_LOGGER = "vmrunner.guest.console"
"""The logger the guest's console lines go to (``forwardToLog``)."""
MAX_LINE = 4096
"""Bytes after which a line without a newline is forwarded anyway."""

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class RingBuffer:
    """The last ``size`` bytes of the output, and how many bytes were seen in all."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.seen = 0
        self._data = bytearray()

    def append(self, data: bytes) -> None:
        self.seen += len(data)
        self._data += data
        if len(self._data) > self.size:
            del self._data[:len(self._data) - self.size]

    def resize(self, size: int) -> None:
        """Keep at most ``size`` bytes from now on (the newest ones)."""
        self.size = size
        self.append(b"")

    def tail(self, size: int) -> bytes:
        """The last ``size`` bytes (at most), starting after a newline when the cut falls
        inside the buffer and a newline follows it."""
        if size <= 0:
            return b""
        data = bytes(self._data[-size:])
        if len(data) < len(self._data):
            newline = data.find(b"\n")
            if 0 <= newline < len(data) - 1:
                data = data[newline + 1:]
        return data


class RotatingLog:
    """Appends to ``path``, rotating it at ``max_bytes`` and keeping ``keep`` old files.

    The file is opened without following a link planted at its name, mode 0600.
    ``max_bytes == 0`` writes nothing.
    """

    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self._fd: int | None = None
        self._size = 0
        self._failing: str | None = None

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def write(self, data: bytes) -> None:
        """Append ``data``; never raises for a failing file system (see the module)."""
        if not self.enabled or not data:
            return
        try:
            while data:
                fd = self._open()
                room = self.max_bytes - self._size
                if room <= 0:
                    self._rotate()
                    continue
                piece, data = data[:room], data[room:]
                view = memoryview(piece)
                while view:
                    written = os.write(fd, view)
                    self._size += written
                    view = view[written:]
        except OSError as exc:
            self._failed(exc)
            return
        if self._failing is not None:
            _log.info("serial console: writing %s again", self.path)
            self._failing = None

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND
                               | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            self._size = os.fstat(self._fd).st_size
        return self._fd

    def _rotate(self) -> None:
        self.close()
        if self.keep == 0:
            os.unlink(self.path)
        else:
            for index in range(self.keep - 1, 0, -1):
                older = self._old(index)
                if os.path.lexists(older):
                    os.replace(older, self._old(index + 1))
            os.replace(self.path, self._old(1))
        self._size = 0

    def _old(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")

    def _failed(self, exc: OSError) -> None:
        self.close()
        reason = errno.errorcode.get(exc.errno or 0, "") or type(exc).__name__
        if self._failing is None:
            _log.warning("serial console: cannot write %s (%s); the output is still kept in "
                         "memory and retried with the next output", self.path,
                         exc.strerror or reason)
        self._failing = reason

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def escape(text: str) -> str:
    """``text`` with control characters (other than tab) as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class LineForwarder:
    """Splits the output into lines and logs each on :data:`GUEST_LOGGER` (see the module)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(GUEST_LOGGER)
        self._partial = bytearray()

    def feed(self, data: bytes) -> None:
        self._partial += data
        while True:
            newline = self._partial.find(b"\n")
            if newline < 0:
                if len(self._partial) >= MAX_LINE:
                    self._emit(bytes(self._partial[:MAX_LINE]))
                    del self._partial[:MAX_LINE]
                    continue
                return
            line = bytes(self._partial[:newline])
            del self._partial[:newline + 1]
            while len(line) > MAX_LINE:
                self._emit(line[:MAX_LINE])
                line = line[MAX_LINE:]
            self._emit(line)

    def flush(self) -> None:
        """Log a last line that has no newline (the console ended)."""
        if self._partial:
            self._emit(bytes(self._partial))
            self._partial.clear()

    def _emit(self, raw: bytes) -> None:
        text = escape(raw.decode("utf-8", errors="replace").rstrip("\r"))
        if text.strip():
            self.logger.info("%s", text)
