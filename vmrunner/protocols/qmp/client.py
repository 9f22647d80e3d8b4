"""A thin asyncio QMP client over ``qemu.qmp.QMPClient`` with typed commands and events.

Why ``qemu.qmp``: it is the QEMU project's own client and already does greeting,
negotiation, id matching and interleaved events correctly (see docs in
``reference/peers.md`` §5). This adapter adds what the runner needs on top: connect with a
timeout and retries, typed commands/events/errors, one traffic logger
(``vmrunner.protocols.qmp.traffic``, DEBUG, passwords masked) and a disconnect that tolerates the
``EOFError`` qemu.qmp re-raises after QEMU has gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

from qemu.qmp import (
    ConnectError,
    EventListener,
    ExecInterruptedError,
    ExecuteError,
    Message,
    QMPClient,
    QMPError,
    Runstate,
    StateError,
)

from vmrunner.events.qmp import QmpEvent
from vmrunner.proc.child import ChildProcess
from vmrunner.proc.errors import ProcessExitedError
from vmrunner.proc.sockets import wait_for_socket
from vmrunner.protocols.qmp.commands import QmpCommand
from vmrunner.protocols.qmp.errors import (
    QmpConnectError,
    QmpDisconnected,
    QmpError,
    QmpExecuteError,
    QmpTimeout,
)
from vmrunner.protocols.qmp.wire import event_timestamp, parse_event

TRAFFIC_LOGGER = "vmrunner.protocols.qmp.traffic"
_MASKED_ARGUMENTS = frozenset({"password"})
_RETRY_FIRST = 0.02
_RETRY_MAX = 0.5


def _masked(msg: Mapping[str, Any]) -> str:
    args = msg.get("arguments")
    if isinstance(args, Mapping) and _MASKED_ARGUMENTS & args.keys():
        msg = {**msg, "arguments": {
            k: ("***" if k in _MASKED_ARGUMENTS else v) for k, v in args.items()}}
    return json.dumps(dict(msg), separators=(",", ":"))


class _Protocol(QMPClient):
    """QMPClient whose traffic goes to our logger (masked) instead of qemu.qmp's (raw)."""

    def __init__(self, name: str, traffic: logging.Logger) -> None:
        super().__init__(name)
        self._traffic = traffic

    def _cb_outbound(self, msg: Message) -> Message:
        if self._traffic.isEnabledFor(logging.DEBUG):
            self._traffic.debug("%s --> %s", self.name, _masked(msg))
        return msg

    def _cb_inbound(self, msg: Message) -> Message:
        if self._traffic.isEnabledFor(logging.DEBUG):
            self._traffic.debug("%s <-- %s", self.name, _masked(msg))
        return msg


class _TypedListener(EventListener):
    """Turns every event into its typed form on our queue (keeps no history)."""

    def __init__(self, queue: asyncio.Queue[QmpEvent | None]) -> None:
        super().__init__()
        self._out = queue

    async def put(self, event: Message) -> None:
        data = cast("Mapping[str, Any] | None", event.get("data"))
        stamp = cast("Mapping[str, Any] | None", event.get("timestamp"))
        await self._out.put(parse_event(str(event["event"]), data, event_timestamp(stamp)))


