"""Reading a YAML configuration file into flattened path nodes (no bus).

The same rules apply wherever a configuration is read (``vmrunner check``, the initial load
at start, every live re-read):

- only a **regular file** is read (through symlinks, as in a ConfigMap volume); a FIFO, a
  device or a directory is an error, and opening one never blocks;
- at most :data:`MAX_CONFIG_BYTES` (1 MiB) are read;
- the text must be UTF-8 (or UTF-16 with a BOM);
- collections nest at most :data:`MAX_DEPTH` (64) levels, aliases included;
- the document has at most :data:`MAX_NODES` (50 000) nodes (keys, values, collections;
  a real configuration has a few hundred), so no file makes validation slow;
- aliases add at most :data:`MAX_ALIAS_NODES` (100 000) nodes when expanded (no "billion
  laughs"), and an alias may not refer to a node that contains it;
- a mapping key given twice in the same mapping is an error (merge keys ``<<`` may be
  overridden).

The depth, node and alias limits are checked on the parser's event stream, iteratively, before any
node graph or Python object is built. Every violation is a :class:`ConfigFileError` naming the
file and, where known, the line.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import stat
from pathlib import Path
from typing import Any, Final

import msgspec
import yaml

from vmrunner.core.config.errors import ConfigFileError
from vmrunner.core.config.paths import Values, flatten

MAX_CONFIG_BYTES: Final = 1 << 20
"""The largest configuration file read (1 MiB)."""
MAX_DEPTH: Final = 64
"""The deepest nesting of collections (mappings and sequences), aliases expanded."""
MAX_ALIAS_NODES: Final = 100_000
"""How many nodes all aliases of a document may add when expanded."""
MAX_NODES: Final = 50_000
"""How many nodes (scalars and collections, aliases not expanded) a document may have."""

_BaseLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


class _Loader(_BaseLoader):  # type: ignore[misc]
    """The safe loader (libyaml if available) rejecting duplicate keys within a mapping."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # unhashable: the constructor reports it
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None, None,
                        f"key {key!r} is given more than once (first on line {first})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark.line + 1
        result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return result


class ConfigFileMissingError(ConfigFileError):
    """The configuration file does not exist (or a link on its way dangles)."""


class LoadedConfig(msgspec.Struct, frozen=True):
    """One successful read of a configuration file."""

    digest: str
    """SHA-256 of the file's bytes."""
    paths: dict[str, Values]
    """The flattened document (see :func:`vmrunner.core.config.paths.flatten`)."""


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _check_regular(file: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise ConfigFileError(file, f"not a regular file ({_kind(st.st_mode)})")
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigFileError(file, f"larger than {MAX_CONFIG_BYTES} bytes")


def read_bytes(file: Path) -> bytes:
    """The content of the regular file ``file``, read through any symlinks (see module docs).

    Raises :class:`ConfigFileMissingError` if it does not exist, :class:`ConfigFileError`
    (naming the file) if it cannot be read, is not a regular file or is too large.
    """
    try:
        _check_regular(file, os.stat(file))  # don't even open a FIFO or a device
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigFileMissingError(file, "file not found") from None
    except OSError as exc:
        raise ConfigFileError(file, f"cannot read: {exc.strerror or exc}") from None
    try:
        _check_regular(file, os.fstat(fd))  # swapped between stat and open
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_CONFIG_BYTES:
            chunk = os.read(fd, MAX_CONFIG_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigFileError(file, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if size > MAX_CONFIG_BYTES:
        raise ConfigFileError(file, f"larger than {MAX_CONFIG_BYTES} bytes")
    return b"".join(chunks)


def digest_of(content: bytes) -> str:
    """The content hash used to skip no-op changes."""
    return hashlib.sha256(content).hexdigest()


def _text(file: Path, content: bytes) -> str | bytes:
    if content.startswith(_BOMS):
        return content  # the YAML reader decodes UTF-16 / UTF-8 with a BOM
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = content.count(b"\n", 0, exc.start) + 1
        raise ConfigFileError(file, f"not UTF-8 text: {exc.reason}", line) from None


def _line(event: yaml.Event) -> int | None:
    mark = event.start_mark
    return None if mark is None else mark.line + 1


def _check_structure(file: Path, text: str | bytes) -> None:
    """Enforce :data:`MAX_DEPTH`, :data:`MAX_NODES` and :data:`MAX_ALIAS_NODES` on the event
    stream."""
    # Per open collection: [anchor, size of the subtree, height of the subtree].
    stack: list[list[Any]] = []
    anchors: dict[str, tuple[int, int]] = {}
    open_anchors: set[str] = set()
    added = 0
    nodes = 0

    def done(size: int, height: int) -> None:
        if stack:
            stack[-1][1] += size
            stack[-1][2] = max(stack[-1][2], height)

    for event in yaml.parse(text, Loader=_BaseLoader):
        if isinstance(event, yaml.NodeEvent) and not isinstance(event, yaml.AliasEvent):
            nodes += 1
            if nodes > MAX_NODES:
                raise ConfigFileError(
                    file, f"more than {MAX_NODES} nodes (keys and values)", _line(event)
                )
        if isinstance(event, yaml.DocumentStartEvent):
            anchors.clear()
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                anchors[event.anchor] = (1, 0)
            done(1, 0)
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(stack) >= MAX_DEPTH:
                raise ConfigFileError(
                    file, f"nested deeper than {MAX_DEPTH} levels", _line(event)
                )
            stack.append([event.anchor, 1, 0])
            if event.anchor is not None:
                open_anchors.add(event.anchor)
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, size, height = stack.pop()
            if anchor is not None:
                open_anchors.discard(anchor)
                anchors[anchor] = (size, height + 1)
            done(size, height + 1)
        elif isinstance(event, yaml.AliasEvent):
            line = _line(event)
            name = event.anchor
            if name in open_anchors:
                raise ConfigFileError(
                    file, f"alias *{name} refers to a node that contains it", line
                )
            if name not in anchors:
                raise ConfigFileError(file, f"alias *{name} is not defined before", line)
            size, height = anchors[name]
            if len(stack) + height > MAX_DEPTH:
                raise ConfigFileError(
                    file, f"alias *{name} nests deeper than {MAX_DEPTH} levels", line
                )
            added += size
            if added > MAX_ALIAS_NODES:
                raise ConfigFileError(
                    file, f"aliases expand to more than {MAX_ALIAS_NODES} nodes", line
                )
            done(size, height)


def load_document(file: Path, content: bytes) -> Any:
    """Parse YAML ``content`` (read from ``file``) into Python objects (see module docs).

    Raises :class:`ConfigFileError` naming the file and line.
    """
    text = _text(file, content)
    try:
        _check_structure(file, text)
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise ConfigFileError(file, f"invalid YAML: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise ConfigFileError(file, f"invalid YAML: {exc}") from None


def parse(file: Path, content: bytes) -> dict[str, Values]:
    """Parse YAML ``content`` (read from ``file``) and flatten it.

    A YAML syntax error or a broken limit becomes a :class:`ConfigFileError` naming the file
    and line; a malformed node structure raises
    :class:`~vmrunner.core.config.errors.ConfigFormatError`.
    """
    return flatten(load_document(file, content))


def load(file: Path) -> LoadedConfig:
    """Read, hash and parse ``file``."""
    content = read_bytes(file)
    return LoadedConfig(digest_of(content), parse(file, content))
