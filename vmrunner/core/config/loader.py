"""Reading a YAML configuration file into flattened path nodes (no bus)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import msgspec
import yaml

from vmrunner.core.config.errors import ConfigFileError
from vmrunner.core.config.paths import Values, flatten

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigFileMissingError(ConfigFileError):
    """The configuration file does not exist (or a link on its way dangles)."""


class LoadedConfig(msgspec.Struct, frozen=True):
    """One successful read of a configuration file."""

    digest: str
    """SHA-256 of the file's bytes."""
    paths: dict[str, Values]
    """The flattened document (see :func:`vmrunner.core.config.paths.flatten`)."""


def read_bytes(file: Path) -> bytes:
    """The file's content, read through any symlinks; errors name the file."""
    try:
        return file.read_bytes()
    except FileNotFoundError:
        raise ConfigFileMissingError(file, "file not found") from None
    except OSError as exc:
        raise ConfigFileError(file, f"cannot read: {exc.strerror or exc}") from None


def digest_of(content: bytes) -> str:
    """The content hash used to skip no-op changes."""
    return hashlib.sha256(content).hexdigest()


def parse(file: Path, content: bytes) -> dict[str, Values]:
    """Parse YAML ``content`` (read from ``file``) and flatten it.

    A YAML syntax error becomes a :class:`ConfigFileError` naming the file and line; a malformed
    node structure raises :class:`~vmrunner.core.config.errors.ConfigFormatError`.
    """
    try:
        document = yaml.load(content, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise ConfigFileError(file, f"invalid YAML: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise ConfigFileError(file, f"invalid YAML: {exc}") from None
    return flatten(document)


def load(file: Path) -> LoadedConfig:
    """Read, hash and parse ``file``."""
    content = read_bytes(file)
    return LoadedConfig(digest_of(content), parse(file, content))
