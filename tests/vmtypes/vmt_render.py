"""Render a test template in a directory of its own (for the template tests)."""

from __future__ import annotations

from pathlib import Path

from vmrunner.config.validate import validate_values
from vmrunner.vmtypes.prepare import plan_start


def render(directory: Path, body: str, **vm: object) -> list[str]:
    """Write ``body`` as ``directory/T.yaml.mako`` and render it for a minimal VM (``vm``
    overrides its keys); QEMU's argv (executables not resolved)."""
    directory.mkdir(exist_ok=True)
    (directory / "T.yaml.mako").write_text(body)
    result = validate_values({
        "dataDir": "/nonexistent/d", "runtimeDir": "/nonexistent/r", "template": "T.yaml.mako",
        "templateDirs": [str(directory)],
        "vm": {"name": "t", "firmware": "bios", "network": [], **vm}})
    assert result.config is not None, result.problems
    return plan_start(result.config).render(resolve_executables=False).qemu.argv
