"""The example component set runs as a program and by import."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_components.py"

EXPECTED = """\
greenhouse: started
reporter: 21.0 °C
reporter: 22.5 °C
reporter: 31.0 °C
reporter: ALARM 31.0 °C > 30.0 °C
reporter: 23.5 °C
reporter: 35.5 °C
reporter: ALARM 35.5 °C > 30.0 °C
reporter: mean 26.70 °C, 2 alarm(s)
reporter: report flushed
greenhouse: stopped
"""


def test_example_runs_as_a_program() -> None:
    proc = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True,
                          timeout=30, check=False,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert proc.stdout == EXPECTED, proc.stderr
    assert proc.returncode == 1  # an alarm was raised
    assert proc.stderr == ""


async def test_example_tree_by_import(capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        import custom_components
    finally:
        sys.path.remove(str(EXAMPLE.parent))
    root = custom_components.build()
    assert [c.component_path for c in root.walk()] == [
        "/Greenhouse", "/Greenhouse/Sensor", "/Greenhouse/Statistics",
        "/Greenhouse/Limiter", "/Greenhouse/Reporter"]
    assert await asyncio.wait_for(custom_components.run(root), 10) == 1  # type: ignore[attr-defined]
    assert capsys.readouterr().out == EXPECTED
