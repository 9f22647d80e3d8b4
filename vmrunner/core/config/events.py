"""Configuration events: updates by node path, and rejections.

A :class:`ConfigurationUpdate` maps node paths (``/Runner``, ``/Runner/QemuMonitor``) to that
node's values, or to ``None`` when the node was removed. The store fires the *complete*
configuration, not a diff; components compare against their current state. The mapping and
everything in it are immutable; :meth:`ConfigurationUpdate.structured` hands out fresh
mutable copies.

The results of a ``ConfigurationUpdate`` are the :class:`ConfigurationRejected` events of the
components that rejected their section, so whoever fires an update (``await self.call(...)``)
learns whether it was accepted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Self

from vmrunner.core.channel import BROADCAST, Channel
from vmrunner.core.config.paths import Values, flat_values, split_path
from vmrunner.core.events import Event

FrozenValues = Mapping[str, Any]
"""A node's values, deeply frozen (mappings are read-only proxies, lists are tuples)."""


class ConfigurationRejected(Event[None], frozen=True, kw_only=True):
    """A component (or the store) rejected the configuration of node ``path``.

    ``errors`` are complete lines (``/Runner/vm/currentCpus: Input should be a valid
    integer``). ``initial`` is true for the configuration at start, which stops the tree.
    ``path`` is ``/`` when the document as a whole was rejected (unreadable, invalid YAML).
    Fired on BROADCAST.
    """

    default_channels: ClassVar[tuple[Channel, ...]] = (BROADCAST,)

    path: str
    errors: tuple[str, ...]
    initial: bool = False


class ConfigurationUpdate(Event[ConfigurationRejected], frozen=True, kw_only=True):
    """The configuration, by node path (``None``: the node was removed). Fired on BROADCAST.

    Create it with :meth:`of`, which validates the paths and freezes the values. ``source``
    is the file the configuration was read from, if any (as given, symlinks not resolved).
    """

    default_channels: ClassVar[tuple[Channel, ...]] = (BROADCAST,)

    nodes: Mapping[str, FrozenValues | None]
    source: Path | None = None

    @classmethod
    def of(cls, nodes: Mapping[str, Mapping[str, Any] | None], source: Path | None = None
           ) -> Self:
        """An update holding a frozen deep copy of ``nodes`` (paths must be absolute)."""
        frozen: dict[str, FrozenValues | None] = {}
        for path, values in nodes.items():
            split_path(path)
            frozen[path] = None if values is None else _freeze_mapping(values)
        return cls(nodes=MappingProxyType(frozen), source=source)

    @property
    def paths(self) -> tuple[str, ...]:
        """All paths in this update, removed ones included."""
        return tuple(self.nodes)

    @property
    def removed(self) -> tuple[str, ...]:
        """The paths that were removed (mapped to ``None``)."""
        return tuple(path for path, values in self.nodes.items() if values is None)

    def __contains__(self, path: object) -> bool:
        return path in self.nodes

    def __iter__(self) -> Iterator[str]:
        return iter(self.nodes)

    def structured(self, path: str) -> Values | None:
        """A mutable deep copy of the values of ``path`` (exact match); ``None`` if the path
        is absent or removed."""
        values = self.nodes.get(path)
        return None if values is None else _thaw_mapping(values)

    def values(self, path: str) -> dict[str, Any] | None:
        """The values of ``path`` flattened to dotted keys (``vm.drives.0.file``)."""
        structured = self.structured(path)
        return None if structured is None else flat_values(structured)


class InitialConfiguration(ConfigurationUpdate, frozen=True, kw_only=True):
    """The configuration at start, delivered before any ordinary ``Start`` handler runs.

    Handlers for :class:`ConfigurationUpdate` receive it too.
    """


class ReloadConfiguration(Event[None], frozen=True, kw_only=True):
    """Re-read the configuration file now, as if it had changed (``vmrunner run`` fires it
    on SIGHUP). The store applies a changed, valid file as usual and logs an unchanged one.
    ``reason`` says who asked (for the log). Fired on BROADCAST."""

    default_channels: ClassVar[tuple[Channel, ...]] = (BROADCAST,)

    reason: str = ""


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _freeze_mapping(value)
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    if isinstance(value, set | frozenset):
        return frozenset(_freeze(item) for item in value)
    return value


def _freeze_mapping(values: Mapping[Any, Any]) -> FrozenValues:
    return MappingProxyType({key: _freeze(item) for key, item in values.items()})


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _thaw_mapping(value)
    if isinstance(value, tuple):
        return [_thaw(item) for item in value]
    if isinstance(value, frozenset):
        return {_thaw(item) for item in value}
    return value


def _thaw_mapping(values: Mapping[Any, Any]) -> dict[Any, Any]:
    return {key: _thaw(item) for key, item in values.items()}
