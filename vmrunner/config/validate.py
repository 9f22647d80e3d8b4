"""Load a configuration file, validate its ``/Runner`` node, report every problem by key path.

Nothing here raises for bad *content*: :func:`load_config` returns a :class:`Validation` with
the model (when valid) and a list of :class:`Problem` s such as
``/Runner/vm/currentCpus: 8 exceeds maximumCpus (4)`` or
``/Runner/vm/accelertor: unknown key (did you mean 'accelerator'?)``.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec
from pydantic import AliasChoices, BaseModel, ValidationError
from pydantic.fields import FieldInfo

from vmrunner.config.model import RunnerConfig
from vmrunner.config.secret_files import secret_file_problem
from vmrunner.config.spice import spice_exposure
from vmrunner.core.config.errors import ConfigFileError
from vmrunner.core.config.loader import load_document, read_bytes

RUNNER_PATH = "/Runner"
NODE_PREFIXES = ("/", "_")
Severity = Literal["error", "warning"]


class Problem(msgspec.Struct, frozen=True):
    """One finding, located by a key path such as ``/Runner/vm/drives/0/file``."""

    path: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{prefix}{self.path}: {self.message}"


class Validation(msgspec.Struct, frozen=True):
    """The outcome of validating a configuration: the model if valid, and all problems."""

    config: RunnerConfig | None
    problems: list[Problem] = msgspec.field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        """The problems that make the configuration unusable."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """The problems that are only reported."""
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """Whether the configuration can be used."""
        return self.config is not None and not self.errors


def join_path(base: str, loc: tuple[int | str, ...]) -> str:
    """``join_path("/Runner", ("vm", "drives", 0))`` → ``/Runner/vm/drives/0``."""
    return "/".join([base.rstrip("/"), *(str(part) for part in loc)]) if loc else base


def _describe(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    given = error.get("input")
    if kind in {"literal_error", "int_parsing", "int_type", "bool_parsing", "bool_type",
                "greater_than_equal", "less_than_equal", "uuid_parsing", "string_type",
                "int_from_float", "path_type"} and isinstance(given, (str, int, float)):
        message += f" (got {given!r})"
    return message


def problems_from_error(error: ValidationError, base: str = RUNNER_PATH) -> list[Problem]:
    """One :class:`Problem` per pydantic error, located below ``base``."""
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(part for part in item["loc"] if not _is_union_tag(part))
        problems.append(Problem(join_path(base, loc), _describe(item)))
    return problems


def _is_union_tag(part: int | str) -> bool:
    # pydantic adds the member type name (e.g. "function-after[...]") to locs inside unions
    return isinstance(part, str) and ("[" in part or part in {"int", "str"})


def _models_in(annotation: Any) -> list[tuple[type[BaseModel], bool]]:
    """The model classes an annotation refers to, each with whether it is a list element."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, False)]
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    if origin is list:
        return [(m, True) for m, _ in _models_in(typing.get_args(annotation)[0])]
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    return []


def accepted_keys(info: FieldInfo) -> list[str]:
    """The keys a field is read from: its alias and any ``AliasChoices`` spellings."""
    keys = [info.alias] if info.alias else []
    choices = info.validation_alias
    if isinstance(choices, str):
        keys.append(choices)
    elif isinstance(choices, AliasChoices):
        keys += [c for c in choices.choices if isinstance(c, str)]
    return keys


MAX_UNKNOWN_LISTED = 20
"""Unknown keys reported one by one; the rest are summed up in one more warning."""


