"""Path-node addressing of configuration documents (pure functions, no I/O, no bus).

In every *node* mapping of a configuration document, a key that starts with ``/`` or ``_``
names a child node; every other key is a value of the node itself. The document itself is the
root node, path ``/``. ``_Name`` is an alternative spelling of ``/Name`` for formats or tools
where keys starting with ``/`` are awkward, and a node key may hold several segments
(``"/Runner/QemuMonitor"``). Keys inside *values* are never nodes::

    "/Runner":                  # path /Runner, values {"vm": {...}}
      vm: {name: test-vm}
      "/QemuMonitor":           # path /Runner/QemuMonitor, values {"connectTimeout": 10}
        connectTimeout: 10

:func:`flatten` turns such a document into ``{path: values}``; :func:`full_update` computes the
content of a configuration update from an old and a new flattened document, mapping paths that
disappeared to ``None``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from vmrunner.core.config.errors import ConfigFormatError

ROOT = "/"
"""The path of the document's root node."""

NODE_PREFIXES = ("/", "_")
"""A key starting with one of these names a child node."""

Values = dict[str, Any]
"""The values of one node: its non-node keys, as nested plain data (dicts, lists, scalars)."""


def is_node_key(key: object) -> bool:
    """Whether ``key`` names a child node (a string starting with ``/`` or ``_``)."""
    return isinstance(key, str) and key.startswith(NODE_PREFIXES)


def split_path(path: str) -> tuple[str, ...]:
    """The segments of an absolute path: ``"/Runner/QemuMonitor"`` -> ``("Runner", "QemuMonitor")``.

    Raises :class:`ConfigFormatError` for relative paths and empty segments.
    """
    if not path.startswith("/"):
        raise ConfigFormatError(path, "a path must start with '/'")
    if path == ROOT:
        return ()
    segments = tuple(path[1:].split("/"))
    if any(not segment for segment in segments):
        raise ConfigFormatError(path, "a path must not contain empty segments")
    return segments


def join_path(parent: str, key: str) -> str:
    """The path of the child node named by node key ``key`` under node ``parent``."""
    segments = tuple(key[1:].split("/"))
    if any(not segment for segment in segments):
        raise ConfigFormatError(
            parent, f"node key {key!r} must not be empty or contain empty segments"
        )
    prefix = "" if parent == ROOT else parent
    return prefix + "/" + "/".join(segments)


def parent_path(path: str) -> str | None:
    """The parent of ``path`` (``None`` for the root)."""
    if path == ROOT:
        return None
    head = path.rsplit("/", 1)[0]
    return head or ROOT


def flatten(document: Mapping[Any, Any] | None) -> dict[str, Values]:
    """Flatten a configuration document into ``{path: values}``.

    Every node that appears in the document gets an entry, even with empty values (an empty or
    ``null`` node). The root ``/`` has an entry only if it holds values. A node may be given
    twice (``"/Runner/QemuMonitor"`` at top level and ``"/QemuMonitor"`` inside ``"/Runner"``);
    the values are merged, and a key given twice is an error. Values are deep-copied.
    """
    result: dict[str, Values] = {}
    if document is None:
        return result
    if not isinstance(document, Mapping):
        raise ConfigFormatError(
            ROOT, f"the document must be a mapping, not {type(document).__name__}"
        )
    _flatten_node(ROOT, document, result)
    if not result.get(ROOT, True):
        del result[ROOT]
    return result


def _flatten_node(path: str, node: Mapping[Any, Any], into: dict[str, Values]) -> None:
    values = into.setdefault(path, {})
    for key, value in node.items():
        if is_node_key(key):
            child = join_path(path, key)
            if value is None:
                into.setdefault(child, {})
            elif isinstance(value, Mapping):
                _flatten_node(child, value, into)
            else:
                raise ConfigFormatError(
                    child, f"a node must be a mapping, not {type(value).__name__}"
                )
        else:
            if key in values:
                raise ConfigFormatError(path, f"key {key!r} is given more than once")
            values[key] = copy.deepcopy(value)


def full_update(
    old: Mapping[str, Values], new: Mapping[str, Values]
) -> dict[str, Values | None]:
    """The content of a full update from ``old`` to ``new``: every path of ``new`` with its
    values, and every path only in ``old`` mapped to ``None`` (removed)."""
    update: dict[str, Values | None] = {path: values for path, values in new.items()}
    for path in old:
        if path not in new:
            update[path] = None
    return update


def changed_paths(old: Mapping[str, Values], new: Mapping[str, Values]) -> set[str]:
    """The paths whose values differ between ``old`` and ``new`` (added, removed or changed)."""
    return {
        path
        for path in old.keys() | new.keys()
        if (path in old) != (path in new) or old.get(path) != new.get(path)
    }


def flat_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Flatten nested values to dotted keys: ``{"vm": {"drives": [{"file": "a"}]}}`` ->
    ``{"vm.drives.0.file": "a"}``. Empty mappings and lists are kept as leaves."""
    result: dict[str, Any] = {}
    for key, value in values.items():
        _flat_into(str(key), value, result)
    return result


def _flat_into(prefix: str, value: Any, into: dict[str, Any]) -> None:
    items: list[tuple[str, Any]]
    if isinstance(value, Mapping) and value:
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list | tuple) and value:
        items = [(str(i), v) for i, v in enumerate(value)]
    else:
        into[prefix] = copy.deepcopy(value)
        return
    for key, item in items:
        _flat_into(f"{prefix}.{key}", item, into)
