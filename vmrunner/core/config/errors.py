"""Exceptions of the configuration package, and the exit code of a configuration failure.

- :data:`CONFIG_ERROR_EXIT`: the tree's exit code when its configuration is rejected.
- :class:`ConfigError`: base; ``messages`` are complete ``<path>: <message>`` lines.
  - :class:`ConfigFormatError`: the document's node structure is malformed.
  - :class:`ConfigFileError`: the file cannot be read or is not valid YAML (names file and line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

CONFIG_ERROR_EXIT: Final = 2
"""The exit code ``run()`` returns when the initial configuration is rejected.

Invariant: :class:`~vmrunner.core.config.Configurable` and
:class:`~vmrunner.core.config.ConfigWatcher` set it (first non-zero code wins) and fire ``Stop``
only if the tree's exit code is not this value yet, so one tree gets one ``Stop`` however many
components fail. Nothing else should set it. An application's own "configuration error" code
must equal it (vmrunner's ``ExitCode.CONFIG_ERROR`` does).
"""


class ConfigError(Exception):
    """Invalid configuration; ``messages`` holds one human-readable line per problem."""

    def __init__(self, messages: tuple[str, ...]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


class ConfigFormatError(ConfigError):
    """The node structure of a configuration document is malformed at ``path``."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__((f"{path}: {message}",))
        self.path = path


class ConfigFileError(ConfigError):
    """A configuration file cannot be read or parsed; names the file (and line, if known)."""

    def __init__(self, file: Path, message: str, line: int | None = None) -> None:
        where = f"{file}:{line}" if line is not None else str(file)
        super().__init__((f"{where}: {message}",))
        self.file = file
        self.line = line
        self.message = message
