"""Build hook: ship the top-level ``templates/`` directory inside the wheel.

The VM type templates live at the repository's top level (``templates/``); an installed
vmrunner finds them as ``vmrunner/templates/`` (see ``vmrunner.vmtypes.search``). All other
metadata is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithTemplates(build_py):
    """``build_py`` plus a copy of ``templates/*.mako`` into ``vmrunner/templates``."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "vmrunner" / "templates"
        target.mkdir(parents=True, exist_ok=True)
        for template in sorted(Path(__file__).parent.joinpath("templates").glob("*.mako")):
            shutil.copyfile(template, target / template.name)


setup(cmdclass={"build_py": BuildPyWithTemplates})
