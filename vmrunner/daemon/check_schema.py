"""The configuration nodes of the standard runner, and docs/'s schema and reference for them.

:func:`node_models` finds every configurable component of the standard tree (the same
components :class:`~vmrunner.daemon.builder.RunnerBuilder` attaches) and the
``/Runner/Kubernetes`` node, so a new configurable component shows up in the JSON Schema,
docs/guide/configuration.md and the sample-completeness test without a list to maintain::

    python -m vmrunner.daemon.check_schema --json     > docs/config.schema.json
    python -m vmrunner.daemon.check_schema --markdown > docs/guide/configuration.md
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import BaseModel

from vmrunner.core import Component, Configurable


def node_models() -> dict[str, type[BaseModel]]:
    """Path → model of every node besides ``/Runner`` that the standard runner reads."""
    from vmrunner.components import BUS
    from vmrunner.daemon.builder import RUNNER_NODE, RunnerBuilder
    from vmrunner.kube.settings import KUBE_NODE, KubeNode

    root = Component(BUS, RUNNER_NODE.lstrip("/"))
    for component in RunnerBuilder(Path("config.yaml"), watch=False).components:
        root.attach(component)
    models: dict[str, type[BaseModel]] = {KUBE_NODE: KubeNode}
    for component in root.walk():
        if component is not root and isinstance(component, Configurable):
            models[component.component_path] = component.config_model
    return models


def main(argv: list[str] | None = None) -> int:
    """``--json`` or ``--markdown`` for every standard node (see the module docstring)."""
    from vmrunner.config.schema import main as schema_main

    return schema_main(argv, prog="python -m vmrunner.daemon.check_schema",
                       nodes=node_models())


if __name__ == "__main__":
    sys.exit(main())
