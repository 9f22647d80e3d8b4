"""A configuration full of unknown keys costs little (issue 15, item 6): the document has at
most ``MAX_NODES`` nodes (the same reader for ``check``, the start and every live re-read),
and past ``MAX_UNKNOWN_LISTED`` unknown keys one warning counts the rest (no did-you-mean is
computed for them). Real files, the real ``vmrunner check`` where the output is claimed."""

from __future__ import annotations

import itertools
import string
import subprocess
import sys
import time
from pathlib import Path

from pydantic import BaseModel

from vmrunner.config.validate import MAX_UNKNOWN_LISTED, load_config
from vmrunner.core.config.loader import MAX_NODES
from vmrunner.core.config.validation import MAX_LISTED, validate


def _keys(count: int) -> list[str]:
    """``count`` distinct plain keys none of which YAML reads as a bool, null or number."""
    letters = string.ascii_lowercase
    words = ("".join(p) for p in itertools.product(letters, repeat=4))
    return list(itertools.islice((f"k{w}" for w in words), count))


def _write(path: Path, unknown: int) -> Path:
    body = ", ".join(_keys(unknown))
    path.write_text(f'"/Runner":\n  vm: {{name: big, maximumRam: 256 MiB, {body}}}\n')
    return path


def test_a_document_over_the_node_bound_is_refused_quickly(tmp_path: Path) -> None:
    config = _write(tmp_path / "c.yaml", 140_000)  # ~1 MB: under the size bound
    assert config.stat().st_size < 1 << 20
    started = time.monotonic()
    validation = load_config(config)
    elapsed = time.monotonic() - started
    assert [str(p) for p in validation.problems] == [
        f"{config}:2: more than {MAX_NODES} nodes (keys and values)"]
    assert elapsed < 5, elapsed  # was 32 s for `check` (difflib on 200 000 warnings)


def test_unknown_keys_past_the_limit_are_counted_in_one_warning(tmp_path: Path) -> None:
    config = _write(tmp_path / "c.yaml", 1000)
    result = subprocess.run([sys.executable, "-m", "vmrunner", "check", "-c", str(config)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = (result.stdout + result.stderr).splitlines()
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert len(warnings) == MAX_UNKNOWN_LISTED + 1, warnings
    assert warnings[0] == "warning: /Runner/vm/kaaaa: unknown key"
    assert warnings[-1] == (f"warning: /Runner: {1000 - MAX_UNKNOWN_LISTED} more unknown keys "
                            "(not listed; 1000 in all)")


def test_a_few_unknown_keys_are_each_named_with_a_hint(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text('"/Runner":\n  vm: {name: x, maximumRam: 1 GiB, accelertor: tcg}\n')
    assert [str(p) for p in load_config(config).warnings] == [
        "warning: /Runner/vm/accelertor: unknown key (did you mean 'accelerator'?)"]


class _Node(BaseModel):
    known: int = 0


def test_component_nodes_summarise_unknown_keys_too() -> None:
    values = {"known": 1, **{f"k{i}": i for i in range(MAX_LISTED + 5)}}
    outcome = validate(_Node, "/Runner/Api", values)
    assert outcome.config is not None
    assert len(outcome.warnings) == MAX_LISTED + 1
    assert outcome.warnings[0] == "/Runner/Api/k0: unknown key"
    assert outcome.warnings[-1] == "/Runner/Api: 5 more unknown keys (not listed; 25 in all)"
