"""pyproject.toml lists every package of the tree (the list is explicit because the top-level
``templates/`` directory ships as ``vmrunner.templates``)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_lists_every_package() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    in_tree = {".".join(init.parent.relative_to(ROOT).parts)
               for init in (ROOT / "vmrunner").rglob("__init__.py")}
    assert set(setuptools["packages"]) == in_tree | {"vmrunner.templates"}
    assert setuptools["package-dir"] == {"vmrunner.templates": "templates"}
