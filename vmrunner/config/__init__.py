"""The ``/Runner`` configuration: pydantic model, memory sizes, validation with key paths.

Pure library code (no event bus). Typical use::

    from vmrunner.config import load_config
    result = load_config(Path("config.yaml"), strict=False)
    for problem in result.problems:
        print(problem)          # "/Runner/vm/currentCpus: 8 exceeds maximumCpus (4)"
    if result.ok:
        config = result.config  # RunnerConfig (frozen)
"""

from __future__ import annotations

from vmrunner.config.model import (
    CloudInitConfig,
    DisplayConfig,
    DriveConfig,
    KernelConfig,
    NetworkConfig,
    RunnerConfig,
    SpiceConfig,
    VmConfig,
)
from vmrunner.config.sizes import format_memory, parse_memory
from vmrunner.config.validate import (
    Problem,
    Validation,
    load_config,
    problems_from_error,
    unknown_keys,
    validate_values,
)

__all__ = [
    "CloudInitConfig",
    "DisplayConfig",
    "DriveConfig",
    "KernelConfig",
    "NetworkConfig",
    "Problem",
    "RunnerConfig",
    "SpiceConfig",
    "Validation",
    "VmConfig",
    "format_memory",
    "load_config",
    "parse_memory",
    "problems_from_error",
    "unknown_keys",
    "validate_values",
]
