"""Notes ``vmrunner check`` adds for values that are valid but perhaps not what was meant.

A memory size with a decimal unit (``maximumRam: 256 MB``) is 256 * 10^6 bytes, which
VM-Operator writes on purpose and the runner accepts; a person who meant MiB gets
``note: /Runner/vm/maximumRam: "256 MB" is 244.1 MiB (MB = 10^6 bytes); did you mean
"256 MiB"?``. Notes never change the exit code and are not warnings (``--strict`` ignores
them).

:func:`missing_default_config` is the error of every command run without ``-c`` on a host
without a configuration at the default path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from vmrunner.config.sizes import decimal_hint
from vmrunner.config.validate import read_document, runner_values

MEMORY_KEYS = (("maximumRam", "maximum_ram"), ("currentRam", "current_ram"))
"""The memory sizes of ``/Runner/vm``, in both spellings."""


def memory_notes(values: Mapping[str, object]) -> list[str]:
    """The notes for the ``/Runner`` node's ``values`` as written."""
    vm = values.get("vm")
    if not isinstance(vm, Mapping):
        return []
    notes = []
    for spellings in MEMORY_KEYS:
        for key in spellings:
            hint = decimal_hint(vm.get(key))
            if hint is not None:
                notes.append(f"note: /Runner/vm/{key}: {hint}")
    return notes


def config_notes(config_file: Path) -> list[str]:
    """The notes for ``config_file`` (none if it cannot be read: that is reported elsewhere)."""
    document, problems = read_document(config_file)
    values, _ = runner_values(document) if not problems else (None, [])
    return memory_notes(values) if values is not None else []


def missing_default_config(config_file: Path, default: Path) -> str | None:
    """The error for a command left to the default configuration file when there is none
    there: it says how to name one. ``None`` if a file was named or the default exists."""
    if config_file != default or default.exists():
        return None
    return (f"vmrunner: no configuration file at {default} (the default); "
            "name one with -c/--config FILE")
