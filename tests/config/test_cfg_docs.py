"""The generated configuration reference and JSON Schema are up to date and fit the examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from vmrunner.config.schema import json_schema, markdown

REPO = Path(__file__).resolve().parents[2]


def test_markdown_reference_is_current() -> None:
    assert (REPO / "docs" / "configuration.md").read_text() == markdown(), (
        "regenerate: python -m vmrunner.config.schema --markdown > docs/configuration.md")


def test_json_schema_is_current() -> None:
    assert json.loads((REPO / "docs" / "config.schema.json").read_text()) == json_schema(), (
        "regenerate: python -m vmrunner.config.schema --json > docs/config.schema.json")


@pytest.mark.parametrize("example", sorted((REPO / "examples").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_examples_fit_the_schema(example: Path) -> None:
    import jsonschema  # a test extra: the examples must really be checked
    jsonschema.validate(yaml.safe_load(example.read_text()), json_schema())


def test_sample_documents_every_key() -> None:
    from vmrunner.config.model import RunnerConfig

    sample = (REPO / "examples" / "config-sample.yaml").read_text()
    models = [RunnerConfig]
    seen = set()
    while models:
        model = models.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            assert f"{info.alias or name}:" in sample, f"{info.alias or name} missing"
            from vmrunner.config.schema import _submodel

            sub = _submodel(info.annotation)
            if sub is not None:
                models.append(sub)
