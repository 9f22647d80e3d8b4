"""Screenshotter: ``vmrunner screenshot -o FILE`` (``POST /screenshot``).

QMP ``screendump`` with ``format: png`` (QEMU 7.1 and later) writes the display's picture
to a private file in the runtime directory (QEMU runs as the runner's user; the caller may
not); the runner reads it, removes it and returns the bytes, which the API streams back.

Invariants: one screenshot at a time; the file never outlives the request; the answer is a
PNG whose size is read from its header, or an error (QEMU's, e.g. a VM without a display).
Each ends with a :class:`~vmrunner.events.day2.ScreenshotTaken` (without the picture).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
from pathlib import Path

from vmrunner.components.base import BusComponent
from vmrunner.core import Channel, handler
from vmrunner.events import ExecuteQmp, Outcome, RunnerStateChanged, RunState, VmPrepared
from vmrunner.events.day2 import Screenshot, ScreenshotRequested, ScreenshotTaken
from vmrunner.protocols.qmp import commands

_log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FILE_NAME = "screenshot.png"


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, or None if ``data`` is no PNG."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _read_private(path: Path) -> bytes:
    """The file QEMU wrote (made private first: QEMU creates it by its umask)."""
    os.chmod(path, 0o600)
    return path.read_bytes()


class Screenshotter(BusComponent):
    """Takes screenshots of the display on request (see the module docstring)."""

    def __init__(self, channel: Channel | None = None, name: str | None = None) -> None:
        super().__init__(channel, name)
        self._state = RunState.STARTING
        self._file: Path | None = None
        self._one_at_a_time = asyncio.Lock()

    @handler
    def on_state(self, event: RunnerStateChanged) -> None:
        self._state = event.new

    @handler
    def on_prepared(self, event: VmPrepared) -> None:
        self._file = event.plan.paths.runtime_dir / FILE_NAME

    def _failed(self, detail: str) -> Screenshot:
        _log.warning("screenshot failed: %s", detail)
        self.fire(ScreenshotTaken(outcome=Outcome.FAILED, detail=detail))
        return Screenshot(error=detail)

    @handler
    async def on_request(self, event: ScreenshotRequested) -> Screenshot:
        path = self._file
        if not self._state.vm_active or path is None:
            detail = f"the VM is {self._state.value}, not running"
            self.fire(ScreenshotTaken(outcome=Outcome.REJECTED, detail=detail))
            return Screenshot(error=detail)
        async with self._one_at_a_time:
            try:
                return await self._take(path)
            finally:
                _remove(path)

    async def _take(self, path: Path) -> Screenshot:
        _remove(path)  # a leftover of a runner killed meanwhile
        reply = await self.call(ExecuteQmp(command=commands.Screendump(filename=str(path))))
        if reply is None or reply.error is not None:
            return self._failed(f"QEMU: {'no monitor answered' if reply is None else reply.error}")
        try:
            data = _read_private(path)
        except OSError as exc:
            return self._failed(f"{path}: {exc.strerror}")
        size = png_size(data)
        if size is None:
            return self._failed("QEMU did not write a PNG")
        width, height = size
        _log.info("screenshot taken: %dx%d, %d bytes", width, height, len(data))
        self.fire(ScreenshotTaken(outcome=Outcome.APPLIED, width=width, height=height,
                                  size=len(data)))
        return Screenshot(data=data, width=width, height=height)
