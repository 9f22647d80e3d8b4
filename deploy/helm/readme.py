"""Write deploy/helm/vmrunner/README.md from values.schema.json and values.yaml.

One table row per value: the leaves of the schema's nested objects, each with its type, its
default from values.yaml and the schema's ``description`` (required: a value without one is
an error naming it). ``--check`` writes nothing and exits 1 when the README is not current
(tests/deploy/test_chart_readme.py runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent / "vmrunner"
README = CHART / "README.md"
HEADER = """# vmrunner Helm chart

One QEMU virtual machine in a pod, started and supervised by vmrunner. The full guide,
security modes, the resource formula and the production checklist are in
[docs/guide/kubernetes.md](../../../docs/guide/kubernetes.md).

```sh
helm install vm1 deploy/helm/vmrunner -n vms -f vm1-values.yaml
```

## Values

Generated from `values.schema.json` and `values.yaml` by `python deploy/helm/readme.py`;
do not edit by hand.

| Value | Type | Default | Description |
|---|---|---|---|
"""


def _type(node: dict[str, Any]) -> str:
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    kind = node.get("type")
    if kind is None:
        for option in node.get("allOf", []) + node.get("oneOf", []):
            if "$ref" in option:
                return "object"
        return "any"
    return " \\| ".join(kind) if isinstance(kind, list) else str(kind)


def _default(values: object, path: list[str]) -> str:
    node = values
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return ""
        node = node[key]
    text = json.dumps(node, ensure_ascii=False)
    return f"`{text}`" if len(text) <= 40 else "see values.yaml"


def rows(schema: dict[str, Any], values: object, prefix: list[str]) -> list[str]:
    """The table rows of ``schema``'s properties under the value path ``prefix``."""
    out: list[str] = []
    for key, node in schema.get("properties", {}).items():
        path = [*prefix, key]
        name = ".".join(path)
        if "description" not in node:
            raise SystemExit(f"values.schema.json: {name} has no description")
        description = " ".join(node["description"].split()).replace("|", "\\|")
        if node.get("properties"):
            out.append(f"| `{name}` | object | | {description} |")
            out.extend(rows(node, values, path))
        else:
            out.append(f"| `{name}` | {_type(node)} | {_default(values, path)} | {description} |")
    return out


def render() -> str:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    return HEADER + "\n".join(rows(schema, values, [])) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        current = README.read_text(encoding="utf-8") if README.exists() else ""
        if current != text:
            print(f"{README} is stale: run python deploy/helm/readme.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