class QmpClient:
    """One QMP connection to one QEMU. Reusable: ``connect`` again after ``disconnect``.

    Timeouts are given here, not per call: ``connect_timeout`` covers waiting for the socket
    and the greeting/negotiation; ``command_timeout`` (None = none) covers each command.
    """

    def __init__(
        self, name: str = "qemu", *, connect_timeout: float = 10.0,
        command_timeout: float | None = 30.0,
    ) -> None:
        self.name = name
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._qmp = _Protocol(name, logging.getLogger(TRAFFIC_LOGGER))
        # qemu.qmp's default listener would keep every event forever in its history.
        self._qmp.events.event_filter = lambda _event: False
        self._queue: asyncio.Queue[QmpEvent | None] = asyncio.Queue()
        self._listener: _TypedListener | None = None
        self._disconnected = asyncio.Event()
        self._disconnected.set()
        self._watch: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """True while the session is up."""
        return bool(self._qmp.runstate == Runstate.RUNNING)

    @property
    def qemu_version(self) -> tuple[int, int, int] | None:
        """QEMU's version from the greeting, once connected."""
        greeting = self._qmp.greeting
        if greeting is None:
            return None
        v = cast("Mapping[str, Any]", greeting.QMP.version["qemu"])
        return int(v["major"]), int(v["minor"]), int(v["micro"])

    async def connect(
        self, path: str | os.PathLike[str], *, process: ChildProcess | None = None
    ) -> None:
        """Wait for the socket ``path`` (inotify), connect, read the greeting, negotiate.

        Connection refusals are retried with backoff until ``connect_timeout``.

        :param process: QEMU's process; if it exits meanwhile, fail at once with its stderr.
        :raise QmpConnectError: on timeout, on QEMU's exit, or when already connected.
        """
        if self._qmp.runstate != Runstate.IDLE:
            raise QmpConnectError(f"{self.name}: already connected ({self._qmp.runstate.name})")
        last: Exception | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                await wait_for_socket(path, process=process)
                delay = _RETRY_FIRST
                while True:
                    try:
                        await self._qmp.connect(os.fspath(path))
                        break
                    except ConnectError as e:
                        last = e
                    if process is not None and not process.running:
                        status = await process.wait()
                        raise ProcessExitedError(process.name, str(status),
                                                 process.stderr_excerpt())
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _RETRY_MAX)
        except TimeoutError as e:
            why = f": {last}" if last else ""
            raise QmpConnectError(
                f"{self.name}: no QMP session on {os.fspath(path)} within "
                f"{self.connect_timeout} s{why}") from e
        except (ProcessExitedError, OSError) as e:
            raise QmpConnectError(f"{self.name}: cannot connect to {os.fspath(path)}: {e}") from e
        self._queue = asyncio.Queue()
        self._listener = _TypedListener(self._queue)
        self._qmp.register_listener(self._listener)
        self._disconnected = asyncio.Event()
        self._watch = asyncio.create_task(self._watch_runstate(), name=f"{self.name}-qmp-watch")

    async def _watch_runstate(self) -> None:
        while self._qmp.runstate == Runstate.RUNNING:
            await self._qmp.runstate_changed()
        self._mark_disconnected()

    def _mark_disconnected(self) -> None:
        if not self._disconnected.is_set():
            self._disconnected.set()
            self._queue.put_nowait(None)  # ends events()

    async def execute(self, command: QmpCommand) -> Any:
        """Run ``command``; return QMP's ``return`` value (usually a dict or a list).

        :raise QmpExecuteError: QEMU answered with an error.
        :raise QmpDisconnected: not connected, or the connection ended before the reply
            (expected for :class:`~vmrunner.protocols.qmp.commands.Quit` if QEMU is fast).
        :raise QmpTimeout: no reply within ``command_timeout``.
        """
        args = command.arguments()
        try:
            async with asyncio.timeout(self.command_timeout):
                return await self._qmp.execute(command.name, args or None)
        except ExecuteError as e:
            raise QmpExecuteError(command.name, str(e.error_class), str(e)) from e
        except ExecInterruptedError as e:
            raise QmpDisconnected(
                f"{self.name}: connection lost before the reply to {command.name}") from e
        except StateError as e:
            raise QmpDisconnected(
                f"{self.name}: cannot send {command.name}: not connected "
                f"({self._qmp.runstate.name})") from e
        except TimeoutError as e:
            raise QmpTimeout(
                f"{self.name}: no reply to {command.name} within {self.command_timeout} s"
            ) from e

    async def events(self) -> AsyncIterator[QmpEvent]:
        """Yield the typed events of the current connection, in order; end when it ends.

        Events are queued from the moment the session is established, so none are lost
        before iteration starts. One consumer at a time.
        """
        while True:
            event = await self._queue.get()
            if event is None:
                return
            yield event

    async def wait_disconnected(self) -> None:
        """Return once the connection is gone (QEMU exited, or :meth:`disconnect`)."""
        await self._disconnected.wait()

    async def disconnect(self) -> None:
        """Close the connection; harmless if QEMU is already gone or never connected.

        Swallows the ``EOFError``/``OSError`` qemu.qmp re-raises when the peer hung up
        first; never swallows cancellation.
        """
        try:
            if self._qmp.runstate != Runstate.IDLE:
                await self._qmp.disconnect()
        except EOFError:
            logging.getLogger(TRAFFIC_LOGGER).debug("%s: QEMU closed the connection", self.name)
        except (OSError, QMPError) as e:
            logging.getLogger(__name__).debug("%s: disconnect: %r", self.name, e)
        finally:
            if self._listener is not None:
                with contextlib.suppress(QMPError, ValueError):
                    self._qmp.remove_listener(self._listener)
                self._listener = None
            if self._watch is not None:
                self._watch.cancel()
                await asyncio.wait({self._watch})
                self._watch = None
            self._mark_disconnected()


__all__ = ["TRAFFIC_LOGGER", "QmpClient", "QmpError"]
