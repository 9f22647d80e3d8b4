"""SerialConsole: the runner reads the guest's serial console itself and serves it.

QEMU listens on ``runtimeDir/serial.sock`` (the standard template's first serial port); the
runner connects to it while the initial ``ConfigureQemu`` is held, i.e. before ``cont``, so
no boot output is lost. It owns one reader task; every chunk goes, in this order and
synchronously, to

* the ring buffer (``bufferSize``, the newest bytes), for the replay and ``GET /console/tail``;
* ``dataDir/console.log``, rotated at ``logSize`` with ``logFiles`` old files (0: no file);
  a failing write is one WARNING, never the runner's end
  (:class:`~vmrunner.components.console_output.RotatingLog`);
* the runner's log, one INFO line per guest line on ``vmrunner.guest.console``, when
  ``forwardToLog`` is set;
* the attached session, if any.

It serves ``runtimeDir/console.sock`` (mode 0600) from ``VmPrepared`` on: one session at a
time (a second connection is told the holder's pid and closed,
:mod:`vmrunner.protocols.console`); a session gets a notice line, the last ``replay`` bytes,
then the live output, and its input goes to the guest. A session that does not read (more
than :data:`CLIENT_BUFFER` bytes queued for it) is dropped, so a client never stalls the
reader. When QEMU closes the serial port (it exited), sessions end and the socket goes.

Only active when the VM type has a chardev on ``serialSocket`` (``LaunchPlan.serial_socket``);
a VM type whose QEMU listens on ``consoleSocket`` itself keeps that behaviour. Its node
``/Runner/SerialConsole`` is live: every key applies to the next output.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from vmrunner.components.base import BusComponent
from vmrunner.components.console_output import LineForwarder, RingBuffer, RotatingLog
from vmrunner.config.model import MemorySize
from vmrunner.config.sizes import KIB, MIB
from vmrunner.core import (
    Channel,
    CompletionLock,
    Configurable,
    HandlerContext,
    Stopped,
    handler,
)
from vmrunner.events import ConfigureQemu, VmPrepared
from vmrunner.events.serial import SerialConsoleStatus, SerialConsoleTail
from vmrunner.events.status import StatusQuery
from vmrunner.proc.sockets import remove_stale_socket
from vmrunner.protocols.console import attached_notice, busy_notice

_log = logging.getLogger(__name__)

READ_SIZE = 65536
CLIENT_BUFFER = 1024 * KIB
"""Bytes queued for a session that does not read, after which it is dropped."""
CONNECT_TIMEOUT = 10.0
"""Seconds to reach QEMU's serial socket before ``cont`` goes ahead without it."""
HANDOVER = 0.2
"""Seconds a new connection waits for the attached session to end before it is refused."""
LOG_NAME = "console.log"


