"""The generated configuration reference and JSON Schema are up to date, fit the examples and
the manager's corpus, and are as closed as the runner: unknown keys and nodes are rejected,
``/Runner`` is required (issue 18, item 3). The examples name the schema for editors, and
config-sample.yaml shows every key of every node."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from vmrunner.config.model import RunnerConfig
from vmrunner.config.schema import _submodel, json_schema, markdown
from vmrunner.daemon.check_schema import node_models

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
SCHEMA_LINE = re.compile(r"# yaml-language-server: \$schema=(\S+)")
REGENERATE = "regenerate: python -m vmrunner.daemon.check_schema --{} > docs/{}"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads((REPO / "docs" / "config.schema.json").read_text())


def errors(schema: dict[str, Any], document: object) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(document)]


def test_markdown_reference_is_current() -> None:
    assert (REPO / "docs/guide/configuration.md").read_text() == markdown(node_models()), (
        REGENERATE.format("markdown", "guide/configuration.md"))


def test_json_schema_is_current(schema: dict[str, Any]) -> None:
    assert schema == json_schema(node_models()), REGENERATE.format("json", "config.schema.json")


def test_the_standard_nodes_are_found() -> None:
    assert set(node_models()) == {"/Runner/Api", "/Runner/PowerdownHandler",
                                  "/Runner/StatsCollector", "/Runner/Kubernetes",
                                  "/Runner/SerialConsole", "/Runner/GuestAgent"}


@pytest.mark.parametrize("example", [*EXAMPLES, *sorted((REPO / "tests/data/manager")
                                                        .glob("*.yaml"))],
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_examples_and_the_manager_corpus_fit_the_schema(
        example: Path, schema: dict[str, Any]) -> None:
    assert errors(schema, yaml.safe_load(example.read_text())) == []


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_examples_name_the_schema_for_editors(example: Path) -> None:
    match = SCHEMA_LINE.fullmatch(example.read_text().splitlines()[0])
    assert match is not None, f"{example.name}: the first line names no schema"
    assert (example.parent / match[1]).resolve() == REPO / "docs" / "config.schema.json"


MINIMAL = {"/Runner": {"vm": {"name": "x", "accelerator": "tcg"}}}


@pytest.mark.parametrize(("document", "where"), [
    ({"/Runner": {"vm": {"name": "x", "accelertor": "tcg"}}}, "/Runner/vm"),
    ({"Runner": {"vm": {"name": "x"}}}, ""),
    ({}, ""),
    ({**MINIMAL, "Runner": {}}, ""),
    ({**MINIMAL, "/Runnr": {}}, ""),
    ({"/Runner": {**MINIMAL["/Runner"], "/Api": {"tokenFil": "t"}}}, "/Runner//Api"),
    ({**MINIMAL, "/Runner/PowerdownHandler": {"killGrase": 1}}, "/Runner/PowerdownHandler"),
    ({"/Runner": {**MINIMAL["/Runner"], "/PowerdownHandlr": {}}}, "/Runner"),
    ({"/Runner": {"vm": {"name": "x", "drives": [{"file": "a", "bootIndex": 1}]}}},
     "/Runner/vm/drives"),
], ids=["accelertor", "Runner-without-slash", "empty", "stray-Runner", "unknown-node", "Api-key",
        "PowerdownHandler-key", "unknown-child-node", "drive-key"])
def test_the_schema_rejects_unknown_keys_and_nodes(
        schema: dict[str, Any], document: dict[str, Any], where: str) -> None:
    found = errors(schema, document)
    assert found, f"{document} passed the schema"
    assert any(e.startswith(where + ":") for e in found), found


def test_what_the_runner_accepts_passes(schema: dict[str, Any]) -> None:
    assert errors(schema, {"_Runner": MINIMAL["/Runner"]}) == []
    assert errors(schema, MINIMAL) == []
    assert errors(schema, {"/Runner": {"vm": {"name": "x", "drives": [
        {"file": "a", "bootindex": 1}]}}}) == []
    assert errors(schema, {**MINIMAL, "/Runner/Api": {"listen": "127.0.0.1:1",
                                                      "tokenFile": "t"}}) == []


def _keys(model: type[BaseModel]) -> list[tuple[str, type[BaseModel]]]:
    """(key, model) for every key of ``model`` and of the models nested in it."""
    found, todo, seen = [], [model], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for name, info in current.model_fields.items():
            found.append((info.alias or name, current))
            sub = _submodel(info.annotation)
            if sub is not None:
                todo.append(sub)
    return found


def test_sample_documents_every_key_of_every_node() -> None:
    sample = (REPO / "examples" / "config-sample.yaml").read_text()
    missing = [f"{model.__name__}.{key}" for key, model in _keys(RunnerConfig)
               if f"{key}:" not in sample]
    for path, model in node_models().items():
        node = path.removeprefix("/Runner")
        if f'"{node}":' not in sample:
            missing.append(f"the node {node}")
        missing += [f"{node}/{key}" for key, _ in _keys(model) if f"{key}:" not in sample]
    assert missing == [], "examples/config-sample.yaml lacks " + ", ".join(missing)
