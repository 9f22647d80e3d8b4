"""A qemu-guest-agent client for the runner (the host end of the virtio-serial port).

qemu-ga's protocol looks like QMP but is not: no greeting, no ids, replies strictly in
order, and stale bytes may be left in the channel by an earlier connection. So every
session starts with ``guest-sync-delimited``: the agent answers with ``0xFF`` followed by
the JSON reply carrying our random id; everything before it is discarded.
``guest-shutdown`` never replies on success (the guest goes away).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from pathlib import Path
from typing import Any

_log = logging.getLogger("vmrunner.qga")
_traffic = logging.getLogger("vmrunner.qga.traffic")
_DELIMITER = b"\xff"


class QgaError(Exception):
    """qemu-ga answered with an error, closed the channel or did not answer in time."""


class QgaClient:
    """One session with qemu-ga; create with :meth:`connect`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 timeout: float) -> None:
        self._reader = reader
        self._writer = writer
        self.timeout = timeout
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(cls, path: Path, *, timeout: float = 5.0,  # noqa: ASYNC109
                      attempts: int = 3) -> QgaClient:
        """Connect to ``path`` and synchronise (``guest-sync-delimited``, retried)."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(path)), timeout)
        except (OSError, TimeoutError) as exc:
            raise QgaError(f"cannot connect to {path}: {exc}") from exc
        client = cls(reader, writer, timeout)
        for attempt in range(1, attempts + 1):
            try:
                await client.sync()
                return client
            except TimeoutError:
                _log.debug("guest-sync attempt %d timed out", attempt)
            except QgaError:
                await client.close()
                raise
        await client.close()
        raise QgaError(f"qemu-ga did not answer guest-sync-delimited ({attempts} attempts)")

    async def _send(self, message: dict[str, Any], prefix: bytes = b"") -> None:
        data = json.dumps(message, separators=(",", ":"))
        _traffic.debug("qga --> %s", data)
        try:
            self._writer.write(prefix + data.encode() + b"\n")
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise QgaError(f"qemu-ga channel: {exc}") from exc

    async def _readline(self) -> bytes:
        line = await self._reader.readline()
        if not line:
            raise QgaError("qemu-ga channel closed")
        _traffic.debug("qga <-- %r", line)
        return line

    async def sync(self) -> None:
        """Discard stale data up to the reply to a fresh ``guest-sync-delimited``.

        :raise TimeoutError: no matching reply within ``timeout``.
        """
        token = random.randrange(1, 2**31)
        async with self._lock, asyncio.timeout(self.timeout):
            await self._send({"execute": "guest-sync-delimited", "arguments": {"id": token}},
                             _DELIMITER)
            while True:
                text = (await self._readline()).rsplit(_DELIMITER, 1)[-1].strip()
                with contextlib.suppress(ValueError):
                    reply = json.loads(text)
                    if isinstance(reply, dict) and reply.get("return") == token:
                        return

    async def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run ``command`` and return its ``return`` value."""
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        async with self._lock:
            await self._send(message)
            try:
                async with asyncio.timeout(self.timeout):
                    line = await self._readline()
            except TimeoutError as exc:
                raise QgaError(f"{command}: no reply within {self.timeout:g} s") from exc
        try:
            reply = json.loads(line)
        except ValueError as exc:
            raise QgaError(f"{command}: not JSON: {line!r}") from exc
        if "error" in reply:
            error = reply["error"]
            raise QgaError(f"{command}: {error.get('class')}: {error.get('desc')}")
        return reply.get("return")

    async def send_only(self, command: str, arguments: dict[str, Any] | None = None) -> None:
        """Send ``command`` without waiting for a reply (``guest-shutdown``)."""
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        async with self._lock:
            await self._send(message)

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
