"""Fixtures for the fault campaign: a short work directory checked for leftover processes
(`runners` and `accel_name` are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vmrunner.testing.runnerproc import scratch_dir


@pytest.fixture
def base() -> Iterator[Path]:
    """A short directory under /tmp (socket paths); no process may mention it afterwards."""
    with scratch_dir("vf", watched=None) as path:
        yield path
