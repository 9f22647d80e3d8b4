"""The shipped systemd unit (examples/vmrunner@.service) parses cleanly and is hardened:
``systemd-analyze verify`` reports nothing and ``systemd-analyze security --offline=yes``
scores it at most :data:`MAX_EXPOSURE` (docs/guide/operations.md, "Hardening the unit")."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "examples" / "vmrunner@.service"
MAX_EXPOSURE = 5.0


def _analyze() -> str:
    binary = shutil.which("systemd-analyze")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing (scripts/setup.sh installs systemd)")
        pytest.skip("systemd-analyze is not installed")
    return binary


def _copy(tmp_path: Path) -> Path:
    """The unit with ExecStart= pointing at this interpreter (verify wants an executable that
    exists; the shipped path is /usr/local/bin/vmrunner)."""
    text = UNIT.read_text()
    assert "ExecStart=/usr/local/bin/vmrunner run " in text
    text = text.replace("ExecStart=/usr/local/bin/vmrunner ", f"ExecStart={sys.executable} "
                        "-m vmrunner ")
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    return copy


def test_unit_verifies_without_a_message(tmp_path: Path) -> None:
    _copy(tmp_path)
    result = subprocess.run([_analyze(), "verify", "--man=no", "./vmrunner@web1.service"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_unit_exposure_score(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    result = subprocess.run([_analyze(), "security", "--offline=yes", "--no-pager", str(copy)],
                            capture_output=True, text=True, timeout=60, check=False)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, result.stdout
