"""JSON Schema and Markdown reference of the configuration, generated from the models.

The ``/Runner`` model lives here; the other nodes' models belong to their components (which
this package may not import), so they are passed in as ``nodes`` (path → model). The files in
docs/ are written with every standard node by :mod:`vmrunner.daemon.check_schema`::

    python -m vmrunner.daemon.check_schema --json     > docs/config.schema.json
    python -m vmrunner.daemon.check_schema --markdown > docs/guide/configuration.md

The schema is closed as the runner is: every model's object has ``additionalProperties:
false`` (the runner warns about unknown keys, ``--strict`` makes them errors), only the known
nodes are allowed (in either spelling, ``/`` or ``_``, at the top or inside ``/Runner``), and
``/Runner`` is required.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import itertools
import json
import sys
import textwrap
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from vmrunner.config.model import RunnerConfig
from vmrunner.config.sizes import format_memory
from vmrunner.config.validate import RUNNER_PATH as RUNNER_NODE
from vmrunner.config.validate import accepted_keys


def attribute_docs(model: type[BaseModel]) -> dict[str, str]:
    """The docstrings written under ``model``'s fields (``field: type = default`` then
    ``\"\"\"text\"\"\"``), by field name, read from its source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(model)))
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for statement, following in itertools.pairwise(body):
        if (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            docs[statement.target.id] = inspect.cleandoc(following.value.value)
    return docs


def _models(model: type[BaseModel]) -> list[type[BaseModel]]:
    """``model`` and every model nested in its fields, each once."""
    found = [model]
    for info in model.model_fields.values():
        sub = _submodel(info.annotation)
        if sub is not None and sub not in found:
            found += [m for m in _models(sub) if m not in found]
    return found


def _describe(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Put the attribute docstrings of ``model`` into its JSON Schema ``properties``, and
    list a field's other accepted spellings (``streaming-video``) as properties too."""
    docs = attribute_docs(model)
    properties = schema.get("properties", {})
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key not in properties:
            spellings = accepted_keys(info)
            found = next((s for s in spellings if s in properties), None)
            if found is None:
                continue
            properties[key] = properties.pop(found)
        if name in docs and "description" not in properties[key]:
            properties[key]["description"] = docs[name]
        for other in accepted_keys(info):
            if other not in (key, name):
                properties[other] = {**properties[key],
                                     "description": f"Another spelling of `{key}`."}


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (a model's object schema) with unknown keys rejected."""
    schema["additionalProperties"] = False
    return schema


def _node_keys(relative: str, ref: dict[str, Any]) -> dict[str, Any]:
    """A node's key in both spellings: ``/Api`` and ``_Api`` for ``relative`` ``Api``."""
    return {f"/{relative}": ref, f"_{relative}": ref}


def json_schema(nodes: Mapping[str, type[BaseModel]] | None = None) -> dict[str, Any]:
    """A JSON Schema for whole configuration files: the ``/Runner`` node and the ``nodes``
    below it (path such as ``/Runner/Api`` → its model), nothing else."""
    runner = RunnerConfig.model_json_schema(by_alias=True)
    definitions = runner.pop("$defs", {})
    _describe(runner, RunnerConfig)
    for model in _models(RunnerConfig)[1:]:
        if model.__name__ in definitions:
            _describe(_closed(definitions[model.__name__]), model)
    top: dict[str, Any] = _node_keys("Runner", {"$ref": "#/$defs/RunnerConfig"})
    for path, model in sorted((nodes or {}).items()):
        node = model.model_json_schema(by_alias=True)
        definitions.update(node.pop("$defs", {}))
        _describe(_closed(node), model)
        definitions[model.__name__] = node
        ref = {"$ref": f"#/$defs/{model.__name__}"}
        relative = path.removeprefix(RUNNER_NODE + "/")
        runner["properties"].update(_node_keys(relative, ref))
        top.update(_node_keys(path.lstrip("/"), ref))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "vmrunner configuration",
        "type": "object",
        "properties": top,
        "additionalProperties": False,
        "anyOf": [{"required": ["/Runner"]}, {"required": ["_Runner"]}],
        "$defs": {**definitions, "RunnerConfig": _closed(runner)},
    }


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base = typing.get_args(annotation)[0]
        metadata = typing.get_args(annotation)[1:]
        if base is int and any("memory" in repr(m).lower() or "anyOf" in repr(m)
                               for m in metadata):
            return "memory size"
        return _type_name(base)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(names)
    if origin is typing.Literal:
        return " \\| ".join(f"`{v}`" for v in typing.get_args(annotation))
    if origin is list:
        return f"list of {_type_name(typing.get_args(annotation)[0])}"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "mapping"
        return {"str": "string", "int": "integer", "bool": "boolean", "Path": "path",
                "UUID": "uuid"}.get(annotation.__name__, annotation.__name__)
    return str(annotation)


def _default(info: Any) -> str:
    if info.default_factory is not None:
        value = info.default_factory()
        if isinstance(value, list) and value and isinstance(value[0], BaseModel):
            return "see below"
        return f"`{json.dumps(value)}`"
    if info.default is PydanticUndefined:
        return "**required**"
    if info.default is None:
        return "unset"
    if isinstance(info.default, bool):
        return f"`{str(info.default).lower()}`"
    return f"`{info.default}`"


def _submodel(annotation: Any) -> type[BaseModel] | None:
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation) if origin is not None else ():
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def _section(model: type[BaseModel], path: str, out: list[str]) -> None:
    title = (model.__doc__ or "").strip().splitlines()[0].replace("``", "`")
    out += [f"## `{path}`", "", title, "",
            "| Key | Type | Default | Meaning |", "|---|---|---|---|"]
    nested = []
    docs = attribute_docs(model)
    for name, info in model.model_fields.items():
        key = info.alias or name
        doc = " ".join((info.description or docs.get(name, "")).split())
        doc = doc.replace("|", "\\|").replace("``", "`")
        kind = _type_name(info.annotation)
        default = _default(info)
        if any("_memory" in repr(m) for m in info.metadata):
            kind = "memory size"
            default = f"`{format_memory(info.default)}`"
        others = [f"`{k}`" for k in accepted_keys(info) if k not in (key, name)]
        label = f"`{key}`" + (f" (or {', '.join(others)})" if others else "")
        out.append(f"| {label} | {kind} | {default} | {doc} |")
        sub = _submodel(info.annotation)
        if sub is not None:
            is_list = "list of" in _type_name(info.annotation)
            nested.append((sub, f"{path}/{key}" + ("/N" if is_list else "")))
    out.append("")
    for sub, sub_path in nested:
        _section(sub, sub_path, out)


def markdown(nodes: Mapping[str, type[BaseModel]] | None = None) -> str:
    """The configuration reference (docs/guide/configuration.md): ``/Runner``, then the ``nodes``
    below it (path → model)."""
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by `python -m vmrunner.daemon.check_schema --markdown`; do not edit. -->",
        "",
        "vmrunner reads a YAML file (default `/etc/opt/vmrunner/config.yaml`, option `-c`).",
        "Keys starting with `/` (or `_`) are component nodes; the runner's settings are the",
        "values of the `/Runner` node. Keys are camelCase. Unknown keys are reported as",
        "warnings naming their path (`/Runner/vm/accelertor: unknown key (did you mean",
        "'accelerator'?)`); `vmrunner check --strict` makes them errors. Relative paths are",
        "relative to the configuration file's directory. The other components' nodes",
        "(`/Runner/Api`, `/Runner/PowerdownHandler`, `/Runner/Kubernetes`) are given inside",
        "`/Runner` (`\"/Api\": {...}`) or at the top (`\"/Runner/Api\": {...}`); an unknown node",
        "is a warning with a did-you-mean. `vmrunner check` also requires the files the",
        "configuration names (disks, CD images, kernel, initrd, `passwordFile`, `tokenFile`,",
        "the UEFI firmware) to exist, `/dev/...` disks as block devices (`--no-host-files`",
        "skips that for a configuration meant for another machine; missing firmware is then",
        "assumed at its usual path); `vmrunner check --host` checks this host.",
        "",
        "A JSON Schema for editors is in `docs/config.schema.json`; it rejects unknown keys",
        "and nodes and requires `/Runner`. With the YAML language server (VS Code's YAML",
        "extension and others), a first line",
        "`# yaml-language-server: $schema=<path or URL of docs/config.schema.json>` enables it,",
        "as in `examples/`. `examples/config-sample.yaml` shows every key of every node.",
        "",
        "**Memory sizes** are a number of bytes or a string with a unit: `B`; `KiB MiB GiB TiB`",
        "or `Ki Mi Gi Ti` (powers of 1024); `K M G T` as QEMU reads them, i.e. also powers of",
        "1024 (**unlike Kubernetes, where `G` is 10⁹**); `kB MB GB TB` (powers of 1000);",
        "exponents such as `1e9`. Blanks between number and unit are allowed (`1 GiB`).",
        "`vmrunner check` adds a note for a decimal unit (`note: /Runner/vm/maximumRam: \"256",
        "MB\" is 244.1 MiB (MB = 10^6 bytes); did you mean \"256 MiB\"?`), never an error.",
        "Durations (`powerdownTimeout`, `forceAfter`) are plain numbers of seconds; `5m` is",
        "refused with the number meant. A MAC address must be quoted (YAML reads",
        "`52:54:00:12:34:56` as a number).",
        "Sizes need not be whole MiB; nothing is rounded by vmrunner. What QEMU 7.2 does with",
        "them (measured): `-m` is given in MiB when the size is whole MiB, else in bytes",
        "(`-m 1000000000B`), and QEMU rounds it **up** to a multiple of 8 KiB (`\"1 GB\"` gives",
        "the guest 1000005632 bytes, `query-memory-size-summary`). The balloon target",
        "(`currentRam`) is sent in bytes; QEMU's balloon works in 4 KiB pages, so the size",
        "reached may differ from the target by less than 4 KiB (`500000001` → `500002816`),",
        "well inside the RAM controller's tolerance. Only `maxmem` (memory hot-plug, which the",
        "standard template does not use) must be a multiple of 4 KiB, or QEMU refuses to start.",
        "",
        "**VM-Operator.** The configuration its manager writes (see",
        "`tests/data/manager/` for examples) is accepted as it is: decimal and binary",
        "`\"<n> <unit>\"` sizes, `network:`/`drives:` as null (none), an `ide-cd` with",
        "`file: \"\"` (empty tray), `/dev/<name>` disks as `resource` (attached as block",
        "devices), topology values of 0 (left to QEMU), `cpuModel: host` under TCG (run as",
        "`max`), `spice.streaming-video`, the deprecated `spice.ticket`, `resetCounter` starting",
        "again at 0 after a manager restart, and `guestShutdownStops`. The display secret's",
        "`display-password` beside `config.yaml` gives SPICE its password from the start (see",
        "`passwordFile`) and changes it live. `logging.properties`",
        "beside `config.yaml` (Java logging for the reference runner) is not read, and changes",
        "to it are ignored silently. Not supported: a CD image given as a URL (the manager",
        "passes URLs through; QEMU would need its curl block driver): an error naming the key.",
        "",
        "**CPUs.** QEMU boots with `currentCpus` vCPUs (`-smp cpus=currentCpus,maxcpus=",
        "maximumCpus`); the remaining slots can be hot-plugged later. This avoids hot-plugging",
        "at every start (which under TCG with QEMU 7.2 cannot re-use an unplugged slot).",
        "",
    ]
    _section(RunnerConfig, "/Runner", out)
    for path, model in sorted((nodes or {}).items()):
        _section(model, path, out)
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None, *, prog: str,
         nodes: Mapping[str, type[BaseModel]] | None = None) -> int:
    """Print the JSON Schema (``--json``) or the Markdown reference (``--markdown``) for
    ``/Runner`` and ``nodes``."""
    parser = argparse.ArgumentParser(prog=prog)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--json", action="store_true", help="print the JSON Schema")
    group.add_argument("--markdown", action="store_true", help="print the Markdown reference")
    args = parser.parse_args(argv)
    if args.json:
        sys.stdout.write(json.dumps(json_schema(nodes), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(markdown(nodes))
    return 0
