"""The ``/Runner`` section validated like the CLI does, for live updates.

:func:`validate_runner_section` runs :func:`vmrunner.config.validate.validate_values` (the
project's messages: ``(got 'x')``, ``did you mean``; ``strict`` makes unknown keys errors)
and returns the core's :class:`~vmrunner.core.config.validation.Validated`, so the Runner
(a ``Configurable``) rejects a bad edit with the same key-path messages as ``vmrunner check``.
Relative paths are resolved against the configuration file's directory *as given* (a
ConfigMap mount), not its resolved target, which kubelet deletes on the next update.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vmrunner.config.model import RunnerConfig
from vmrunner.config.validate import RUNNER_PATH, validate_values
from vmrunner.core.config.validation import Validated


def validate_runner_section(
    section: Mapping[str, Any], context: Mapping[str, Any] | None, *, strict: bool = False,
    path: str = RUNNER_PATH,
) -> Validated[RunnerConfig]:
    """Validate the values of the ``/Runner`` node (``context``: the core's validation
    context; its ``base_dir`` resolves relative paths)."""
    base = (context or {}).get("base_dir")
    validation = validate_values(section, strict=strict,
                                 base_dir=None if base is None else Path(base))
    errors = tuple(_line(p.path, p.message, path) for p in validation.errors)
    warnings = tuple(_line(p.path, p.message, path) for p in validation.warnings)
    config = validation.config if validation.ok else None
    return Validated(config, errors if config is None else (), warnings)


def _line(key: str, message: str, path: str) -> str:
    if path != RUNNER_PATH and key.startswith(RUNNER_PATH):
        key = path + key[len(RUNNER_PATH):]
    return f"{key}: {message}"
