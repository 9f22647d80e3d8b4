"""Client for the QEMU guest agent (qemu-ga) on its virtio-serial unix socket.

The protocol looks like QMP but differs where it matters:

* there is no greeting and no capabilities negotiation;
* the host end of a virtio-serial port survives agent restarts, so stale replies or a
  half-written request can sit in the channel: every session starts with
  ``guest-sync-delimited`` (a 0xFF byte resets the agent's parser, its reply is prefixed
  by 0xFF, everything before it is discarded, and a random id proves the reply is ours);
* ``guest-shutdown`` does not reply when it succeeds.

Why not ``qemu.qmp`` (which can skip the greeting): its JSON reader cannot skip the 0xFF
delimiter or stale bytes, so resynchronisation would tear the connection down.

Every exchange has a timeout; after a timeout or cancellation the channel is re-synced
before the next command. Requests carry an ``id`` and replies with another id are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

TRAFFIC_LOGGER = "vmrunner.protocols.qga.traffic"
_DELIMITER = b"\xff"
_LINE_LIMIT = 4 * 1024 * 1024

ShutdownMode = Literal["powerdown", "halt", "reboot"]
UNSUPPORTED_CLASSES = frozenset({"CommandNotFound", "CommandDisabled"})
"""Error classes meaning "this agent does not do that" (not worth asking again)."""


class QgaError(Exception):
    """Base class of the guest agent client's errors."""


class QgaConnectError(QgaError):
    """The agent's host socket could not be opened."""


class QgaDisconnected(QgaError):
    """Not connected, or QEMU closed the socket."""


class QgaTimeout(QgaError):
    """The agent did not answer in time (not running yet, or hung)."""


class QgaExecuteError(QgaError):
    """The agent answered a command with an error."""

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        super().__init__(f"{command}: {error_class}: {desc}")
        self.command = command
        self.error_class = error_class
        self.desc = desc

    @property
    def unsupported(self) -> bool:
        """The agent has no such command, or it is disabled (qemu-ga answers both, and a
        command blocked with ``--block-rpcs``, with ``CommandNotFound``)."""
        return self.error_class in UNSUPPORTED_CLASSES


class GuestOsInfo(msgspec.Struct, frozen=True, kw_only=True):
    """``guest-get-osinfo``: the guest's os-release and uname (absent fields are "")."""

    id: str
    name: str
    pretty_name: str
    version: str
    version_id: str
    kernel_release: str
    kernel_version: str
    machine: str
    raw: Mapping[str, Any]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GuestOsInfo:
        """Build from the command's ``return`` object."""
        def get(key: str) -> str:
            return str(data.get(key, ""))
        return cls(id=get("id"), name=get("name"), pretty_name=get("pretty-name"),
                   version=get("version"), version_id=get("version-id"),
                   kernel_release=get("kernel-release"),
                   kernel_version=get("kernel-version"), machine=get("machine"), raw=data)


