"""A real QEMU (no guest: ``-S``, nothing to boot) with its QMP socket, for the QMP tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from vmrunner.proc import ChildProcess, spawn
from vmrunner.protocols.qmp import QmpClient

QEMU = "qemu-system-x86_64"

StartQemu = Callable[..., Coroutine[Any, Any, tuple[ChildProcess, Path]]]


def qemu_argv(qmp: Path, *extra: str) -> list[str]:
    return [QEMU, "-S", "-nodefaults", "-no-user-config", "-display", "none",
            "-machine", "q35", "-accel", "tcg",
            "-qmp", f"unix:{qmp},server=on,wait=off", *extra]


@pytest.fixture
async def start_qemu(tmp_path: Path) -> AsyncIterator[StartQemu]:
    """Start QEMU paused; every QEMU started is killed at teardown."""
    started: list[ChildProcess] = []

    async def start(*extra: str) -> tuple[ChildProcess, Path]:
        sock = tmp_path / f"qmp{len(started)}.sock"
        proc = await spawn("qemu", qemu_argv(sock, *extra))
        started.append(proc)
        return proc, sock

    yield start
    for proc in started:
        await proc.kill()


@pytest.fixture
async def qmp(start_qemu: StartQemu) -> AsyncIterator[tuple[QmpClient, ChildProcess]]:
    """A connected client and its QEMU."""
    proc, sock = await start_qemu()
    client = QmpClient("test", connect_timeout=10.0, command_timeout=10.0)
    await client.connect(sock, process=proc)
    yield client, proc
    await client.disconnect()
