"""Minimal qemu-guest-agent client (host end of the virtio-serial port).

qemu-ga sends no greeting, so ``qemu.qmp.QMPClient`` does not fit; this speaks the
line protocol directly.  Call :meth:`QgaClient.sync` first to flush stale data.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any


class QgaError(RuntimeError):
    """qemu-ga answered with an error."""


class QgaClient:
    """One connection to qemu-ga's chardev socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._ids = itertools.count(int(time.time()) % 2**20)

    @classmethod
    async def connect(cls, path: Path) -> QgaClient:
        reader, writer = await asyncio.open_unix_connection(str(path))
        return cls(reader, writer)

    async def _send(self, msg: dict[str, Any], prefix: bytes = b"") -> None:
        self._writer.write(prefix + json.dumps(msg).encode() + b"\n")
        await self._writer.drain()

    async def sync(self) -> None:
        """``guest-sync-delimited``: skip everything up to our own answer."""
        sid = next(self._ids)
        await self._send({"execute": "guest-sync-delimited", "arguments": {"id": sid}}, b"\xff")
        while True:
            line = await self._reader.readline()
            if not line:
                raise EOFError("qemu-ga channel closed")
            text = line.split(b"\xff")[-1].strip()
            try:
                if text and json.loads(text).get("return") == sid:
                    return
            except ValueError:
                continue

    async def execute(self, command: str, **arguments: Any) -> Any:
        """Run a command and return its ``return`` value."""
        msg: dict[str, Any] = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        await self._send(msg)
        line = await self._reader.readline()
        if not line:
            raise EOFError("qemu-ga channel closed")
        reply = json.loads(line)
        if "error" in reply:
            raise QgaError(f"{command}: {reply['error'].get('desc')}")
        return reply["return"]

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()