class SerialConsoleConfig(BaseModel):
    """``/Runner/SerialConsole``: what the runner keeps of the serial console."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True,
                              extra="ignore")

    buffer_size: Annotated[MemorySize, Field(ge=KIB, le=64 * MIB)] = 64 * KIB
    """The newest output kept in memory (the replay, `vmrunner console --tail`,
    `GET /console/tail`)."""
    replay: Annotated[MemorySize, Field(ge=0)] = 4 * KIB
    """Earlier output sent to `vmrunner console` when it attaches (at most `bufferSize`,
    from a line start); 0 = none."""
    log_size: Annotated[MemorySize, Field(ge=0)] = 1 * MIB
    """`dataDir/console.log` is rotated when it reaches this size; 0 = no log file."""
    log_files: Annotated[int, Field(ge=0, le=100)] = 3
    """Rotated files kept (`console.log.1` is the newest); 0 = none."""
    forward_to_log: bool = False
    """Also log each line the guest prints (logger `vmrunner.guest.console`, INFO; control
    characters escaped): the boot messages in `journalctl` or `kubectl logs`."""


class _Session:
    """The attached client: its pid (``SO_PEERCRED``), writer and input task."""

    def __init__(self, pid: int | None, writer: asyncio.StreamWriter) -> None:
        self.pid = pid
        self.writer = writer
        self.task: asyncio.Task[None] | None = None


def peer_pid(conn: socket.socket) -> int | None:
    """The pid of the process at the other end of a unix socket."""
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid: int = struct.unpack("3i", creds)[0]
    return pid or None


class SerialConsole(Configurable[SerialConsoleConfig], BusComponent):
    """Reads, keeps and serves the serial console (see the module docstring)."""

    config_model = SerialConsoleConfig

    def __init__(self, channel: Channel | None = None, name: str | None = None) -> None:
        super().__init__(channel, name)
        defaults = SerialConsoleConfig()
        self._ring = RingBuffer(defaults.buffer_size)
        self._file: RotatingLog | None = None
        self._forwarder: LineForwarder | None = None
        self._vm = ""
        self._serial: Path | None = None
        self._socket_path: Path | None = None
        self._listener: socket.socket | None = None
        self._qemu: asyncio.StreamWriter | None = None
        self._session: _Session | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def settings(self) -> SerialConsoleConfig:
        return self.config or SerialConsoleConfig()

    def on_config(self, config: SerialConsoleConfig, initial: bool) -> None:
        self._ring.resize(config.buffer_size)
        if self._file is not None:
            if config.log_size == 0:
                self._file.close()
            self._file.max_bytes, self._file.keep = config.log_size, config.log_files
        if config.forward_to_log and self._forwarder is None:
            self._forwarder = LineForwarder()
        elif not config.forward_to_log and self._forwarder is not None:
            self._forwarder.flush()
            self._forwarder = None

    # -- start: the socket for sessions, the log file ---------------------------------------

    @handler
    def on_prepared(self, event: VmPrepared) -> None:
        plan = event.plan
        if plan.serial_socket is None or self._serial is not None:
            return
        settings = self.settings
        self._serial = plan.serial_socket
        self._vm = plan.config.vm.name
        self._file = RotatingLog(plan.paths.data_dir / LOG_NAME, settings.log_size,
                                 settings.log_files)
        path = plan.paths.console_socket
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            remove_stale_socket(path)
            listener.bind(str(path))
            os.chmod(path, 0o600)
            listener.listen(4)
            listener.setblocking(False)
        except OSError as exc:
            listener.close()
            _log.error("serial console: cannot listen on %s: %s (vmrunner console will not "
                       "work; the output is still kept)", path, exc)
            return
        self._listener, self._socket_path = listener, path
        self._own(self._accept(listener), "serial-console-accept")

    def _own(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = self.spawn(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- QEMU's side ------------------------------------------------------------------------

    @handler
    def on_configure(self, event: ConfigureQemu, ctx: HandlerContext[None]) -> None:
        """The initial one is held until the serial socket is connected (before ``cont``)."""
        if event.initial and self._serial is not None and self._qemu is None:
            self._own(self._connect(self._serial, ctx.hold()), "serial-console-reader")

    async def _connect(self, path: Path, lock: CompletionLock) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                while True:
                    try:
                        reader, writer = await asyncio.open_unix_connection(str(path))
                        break
                    except (ConnectionRefusedError, FileNotFoundError):
                        await asyncio.sleep(0.01)
        except (TimeoutError, OSError) as exc:
            _log.warning("serial console: cannot connect to QEMU's %s (%s): its output is "
                         "not kept", path, exc or "timeout")
            lock.release()
            return
        self._qemu = writer
        lock.release()
        _log.debug("serial console: reading %s", path)
        try:
            while data := await reader.read(READ_SIZE):
                self._output(data)
        except ConnectionError:
            pass
        finally:
            self._closed_by_qemu()

    def _output(self, data: bytes) -> None:
        self._ring.append(data)
        if self._file is not None:
            self._file.write(data)
        if self._forwarder is not None:
            self._forwarder.feed(data)
        session = self._session
        if session is not None and session.writer.transport.is_closing():
            self._end_session(session)
        elif session is not None:
            session.writer.write(data)
            if session.writer.transport.get_write_buffer_size() > CLIENT_BUFFER:
                _log.warning("serial console: the session of pid %s does not read its output "
                             "(%d bytes queued): detached", session.pid, CLIENT_BUFFER)
                self._end_session(session, abort=True)

    def _closed_by_qemu(self) -> None:
        """QEMU closed the port (it exited): flush, end the session, stop serving."""
        if self._qemu is None:
            return
        self._qemu.close()
        self._qemu = None
        if self._forwarder is not None:
            self._forwarder.flush()
        if self._file is not None:
            self._file.close()
        _log.info("serial console closed by QEMU after %d bytes", self._ring.seen)
        self._stop_serving()

    def _stop_serving(self) -> None:
        if self._session is not None:
            self._end_session(self._session)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for task in list(self._tasks):
            if task.get_name() == "serial-console-accept":
                task.cancel()
        if self._socket_path is not None:
            with contextlib.suppress(OSError):
                self._socket_path.unlink()
            self._socket_path = None

    # -- sessions ---------------------------------------------------------------------------

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(listener)
            pid = peer_pid(conn)
            reader, writer = await asyncio.open_unix_connection(sock=conn)
            if self._session is not None and self._session.task is not None:
                # a client that detached just now and attaches again is not refused
                await asyncio.wait({self._session.task}, timeout=HANDOVER)
            if self._session is not None:
                _log.info("serial console: refused pid %s (pid %s is attached)", pid,
                          self._session.pid)
                writer.write(busy_notice(self._session.pid))
                writer.close()
                continue
            replay = self._ring.tail(min(self.settings.replay, self._ring.size))
            writer.write(attached_notice(self._vm, len(replay)) + replay)
            session = _Session(pid, writer)
            self._session = session
            session.task = self._own(self._serve(session, reader), "serial-console-session")
            _log.info("serial console: pid %s attached", pid)

    async def _serve(self, session: _Session, reader: asyncio.StreamReader) -> None:
        """The session's input to the guest, until it detaches."""
        try:
            while data := await reader.read(READ_SIZE):
                if self._qemu is not None:
                    self._qemu.write(data)
                    await self._qemu.drain()
        except ConnectionError:
            pass
        finally:
            if self._session is session:
                self._end_session(session)

    def _end_session(self, session: _Session, *, abort: bool = False) -> None:
        self._session = None
        if abort:
            session.writer.transport.abort()
        else:
            session.writer.close()
        if session.task is not None and session.task is not asyncio.current_task():
            session.task.cancel()
        _log.info("serial console: pid %s detached", session.pid)

    @handler
    def on_stopped(self, event: Stopped) -> None:
        self._stop_serving()
        if self._qemu is not None:
            self._qemu.close()
            self._qemu = None
        if self._file is not None:
            self._file.close()

    # -- queries ----------------------------------------------------------------------------

    @handler
    def on_status(self, event: StatusQuery) -> SerialConsoleStatus | None:
        if self._serial is None:
            return None
        log = self._file
        return SerialConsoleStatus(
            connected=self._qemu is not None, bytes_seen=self._ring.seen,
            log_file=str(log.path) if log is not None and log.enabled else None,
            client_pid=None if self._session is None else self._session.pid)

    @handler
    def on_tail(self, event: SerialConsoleTail) -> bytes | None:
        return None if self._serial is None else self._ring.tail(event.size)
