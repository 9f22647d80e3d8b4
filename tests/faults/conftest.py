"""Fixtures for the fault campaign: a short work directory checked for leftover processes
(`runners` and `accel_name` are in tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vmrunner.testing.runnerproc import scratch_dir


@pytest.fixture
def base() -> Iterator[Path]:
    """A short directory under /tmp (socket paths); no process may mention it afterwards."""
    with scratch_dir("vf", watched=None) as path:
        yield path


@pytest.fixture
def tmpfs(base: Path) -> Iterator[Callable[[str], Path]]:
    """``tmpfs(options)`` mounts a real tmpfs (``"size=16m"``, ``"ro,size=1m"``) at
    ``base/fs`` and returns that path; unmounted afterwards. Needs root (skipped otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    point = base / "fs"

    def mount(options: str) -> Path:
        point.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                       check=True)
        return point

    yield mount
    if point.exists():
        subprocess.run(["umount", "-l", str(point)], check=False, capture_output=True)
