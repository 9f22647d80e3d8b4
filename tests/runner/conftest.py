"""Fixtures for the runner's end-to-end tests: a short work directory (`runners` and
`accel_name` are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vmrunner.testing.runnerproc import scratch_dir


@pytest.fixture
def base() -> Iterator[Path]:
    """A short directory under /tmp (socket paths), removed afterwards."""
    with scratch_dir() as path:
        yield path
