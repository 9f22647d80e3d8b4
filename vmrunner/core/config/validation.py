"""Validating a node's values with a pydantic model; messages name the full key path (no bus).

Errors read ``<node path>/<key path>: <message>``, e.g.
``/Runner/vm/currentCpus: Input should be a valid integer``. Keys the model does not know are
reported as warnings (``/Runner/vm/accelertor: unknown key (did you mean 'accelerator'?)``;
past :data:`MAX_LISTED` one warning counts the rest) unless the model (or the nested
model concerned) sets ``extra="forbid"`` (then pydantic reports them as errors) or
``extra="allow"`` (then they are wanted).
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

import msgspec
from pydantic import AliasChoices, AliasPath, BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)
MAX_LISTED = 20
"""Unknown keys reported one by one; the rest are summed up in one more warning."""


class Validated(msgspec.Struct, Generic[ModelT], frozen=True):
    """Outcome of :func:`validate`: either ``config`` or ``errors``; ``warnings`` in any case."""

    config: ModelT | None
    errors: tuple[str, ...]
    warnings: tuple[str, ...]


def validate(
    model: type[ModelT], node_path: str, values: Mapping[str, Any],
    context: Mapping[str, Any] | None = None,
) -> Validated[ModelT]:
    """Validate the values of node ``node_path`` with ``model`` (``context``: pydantic's
    validation context, seen by validators as ``info.context``)."""
    found: Found = []
    _check_model(model, values, (), found)
    warnings = tuple(f"{_join(node_path, loc)}: unknown key{_did_you_mean(loc[-1], keys)}"
                     for loc, keys in found[:MAX_LISTED])
    if len(found) > MAX_LISTED:
        warnings += (f"{node_path}: {len(found) - MAX_LISTED} more unknown keys (not "
                     f"listed; {len(found)} in all)",)
    try:
        config = model.model_validate(values, context=context)
    except ValidationError as exc:
        return Validated(None, format_errors(node_path, exc), warnings)
    return Validated(config, (), warnings)


def format_errors(node_path: str, exc: ValidationError) -> tuple[str, ...]:
    """One ``<node path>/<loc>: <message>`` line per error of ``exc``."""
    return tuple(f"{_join(node_path, err['loc'])}: {err['msg']}" for err in exc.errors())


def _join(node_path: str, loc: Sequence[int | str]) -> str:
    prefix = "" if node_path == "/" else node_path
    return prefix + "".join(f"/{part}" for part in loc) if loc else node_path


def _did_you_mean(key: int | str, keys: list[str]) -> str:
    close = difflib.get_close_matches(str(key), keys, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_keys(model: type[BaseModel], data: object) -> list[tuple[int | str, ...]]:
    """The locations of keys in ``data`` that ``model`` (or a nested model) ignores."""
    found: list[tuple[tuple[int | str, ...], list[str]]] = []
    _check_model(model, data, (), found)
    return [loc for loc, _ in found]


Found = list[tuple[tuple[int | str, ...], list[str]]]
"""Unknown keys: (location, every spelling of the keys the model there knows)."""


def _check_model(
    model: type[BaseModel], data: object, loc: tuple[int | str, ...], found: Found,
) -> None:
    if not isinstance(data, Mapping):
        return
    extra = model.model_config.get("extra")
    fields = model.model_fields
    known: dict[str, Any] = {}
    for name, field in fields.items():
        for key in _keys_of(name, field.alias, field.validation_alias):
            known[key] = field.annotation
    for key, value in data.items():
        if key in known:
            _check_value(known[key], value, (*loc, key), found)
        elif extra not in ("forbid", "allow"):
            found.append(((*loc, key), list(known)))


def _keys_of(name: str, alias: str | None, validation_alias: object) -> list[str]:
    keys = [name]
    if alias:
        keys.append(alias)
    choices: list[object] = (
        list(validation_alias.choices)
        if isinstance(validation_alias, AliasChoices)
        else [validation_alias]
    )
    for choice in choices:
        if isinstance(choice, str):
            keys.append(choice)
        elif isinstance(choice, AliasPath) and choice.path and isinstance(choice.path[0], str):
            keys.append(choice.path[0])
    return keys


def _check_value(
    annotation: Any, value: object, loc: tuple[int | str, ...], found: Found,
) -> None:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        _check_value(args[0], value, loc, found)
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        _check_model(annotation, value, loc, found)
    elif origin is typing.Union or isinstance(annotation, types.UnionType):
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if len(models) == 1:  # Optional[Model] and the like; ambiguous unions are skipped
            _check_model(models[0], value, loc, found)
    elif origin in (list, tuple, set, frozenset, Sequence) and args:
        if isinstance(value, list | tuple):
            fixed = origin is tuple and not (len(args) == 2 and args[1] is Ellipsis)
            for index, element in enumerate(value):
                if fixed and index >= len(args):
                    break
                _check_value(args[index] if fixed else args[0], element, (*loc, index), found)
    elif origin in (dict, Mapping) and len(args) == 2 and isinstance(value, Mapping):
        for key, element in value.items():
            _check_value(args[1], element, (*loc, key), found)
