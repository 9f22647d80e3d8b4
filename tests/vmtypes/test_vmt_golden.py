"""`vmrunner render` of each example config, compared with tests/data/golden/<name>.txt.

To keep the output independent of the machine's state, each example is copied into a temporary
directory with dataDir/runtimeDir pointed at /nonexistent (so no saved template copy or stored
uuid is picked up) and ``accelerator: auto`` rendered as ``tcg`` (auto decides by the host's KVM);
the temporary directory is shown as <config-dir> and the repository as
<repo>. Regenerate after an intended change with:

    VMRUNNER_REGEN_GOLDEN=1 python -m pytest tests/vmtypes/test_vmt_golden.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
GOLDEN = REPO / "tests" / "data" / "golden"


def render(example: Path, tmp_path: Path) -> str:
    document = yaml.safe_load(example.read_text())
    runner = document["/Runner"]
    name = runner["vm"]["name"]
    runner["dataDir"] = f"/nonexistent/{name}/data"
    runner["runtimeDir"] = f"/nonexistent/{name}/run"
    if runner["vm"].get("accelerator") == "auto":
        runner["vm"]["accelerator"] = "tcg"
    config = tmp_path / example.name
    config.write_text(yaml.safe_dump(document))
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    result = subprocess.run([sys.executable, "-m", "vmrunner", "render", "-c", str(config)],
                            capture_output=True, text=True, env=env, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.replace(str(tmp_path), "<config-dir>").replace(str(REPO), "<repo>")


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.stem for e in EXAMPLES])
def test_render_matches_golden(example: Path, tmp_path: Path) -> None:
    output = render(example, tmp_path)
    golden = GOLDEN / f"{example.stem}.txt"
    if os.environ.get("VMRUNNER_REGEN_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(output)
    assert golden.exists(), f"no golden file {golden}; set VMRUNNER_REGEN_GOLDEN=1"
    assert output == golden.read_text()
