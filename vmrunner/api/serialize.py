"""Bus events as JSON: the stable schema of ``GET /events``.

Every record is ``{"seq": int, "time": float, "type": str, "data": object}``: ``seq`` counts
the events the event log saw (1, 2, ...; gaps mean events not kept), ``time`` is the Unix time
it saw the event, ``type`` the event's class name and ``data`` its fields, converted by
:func:`to_json`: enums become their value, paths strings, structs (and dataclasses) objects
(camelCase keys; a QMP event also gets its class in ``event``), QMP commands only their name
(arguments may hold secrets), configurations, plans and components only their type name,
process environments only their variable names; values of keys naming a password, secret or
token are ``***``. ``deadline`` values (``ShutdownRung``) are ``time.monotonic()`` seconds,
as on the bus.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import msgspec

from vmrunner.core import Event

MAX_DEPTH = 6
_SECRET_WORDS = ("password", "secret", "token")


def camel(name: str) -> str:
    """``tray_open`` → ``trayOpen``."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def to_json(value: Any, depth: int = 0) -> Any:
    """``value`` as something :func:`json.dumps` takes (see the module docstring)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return to_json(value.value, depth)
    if isinstance(value, PurePath):
        return str(value)
    if depth >= MAX_DEPTH:
        return type(value).__name__
    from vmrunner.protocols.qmp.commands import QmpCommand

    if isinstance(value, QmpCommand):
        return {"command": value.name}
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if _is_record(value):
        return _fields(value, depth)
    if isinstance(value, Mapping):
        return {str(k): "***" if _secret(str(k)) else to_json(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, (list, tuple, frozenset, set)):
        return [to_json(v, depth + 1) for v in value]
    return type(value).__name__


def _secret(key: str) -> bool:
    """Whether a key names a secret (``display-password``, ``token``...)."""
    return any(word in key.lower() for word in _SECRET_WORDS)


def _is_record(value: Any) -> bool:
    """Whether ``value`` is a struct or dataclass instance (not a class)."""
    if isinstance(value, type):
        return False
    return isinstance(value, msgspec.Struct) or dataclasses.is_dataclass(value)


def _field_names(value: Any) -> tuple[str, ...]:
    if isinstance(value, msgspec.Struct):
        return value.__struct_fields__
    return tuple(field.name for field in dataclasses.fields(value))


def _fields(value: Any, depth: int) -> dict[str, Any]:
    from vmrunner.vmtypes.launch import LaunchPlan

    if isinstance(value, LaunchPlan):
        return {"type": "LaunchPlan", "vm": value.config.vm.name}
    from vmrunner.events.qmp import QmpEvent

    out: dict[str, Any] = {"event": type(value).__name__} if isinstance(value, QmpEvent) else {}
    for name in _field_names(value):
        item = getattr(value, name)
        if _secret(name) and isinstance(item, str):
            out[camel(name)] = "***"
        elif name == "env" and isinstance(item, tuple):
            out["env"] = [pair[0] for pair in item if isinstance(pair, tuple) and pair]
        else:
            out[camel(name)] = to_json(item, depth + 1)
    return out


def event_record(seq: int, when: float, event: Event[Any]) -> dict[str, Any]:
    """One ``GET /events`` record."""
    data: dict[str, Any] = _fields(event, 0) if _is_record(event) else {}
    return {"seq": seq, "time": round(when, 6), "type": type(event).__name__, "data": data}
