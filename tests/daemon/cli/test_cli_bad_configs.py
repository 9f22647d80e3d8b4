"""`vmrunner check` on every file in tests/data/bad-configs (real subprocesses).

Each file names the key path (or file:line) its message must contain in a header line
``# expect: <text>``; an optional ``# args: ...`` line adds command-line options.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

BAD = Path(__file__).resolve().parents[2] / "data" / "bad-configs"
FILES = sorted(BAD.glob("*.yaml"))


def header(file: Path, key: str) -> str | None:
    for line in file.read_text(errors="replace").splitlines():  # not-utf8.yaml
        if line.startswith(f"# {key}: "):
            return line.split(": ", 1)[1]
    return None


def test_there_are_at_least_60() -> None:
    assert len(FILES) >= 60


@pytest.mark.parametrize("file", FILES, ids=[f.stem for f in FILES])
def test_check_reports_the_key_path(file: Path) -> None:
    expected = header(file, "expect")
    assert expected, f"{file.name} has no '# expect:' line"
    extra = shlex.split(header(file, "args") or "")
    result = subprocess.run(
        [sys.executable, "-m", "vmrunner", "check", *extra, "-c", str(file)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert expected in output, output
    assert "Traceback" not in output
