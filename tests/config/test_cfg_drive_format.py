"""A file disk's ``format`` (raw, the default, or qcow2) is the format node ``-blockdev`` gets
(a ``file`` protocol node under a ``raw``/``qcow2`` node); qcow2 anywhere but a raw drive's
``file`` is an error naming the drive's key path; a changed format needs a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vmrunner.config.model import RunnerConfig
from vmrunner.config.reload_plan import classify
from vmrunner.config.validate import validate_values
from vmrunner.events.config import PlanClass
from vmrunner.vmtypes.prepare import plan_start


def _values(tmp_path: Path, drives: list[dict[str, Any]]) -> dict[str, Any]:
    return {"dataDir": str(tmp_path / "data"), "runtimeDir": str(tmp_path / "run"),
            "vm": {"name": "d", "maximumRam": "256 MiB", "accelerator": "tcg",
                   "drives": drives}}


def _config(tmp_path: Path, drives: list[dict[str, Any]]) -> RunnerConfig:
    validation = validate_values(_values(tmp_path, drives))
    assert validation.config is not None and not validation.problems, validation.problems
    return validation.config


def _blockdevs(config: RunnerConfig) -> list[str]:
    args = list(plan_start(config).render(resolve_executables=False).qemu.arguments)
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == "-blockdev"]


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_the_format_is_the_disks_format_node(tmp_path: Path, fmt: str) -> None:
    image = tmp_path / "disk.img"
    blockdevs = _blockdevs(_config(tmp_path, [{"file": str(image), "format": fmt}]))
    assert (f"driver=file,node-name=disk0-file,filename={image},read-only=off,discard=unmap"
            in blockdevs)
    assert (f"driver={fmt},node-name=disk0,file=disk0-file,read-only=off,discard=unmap"
            in blockdevs)


def test_raw_is_the_default(tmp_path: Path) -> None:
    config = _config(tmp_path, [{"file": str(tmp_path / "disk.img")}])
    assert config.vm.drives[0].format == "raw"
    assert any(b.startswith("driver=raw,node-name=disk0,") for b in _blockdevs(config))


@pytest.mark.parametrize("drive", [
    {"device": "/dev/vg0/d", "format": "qcow2"},
    {"resource": "/dev/d", "format": "qcow2"},
    {"type": "ide-cd", "file": "/srv/d.iso", "format": "qcow2"},
])
def test_qcow2_only_for_a_file_disk(tmp_path: Path, drive: dict[str, Any]) -> None:
    validation = validate_values(_values(tmp_path, [{"type": "ide-cd"}, drive]))
    assert validation.config is None
    assert [p.path for p in validation.problems] == ["/Runner/vm/drives/1"]
    assert "'format: qcow2' applies to a raw drive's 'file' only" in (
        validation.problems[0].message)


def test_an_unknown_format_names_the_key(tmp_path: Path) -> None:
    validation = validate_values(_values(tmp_path, [{"file": "/d.img", "format": "vmdk"}]))
    assert validation.config is None
    assert [p.path for p in validation.problems] == ["/Runner/vm/drives/0/format"]


def test_a_changed_format_needs_a_restart(tmp_path: Path) -> None:
    image = str(tmp_path / "disk.img")
    old = _config(tmp_path, [{"file": image}])
    new = _config(tmp_path, [{"file": image, "format": "qcow2"}])
    [entry] = classify(old, new)
    assert (entry.path, entry.old, entry.new) == ("/Runner/vm/drives/0/format", "raw", "qcow2")
    assert entry.klass is PlanClass.RESTART
