"""CD-ROM drive ids and key paths as the CdromController derives them from the config
(the standard template numbers ``ide-cd`` drives ``cd0``, ``cd1``... in list order)."""

from __future__ import annotations

from pathlib import Path

from vmrunner.components.cdrom import cdrom_drives
from vmrunner.config.validate import validate_values


def test_ids_count_cdroms_only_and_keys_name_the_list_index(tmp_path: Path) -> None:
    validation = validate_values({"vm": {"name": "t", "drives": [
        {"file": "disk.img"},
        {"type": "ide-cd", "file": "a.iso", "forceAfter": 30},
        {"file": "/dev/null"},
        {"type": "ide-cd", "bus": "scsi"},
    ]}}, base_dir=tmp_path)
    assert validation.config is not None, validation.problems
    drives = cdrom_drives(validation.config)
    assert [(d.id, d.key, d.file, d.force_after) for d in drives] == [
        ("cd0", "/Runner/vm/drives/1", tmp_path / "a.iso", 30.0),
        ("cd1", "/Runner/vm/drives/3", None, None),
    ]


def test_force_after_is_for_cdroms_only(tmp_path: Path) -> None:
    validation = validate_values({"vm": {"name": "t", "drives": [
        {"file": "disk.img", "forceAfter": 5}]}}, base_dir=tmp_path)
    assert not validation.ok
    assert any(str(p).startswith("/Runner/vm/drives/0") and "ide-cd only" in str(p)
               for p in validation.errors), validation.problems
