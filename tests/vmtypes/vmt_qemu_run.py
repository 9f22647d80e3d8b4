"""Test helper: run a rendered QEMU command line under -S and talk QMP to it (real QEMU)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from asyncinotify import Inotify, Mask
from qemu.qmp import QMPClient


async def wait_created(path: Path, process: asyncio.subprocess.Process) -> None:
    """Wait until ``path`` exists (inotify on its directory), failing if QEMU exits first."""
    with Inotify() as inotify:
        inotify.add_watch(path.parent, Mask.CREATE)
        if path.exists():  # noqa: ASYNC240 - one stat, right after the watch is set
            return
        waiter = asyncio.ensure_future(process.wait())
        try:
            async for event in inotify:
                if event.name is not None and event.name.name == path.name:
                    return
                if waiter.done():
                    break
        finally:
            waiter.cancel()


@contextlib.asynccontextmanager
async def running_qemu(
    argv: Sequence[str], monitor: Path, timeout: float = 20.0  # noqa: ASYNC109
) -> AsyncIterator[tuple[asyncio.subprocess.Process, QMPClient]]:
    """Start QEMU, connect QMP once the monitor socket appears; kill QEMU on exit."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    qmp = QMPClient("test")
    try:
        created = asyncio.ensure_future(wait_created(monitor, process))
        exited = asyncio.ensure_future(process.wait())
        await asyncio.wait({created, exited}, timeout=timeout,
                           return_when=asyncio.FIRST_COMPLETED)
        if not created.done():
            created.cancel()
            exited.cancel()
            stderr = await process.stderr.read() if exited.done() and process.stderr else b""
            raise RuntimeError(f"QEMU did not create its monitor socket: {stderr.decode()}")
        exited.cancel()
        await qmp.connect(str(monitor))
        yield process, qmp
    finally:
        with contextlib.suppress(Exception):
            await qmp.disconnect()
        if process.returncode is None:
            process.kill()
        await process.wait()


async def qemu_error(argv: Sequence[str], timeout: float = 20.0) -> tuple[int, str]:  # noqa: ASYNC109
    """Run QEMU expecting it to fail at start; (exit code, stderr)."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stderr.decode()
