"""Fixtures for the fault campaign: a short work directory checked for leftover processes,
runner processes killed at the end, the accelerator's name."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.runnerproc import RunnerProcess, processes_using, short_dir


@pytest.fixture
def base() -> Iterator[Path]:
    """A short directory under /tmp (socket paths); no process may mention it afterwards."""
    path = short_dir("vf")
    yield path
    leftovers = processes_using(path)
    shutil.rmtree(path, ignore_errors=True)
    assert not leftovers, f"processes left behind: {leftovers}"


@pytest.fixture
def accel_name(accel: AccelVerdict) -> str:
    return str(accel.accel)


@pytest_asyncio.fixture
async def runners() -> AsyncIterator[list[RunnerProcess]]:
    """Runner processes a test starts; killed at the end if still running."""
    started: list[RunnerProcess] = []
    yield started
    for runner in started:
        await runner.close()
