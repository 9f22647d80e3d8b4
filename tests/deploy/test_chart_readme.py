"""The chart's README is generated from values.schema.json and values.yaml and is current."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "deploy" / "helm" / "readme.py"
CHART = REPO / "deploy" / "helm" / "vmrunner"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chart_readme", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_readme_is_current() -> None:
    result = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_every_value_is_in_the_readme() -> None:
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    missing = [key for key in values if f"| `{key}` |" not in readme]
    assert not missing


def test_a_value_without_description_is_an_error_naming_it() -> None:
    schema = {"properties": {"metrics": {"description": "x", "type": "object",
                                         "properties": {"port": {"type": "integer"}}}}}
    with pytest.raises(SystemExit, match=r"metrics\.port has no description"):
        _generator().rows(schema, {}, [])