class GuestAgent:
    """One connection to qemu-ga; ``connect`` again after ``close`` or a lost connection.

    ``timeout`` bounds each command's reply, ``sync_timeout`` the resynchronisation (a
    guest that is still booting simply does not answer: :class:`QgaTimeout`).
    """

    def __init__(self, name: str = "qga", *, timeout: float = 5.0,
                 sync_timeout: float = 5.0) -> None:
        self.name = name
        self.timeout = timeout
        self.sync_timeout = sync_timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()
        self._synced = False
        self._next_id = 0
        self._token = secrets.token_hex(4)  # request ids are unique across sessions
        self._traffic = logging.getLogger(TRAFFIC_LOGGER)

    @property
    def connected(self) -> bool:
        """True while the socket is open (says nothing about the agent inside)."""
        return self._writer is not None and not self._writer.is_closing()

    @property
    def synced(self) -> bool:
        """True when the last exchange left the channel in a known state."""
        return self._synced

    async def connect(self, path: str | os.PathLike[str]) -> None:
        """Open the agent's host socket. Does not talk to the agent yet (see :meth:`sync`).

        :raise QgaConnectError: socket missing or refused.
        """
        await self.close()
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(
                os.fspath(path), limit=_LINE_LIMIT)
        except OSError as e:
            raise QgaConnectError(f"{self.name}: cannot connect to {os.fspath(path)}: {e}") from e
        self._synced = False

    async def close(self) -> None:
        """Close the socket; harmless when not connected."""
        writer, self._reader, self._writer = self._writer, None, None
        self._synced = False
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def sync(self) -> None:
        """Resynchronise with ``guest-sync-delimited`` (done automatically when needed).

        :raise QgaTimeout: the agent did not answer within ``sync_timeout``.
        :raise QgaDisconnected: not connected or the socket closed.
        """
        async with self._lock:
            await self._sync_locked()

    async def _sync_locked(self) -> None:
        self._synced = False
        sync_id = secrets.randbelow(2**31 - 1) + 1
        await self._send({"execute": "guest-sync-delimited", "arguments": {"id": sync_id}},
                         prefix=_DELIMITER)
        try:
            async with asyncio.timeout(self.sync_timeout):
                while True:
                    line = await self._readline()
                    cut = line.rfind(_DELIMITER)
                    if cut >= 0:
                        line = line[cut + 1:]
                    reply = _parse(line)
                    if reply is not None and reply.get("return") == sync_id:
                        break
        except TimeoutError as e:
            raise QgaTimeout(
                f"{self.name}: no answer to guest-sync-delimited within {self.sync_timeout} s"
                " (agent not running?)") from e
        self._synced = True

    async def execute(self, command: str, arguments: Mapping[str, Any] | None = None, *,
                      timeout: float | None = None) -> Any:  # noqa: ASYNC109 - QgaTimeout
        """Run an agent command and return its ``return`` value. ``timeout`` (s), when
        given, bounds the whole exchange instead of the client's ``timeout`` for the reply:
        waiting for another command, the resync if one is due, the reply (a hung agent costs
        at most that long; a command known to be slow, such as a freeze, may take longer
        than the client's default).

        :raise QgaExecuteError: the agent answered with an error.
        :raise QgaTimeout: no reply within ``timeout`` (or no sync).
        :raise QgaDisconnected: not connected or the socket closed.
        """
        if timeout is None:
            return await self._execute(command, arguments, self.timeout)
        try:
            async with asyncio.timeout(timeout):
                return await self._execute(command, arguments, None)
        except TimeoutError as e:
            self._synced = False
            raise QgaTimeout(f"{self.name}: no reply to {command} within {timeout} s") from e

    async def _execute(self, command: str, arguments: Mapping[str, Any] | None,
                       reply_timeout: float | None) -> Any:
        """``reply_timeout`` bounds the reply alone (``None``: the caller bounds it all)."""
        async with self._lock:
            if not self._synced:
                await self._sync_locked()
            request_id = self._request_id()
            message: dict[str, Any] = {"execute": command, "id": request_id}
            if arguments:
                message["arguments"] = dict(arguments)
            await self._send(message)
            try:
                async with asyncio.timeout(reply_timeout):
                    return await self._reply(command, request_id)
            except QgaExecuteError:
                raise
            except TimeoutError as e:
                self._synced = False
                raise QgaTimeout(
                    f"{self.name}: no reply to {command} within {reply_timeout} s") from e
            except BaseException:
                self._synced = False
                raise

    async def ping(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - QgaTimeout
        """``guest-ping``: succeeds when the agent answers (within ``timeout`` s)."""
        await self.execute("guest-ping", timeout=timeout)

    async def info(self) -> dict[str, Any]:
        """``guest-info``: the agent's ``version`` and ``supported_commands``."""
        result: dict[str, Any] = await self.execute("guest-info")
        return result

    async def get_osinfo(self) -> GuestOsInfo:
        """``guest-get-osinfo``: what the guest runs."""
        return GuestOsInfo.from_json(await self.execute("guest-get-osinfo"))

    async def shutdown(self, mode: ShutdownMode = "powerdown", *,
                       reply_grace: float = 1.0) -> None:
        """Ask the guest to shut down. qemu-ga does not reply when this succeeds, so
        silence (or QEMU closing the socket) for ``reply_grace`` s counts as accepted;
        only an error reply raises. Confirm by QEMU's ``SHUTDOWN`` event or exit.

        :raise QgaExecuteError: the agent refused (e.g. the command is disabled).
        :raise QgaTimeout: the channel could not be synced first.
        """
        async with self._lock:
            if not self._synced:
                await self._sync_locked()
            request_id = self._request_id()
            self._synced = False  # a late reply may still arrive
            await self._send({"execute": "guest-shutdown", "arguments": {"mode": mode},
                              "id": request_id})
            try:
                async with asyncio.timeout(reply_grace):
                    await self._reply("guest-shutdown", request_id)
            except (TimeoutError, QgaDisconnected):
                pass

    def _request_id(self) -> str:
        self._next_id += 1
        return f"{self.name}-{self._token}-{self._next_id}"

    async def _send(self, message: Mapping[str, Any], prefix: bytes = b"") -> None:
        if self._writer is None or self._writer.is_closing():
            raise QgaDisconnected(f"{self.name}: not connected")
        data = json.dumps(message, separators=(",", ":"))
        self._traffic.debug("%s --> %s%s", self.name, "\\xff" if prefix else "", data)
        try:
            self._writer.write(prefix + data.encode() + b"\n")
            await self._writer.drain()
        except OSError as e:
            raise QgaDisconnected(f"{self.name}: socket closed: {e}") from e

    async def _readline(self) -> bytes:
        if self._reader is None:
            raise QgaDisconnected(f"{self.name}: not connected")
        try:
            line = await self._reader.readline()
        except (OSError, ValueError) as e:
            raise QgaDisconnected(f"{self.name}: socket error: {e}") from e
        if not line:
            raise QgaDisconnected(f"{self.name}: the socket was closed (QEMU gone?)")
        self._traffic.debug("%s <-- %r", self.name, line.rstrip(b"\n"))
        return line

    async def _reply(self, command: str, request_id: str) -> Any:
        while True:
            reply = _parse(await self._readline())
            if reply is None or reply.get("id") != request_id:
                continue  # stale or foreign: dropped
            if "error" in reply:
                error = reply["error"] if isinstance(reply["error"], Mapping) else {}
                raise QgaExecuteError(command, str(error.get("class", "?")),
                                      str(error.get("desc", reply["error"])))
            return reply.get("return")


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
