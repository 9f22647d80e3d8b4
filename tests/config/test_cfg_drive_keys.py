"""Drive keys mean what they say (issue 15, item 5): the model, and so the reload plan,
shows the bus the template renders (a raw drive is a virtio-blk-pci disk: ``virtio``, not
``ide``), a CD is ``readOnly: true``; another ``bus`` on a raw drive, ``virtio`` on an ide-cd,
``readOnly: false`` on an ide-cd are errors naming the key path; ``readOnly: true`` on an
ide-cd is accepted silently (it states what is true anyway).

A file disk's ``format`` (raw, the default, or qcow2, issue 18 item 4) is the format node
``-blockdev`` gets (a ``file`` protocol node under a ``raw``/``qcow2`` node); qcow2 anywhere
but a raw drive's ``file`` is an error naming the drive's key path; a changed format needs a
restart."""

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


def test_the_plan_shows_the_bus_the_template_renders(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    old = _config(tmp_path, [{"type": "ide-cd"}])
    new = _config(tmp_path, [{"type": "ide-cd"}, {"type": "raw", "file": str(disk)}])
    [entry] = classify(old, new)
    assert entry.path == "/Runner/vm/drives/1"
    assert dict(entry.new)["bus"] == "virtio"
    args = list(plan_start(new).render(resolve_executables=False).qemu.arguments)
    devices = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "-device"]
    assert "virtio-blk-pci,drive=disk0,id=disk0" in devices
    assert any(d.startswith("ide-cd,") for d in devices)  # the CD keeps its own bus
    [cd_entry] = classify(_config(tmp_path, []), old)
    assert dict(cd_entry.new)["bus"] == "ide"


@pytest.mark.parametrize("drive, message", [
    ({"type": "raw", "file": "/d.img", "bus": "scsi"},
     "a raw drive is always a virtio-blk disk: 'bus' can only be 'virtio'"),
    ({"file": "/d.img", "bus": "ide"},
     "a raw drive is always a virtio-blk disk: 'bus' can only be 'virtio'"),
    ({"type": "ide-cd", "bus": "virtio"}, "an ide-cd drive's bus is 'ide' or 'scsi'"),
    ({"type": "ide-cd", "readOnly": False},
     "an ide-cd drive is always read-only: 'readOnly: false' cannot be honoured"),
])
def test_meaningless_drive_keys_are_errors(tmp_path: Path, drive: dict[str, Any],
                                           message: str) -> None:
    validation = validate_values(_values(tmp_path, [{"type": "ide-cd"}, drive]))
    assert validation.config is None
    assert [p.path for p in validation.problems] == ["/Runner/vm/drives/1"]
    assert message in validation.problems[0].message


def test_read_only_true_on_a_cd_is_accepted_silently(tmp_path: Path) -> None:
    config = _config(tmp_path, [{"type": "ide-cd", "readOnly": True, "bus": "scsi"}])
    assert config.vm.drives[0].read_only is True


def test_the_model_tells_the_bus_and_round_trips(tmp_path: Path) -> None:
    config = _config(tmp_path, [{"file": "/d.img"}, {"type": "ide-cd"}])
    assert [(d.bus, d.read_only) for d in config.vm.drives] == [("virtio", False),
                                                                ("ide", True)]
    again = RunnerConfig.model_validate(config.model_dump(mode="json", by_alias=True))
    assert again == config


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
