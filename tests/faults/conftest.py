"""Fixtures for the fault campaign: a short work directory checked for leftover processes
(`runners` and `accel_name` are in tests/conftest.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmrunner.testing.runnerproc import processes_using, short_dir


@pytest.fixture
def base() -> Iterator[Path]:
    """A short directory under /tmp (socket paths); no process may mention it afterwards."""
    path = short_dir("vf")
    yield path
    leftovers = processes_using(path)
    shutil.rmtree(path, ignore_errors=True)
    assert not leftovers, f"processes left behind: {leftovers}"
