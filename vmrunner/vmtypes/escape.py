"""Safe insertion of configuration values into a YAML template's output.

Mako renders YAML text, and config values must neither change that YAML's structure nor add
options to QEMU's comma-separated option strings. So a value is never written into the text:
every ``${...}`` expression goes through :meth:`Substitutions.filter` (Mako's default filter),
which stores the value and writes an opaque alphanumeric token instead. After the YAML is parsed,
:meth:`Substitutions.restore` puts the values back into the parsed strings. The stored form is
QEMU-escaped (``,`` → ``,,``) unless the template marked it with :func:`arg` (a whole argument
that QEMU does not split) or built it with :func:`opt`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any
from uuid import UUID

from vmrunner.vmtypes.errors import TemplateError


class Escaped(str):
    """A string that is already in its final form and is inserted as is."""

    __slots__ = ()


class Unset:
    """The value of a configuration key that is not set; false in ``% if``, an error in ``${}``."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __bool__(self) -> bool:
        return False

    def __iter__(self) -> Any:
        return iter(())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        from vmrunner.vmtypes.errors import TemplateKeyError

        raise TemplateKeyError(
            f"{self.path}: the key is not set but the template needs '{name}' from it",
            key=self.path,
        )

    def __repr__(self) -> str:
        return f"Unset({self.path!r})"


def qemu_escape(value: str) -> str:
    """Escape ``value`` for a QEMU option string: ``,`` becomes ``,,``."""
    return value.replace(",", ",,")


def to_text(value: object) -> str:
    """The text of a scalar config value (bools as QEMU's ``on``/``off``)."""
    from vmrunner.vmtypes.errors import TemplateKeyError

    if isinstance(value, Unset):
        raise TemplateKeyError(f"{value.path}: the key is not set but the template needs it",
                               key=value.path)
    if value is None:
        raise TemplateError("a value is None (test it with isset() before using it)")
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (str, int, float, PurePath, UUID)):
        return str(value)
    raise TemplateError(f"cannot insert a {type(value).__name__} into a command line")


def arg(value: object) -> Escaped:
    """``${arg(x)}``: ``x`` verbatim, for an argument QEMU does not split at commas
    (``-kernel``, ``-append``, ``-uuid``) or for another program's arguments."""
    return Escaped(to_text(value))


def nocomma(value: object) -> Escaped:
    """``${nocomma(x)}``: ``x`` verbatim for a program without comma escaping (swtpm); a value
    containing ``,`` is an error."""
    text = to_text(value)
    if "," in text:
        raise TemplateError(f"{text!r} contains ',', which this program cannot escape")
    return Escaped(text)


_KEY = re.compile(r"[A-Za-z0-9_.-]+")


def opt(head: object = None, props: Mapping[str, object] | None = None) -> Escaped:
    """``${opt("virtio-blk-pci", {"drive": node, "bootindex": d.bootindex})}``: a QEMU option
    string with every value escaped; ``None`` and unset values are left out, bools become on/off,
    a list repeats the key for each item (``{"hostfwd": [a, b]}`` → ``hostfwd=a,hostfwd=b``)."""
    parts = [] if head is None or isinstance(head, Unset) else [qemu_escape(to_text(head))]
    for key, value in (props or {}).items():
        if not _KEY.fullmatch(key):
            raise TemplateError(f"bad QEMU property name {key!r}")
        if value is None or isinstance(value, Unset):
            continue
        for item in value if isinstance(value, list) else [value]:
            parts.append(f"{key}={qemu_escape(to_text(item))}")
    return Escaped(",".join(parts))


def isset(value: object) -> bool:
    """Whether a configuration value is set (also true for ``0`` and ``False``)."""
    return value is not None and not isinstance(value, Unset)


class Substitutions:
    """Values written into one rendering, and their restoration after YAML parsing."""

    def __init__(self) -> None:
        self._nonce = secrets.token_hex(8)
        self._values: list[str] = []
        self._pattern = re.compile(f"vmr{self._nonce}v(\\d+)x")

    def filter(self, value: object) -> str:
        """Mako's default filter: remember ``value`` (escaped) and write a token."""
        text = value if isinstance(value, Escaped) else qemu_escape(to_text(value))
        self._values.append(str(text))
        return f"vmr{self._nonce}v{len(self._values) - 1}x"

    def restore(self, data: object) -> object:
        """``data`` (parsed YAML) with every token replaced by its value."""
        if isinstance(data, str):
            return self._pattern.sub(lambda m: self._values[int(m[1])], data)
        if isinstance(data, list):
            return [self.restore(item) for item in data]
        if isinstance(data, dict):
            return {key: self.restore(value) for key, value in data.items()}
        return data
