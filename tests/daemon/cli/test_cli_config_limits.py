"""`vmrunner check` and `vmrunner run` on files that must not be read as configurations: a FIFO
(would block), a symlink to /dev/zero (unbounded), billion laughs (unbounded expansion).

Each exits 2 quickly with one clear line naming the file (real subprocesses).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

BAD = Path(__file__).resolve().parents[2] / "data" / "bad-configs"


def vmrunner(*args: str) -> tuple[int, str, float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "vmrunner", *args], capture_output=True,
                            text=True, timeout=30, check=False)
    return result.returncode, result.stdout + result.stderr, time.monotonic() - started


@pytest.mark.parametrize("command", ["check", "run"])
def test_a_fifo_is_refused_without_blocking(tmp_path: Path, command: str) -> None:
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    code, output, elapsed = vmrunner(command, "-c", str(fifo))
    assert code == 2, output
    assert f"{fifo}: not a regular file (a FIFO)" in output
    assert "Traceback" not in output
    assert elapsed < 10


def test_a_symlink_to_dev_zero_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "config.yaml"
    link.symlink_to("/dev/zero")
    code, output, elapsed = vmrunner("check", "-c", str(link))
    assert code == 2, output
    assert f"{link}: not a regular file (a character device)" in output
    assert elapsed < 10


@pytest.mark.parametrize("name, message", [
    ("billion-laughs", "billion-laughs.yaml:10: aliases expand to more than 100000 nodes"),
    ("nested-too-deep", "nested-too-deep.yaml:4: nested deeper than 64 levels"),
])
def test_run_refuses_unbounded_documents_like_check(name: str, message: str) -> None:
    code, output, elapsed = vmrunner("run", "-c", str(BAD / f"{name}.yaml"))
    assert code == 2, output
    assert message in output
    assert "internal error" not in output and "Traceback" not in output
    assert elapsed < 10