def unknown_keys(
    model: type[BaseModel], data: object, base: str = RUNNER_PATH, *, top: bool = True
) -> list[Problem]:
    """Warnings for keys in ``data`` that ``model`` does not know, recursively: the first
    :data:`MAX_UNKNOWN_LISTED` by path (with a did-you-mean), then one warning counting
    the others.

    At the top level, keys starting with ``/`` or ``_`` are child component nodes, not values,
    and are skipped.
    """
    found: list[tuple[str, object, list[str]]] = []
    _collect_unknown(model, data, base, top, found)
    problems = []
    for path, key, aliases in found[:MAX_UNKNOWN_LISTED]:
        close = difflib.get_close_matches(str(key), aliases, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        problems.append(Problem(path, f"unknown key{hint}", "warning"))
    if len(found) > MAX_UNKNOWN_LISTED:
        problems.append(Problem(
            base, f"{len(found) - MAX_UNKNOWN_LISTED} more unknown keys (not listed; "
            f"{len(found)} in all)", "warning"))
    return problems


def _collect_unknown(model: type[BaseModel], data: object, base: str, top: bool,
                     found: list[tuple[str, object, list[str]]]) -> None:
    """Append ``(path, key, the model's keys)`` for each unknown key below ``data``."""
    if not isinstance(data, Mapping):
        return
    known: dict[str, str] = {}
    for name, info in model.model_fields.items():
        known[name] = name
        for spelling in accepted_keys(info):
            known[spelling] = name
    aliases = sorted({info.alias or name for name, info in model.model_fields.items()})
    for key, value in data.items():
        if top and isinstance(key, str) and key.startswith(NODE_PREFIXES):
            continue
        path = join_path(base, (key,))
        field_name = known.get(key) if isinstance(key, str) else None
        if field_name is None:
            found.append((path, key, aliases))
            continue
        for sub, is_list in _models_in(model.model_fields[field_name].annotation):
            if is_list and isinstance(value, list):
                for index, item in enumerate(value):
                    _collect_unknown(sub, item, join_path(path, (index,)), False, found)
            elif not is_list:
                _collect_unknown(sub, value, path, False, found)


def runner_values(document: object) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The values of the ``/Runner`` node of a parsed document (``_Runner`` also accepted)."""
    if not isinstance(document, Mapping):
        return None, [Problem("/", "the file must contain a mapping with a '/Runner' key")]
    for key in ("/Runner", "_Runner"):
        if key in document:
            node = document[key]
            if not isinstance(node, Mapping):
                return None, [Problem(RUNNER_PATH, "must be a mapping")]
            return dict(node), []
    return None, [Problem(RUNNER_PATH, "required key is missing (the file has no '/Runner' node)")]


def validate_values(
    values: Mapping[str, Any], *, strict: bool = False, base_dir: Path | None = None
) -> Validation:
    """Validate the values of the ``/Runner`` node; ``strict`` turns unknown keys and secret
    files others may read (:mod:`vmrunner.config.secret_files`) into errors.
    With ``base_dir`` (the configuration file's directory), relative paths are taken relative
    to it."""
    problems = unknown_keys(RunnerConfig, values)
    if strict:
        problems = [Problem(p.path, p.message, "error") for p in problems]
    plain = {k: v for k, v in values.items() if not str(k).startswith(NODE_PREFIXES)}
    context = {"base_dir": base_dir} if base_dir is not None else None
    try:
        config = RunnerConfig.model_validate(plain, context=context)
    except ValidationError as exc:
        return Validation(None, problems_from_error(exc) + problems)
    exposure = spice_exposure(config)
    if exposure is not None:
        path, message, is_error = exposure
        problems.append(Problem(path, message, "error" if is_error else "warning"))
        if is_error:
            return Validation(None, problems)
    spice = config.vm.display.spice if config.vm.display is not None else None
    if spice is not None and spice.password_file is not None:
        secret = secret_file_problem(spice.password_file)
        if secret is not None:
            problems.append(Problem("/Runner/vm/display/spice/passwordFile", secret,
                                    "error" if strict else "warning"))
            if strict:
                return Validation(None, problems)
    return Validation(config, problems)


def read_document(file: Path) -> tuple[object, list[Problem]]:
    """Parse a YAML file; problems name the file (and line where known).

    The same reader and limits as the running configuration store
    (:mod:`vmrunner.core.config.loader`): a regular file of bounded size, bounded nesting
    and alias expansion, no duplicate keys.
    """
    try:
        return load_document(file, read_bytes(file)), []
    except ConfigFileError as exc:
        where = f"{file}:{exc.line}" if exc.line is not None else str(file)
        return None, [Problem(where, exc.message)]


def load_config(file: Path, *, strict: bool = False) -> Validation:
    """Read ``file``, pick its ``/Runner`` node and validate it.

    Relative paths in the configuration are taken relative to the file's directory as
    named, not its symlink target (a Kubernetes ConfigMap's timestamped directory goes away
    at the next update).
    """
    document, problems = read_document(file)
    if problems:
        return Validation(None, problems)
    values, problems = runner_values(document)
    if values is None:
        return Validation(None, problems)
    return validate_values(values, strict=strict, base_dir=file.absolute().parent)
