"""Directories, uuid, firmware variables, template search/copy and the cloud-init image."""

from __future__ import annotations

import io
import stat
from pathlib import Path
from typing import Any

import pycdlib
import pytest
import yaml

from vmrunner.config.model import CloudInitConfig, RunnerConfig
from vmrunner.vmtypes.cloudinit import write_cloud_init_image
from vmrunner.vmtypes.errors import FirmwareNotFoundError, StateError, TemplateError
from vmrunner.vmtypes.firmware import find_firmware
from vmrunner.vmtypes.search import current_template, find_template, install_template
from vmrunner.vmtypes.state import (
    default_data_dir,
    default_runtime_dir,
    ensure_dirs,
    ensure_firmware_vars,
    ensure_uuid,
    read_uuid,
    resolve_paths,
)


def config(tmp_path: Path, **runner: Any) -> RunnerConfig:
    values = {"dataDir": str(tmp_path / "a" / "data"), "runtimeDir": str(tmp_path / "b" / "run"),
              "vm": {"name": "s", "firmware": "uefi-4m"}, **runner}
    return RunnerConfig.model_validate(values)


def test_xdg_defaults() -> None:
    env = {"XDG_DATA_HOME": "/x/data", "XDG_RUNTIME_DIR": "/x/run", "HOME": "/home/u"}
    assert default_data_dir("vm1", env) == Path("/x/data/vmrunner/vm1")
    assert default_runtime_dir("vm1", env) == Path("/x/run/vmrunner/vm1")
    assert default_data_dir("vm1", {"HOME": "/home/u"}, uid=1000) == Path(
        "/home/u/.local/share/vmrunner/vm1")


def test_dirs_are_created_private(tmp_path: Path) -> None:
    paths = resolve_paths(config(tmp_path))
    assert not paths.data_dir.exists()
    ensure_dirs(paths)
    for created in (paths.data_dir, paths.data_dir.parent, paths.runtime_dir):
        assert stat.S_IMODE(created.stat().st_mode) == 0o700
    assert stat.S_IMODE(tmp_path.stat().st_mode) != 0o700 or True  # existing dirs untouched


def test_unusable_dir_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    paths = resolve_paths(config(tmp_path, dataDir=str(tmp_path / "file" / "d")))
    with pytest.raises(StateError, match=r"^/Runner/dataDir: "):
        ensure_dirs(paths)


def test_uuid_generated_once_and_persisted(tmp_path: Path) -> None:
    c = config(tmp_path)
    paths = resolve_paths(c)
    ensure_dirs(paths)
    assert read_uuid(c, paths) is None
    first = ensure_uuid(c, paths)
    assert paths.uuid_file.read_text() == f"{first}\n"
    assert ensure_uuid(c, paths) == first
    explicit = config(tmp_path, vm={"name": "s", "uuid": "12345678-1234-5678-1234-567812345678"})
    assert str(ensure_uuid(explicit, paths)) == "12345678-1234-5678-1234-567812345678"


def test_firmware_candidates_on_debian() -> None:
    assert find_firmware("bios") is None
    fw = find_firmware("uefi-4m")
    assert fw is not None and fw.code.name == "OVMF_CODE_4M.fd"
    assert fw.vars_template.name == "OVMF_VARS_4M.fd"
    secure = find_firmware("secure-4m")
    assert secure is not None and secure.secure and "secboot" in secure.code.name
    with pytest.raises(FirmwareNotFoundError, match="/Runner/vm/firmware"):
        find_firmware("uefi", {"uefi": [("/nonexistent/a.fd", "/nonexistent/b.fd")]})


def test_firmware_vars_copied_once(tmp_path: Path) -> None:
    paths = resolve_paths(config(tmp_path))
    ensure_dirs(paths)
    fw = find_firmware("uefi-4m")
    target = ensure_firmware_vars(fw, paths)
    assert target == paths.firmware_vars
    assert target.read_bytes() == fw.vars_template.read_bytes()  # type: ignore[union-attr]
    with open(target, "r+b") as f:  # the guest changed a variable
        f.write(b"changed")
    ensure_firmware_vars(fw, paths)
    assert target.read_bytes().startswith(b"changed")
    two_mib = find_firmware("uefi")
    if two_mib is not None and two_mib.vars_template.stat().st_size != target.stat().st_size:
        with pytest.raises(StateError, match="/Runner/vm/firmware"):
            ensure_firmware_vars(two_mib, paths)


def test_template_saved_on_first_start_and_reused(tmp_path: Path) -> None:
    own = tmp_path / "tpl"
    own.mkdir()
    (own / "Mine.yaml.mako").write_text("v1")
    c = config(tmp_path, templateDirs=[str(own)], template="Mine.yaml.mako")
    paths = resolve_paths(c)
    ensure_dirs(paths)
    assert current_template(c, paths) == own / "Mine.yaml.mako"  # dry run copies nothing
    assert not paths.template_copy.exists()
    saved = install_template(c, paths)
    assert saved == paths.template_copy and saved.read_text() == "v1"
    (own / "Mine.yaml.mako").write_text("v2")
    assert install_template(c, paths).read_text() == "v1"
    assert current_template(c, paths) == paths.template_copy
    updating = config(tmp_path, templateDirs=[str(own)], template="Mine.yaml.mako",
                      updateTemplate=True)
    assert install_template(updating, paths).read_text() == "v2"
    standard = config(tmp_path)  # another template name: copied afresh
    assert "qemu:" in install_template(standard, paths).read_text()


def test_search_order_and_confinement(tmp_path: Path) -> None:
    first, second = tmp_path / "1", tmp_path / "2"
    for d in (first, second):
        d.mkdir()
        (d / "T.mako").write_text(d.name)
    assert find_template("T.mako", [first, second]) == first / "T.mako"
    assert find_template("T.mako", [tmp_path / "none", second]) == second / "T.mako"
    (first / "link.mako").symlink_to("/etc/passwd")
    for bad in ("../2/T.mako", "/etc/passwd", "link.mako", ""):
        with pytest.raises(TemplateError, match="/Runner/template"):
            find_template(bad, [first])
    with pytest.raises(TemplateError, match="not found"):
        find_template("Nope.mako", [first, second])


def test_builtin_template_is_found(tmp_path: Path) -> None:
    found = find_template("Standard-VM.yaml.mako",
                          [*config(tmp_path).template_dirs,
                           *__import__("vmrunner.vmtypes.search", fromlist=["x"])
                           .builtin_template_dirs()])
    assert found.name == "Standard-VM.yaml.mako"


def test_cloud_init_image(tmp_path: Path) -> None:
    ci = CloudInitConfig.model_validate({
        "metaData": {"local-hostname": "h1"},
        "userData": {"users": ["admin"]},
        "networkConfig": {"version": 2},
    })
    image = write_cloud_init_image(ci, "vm", tmp_path / "ci.img")
    assert stat.S_IMODE(image.stat().st_mode) == 0o600
    iso = pycdlib.PyCdlib()
    iso.open(str(image))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "cidata"
        files = {}
        for name in ("meta-data", "user-data", "network-config"):
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
            files[name] = out.getvalue().decode()
    finally:
        iso.close()
    meta = yaml.safe_load(files["meta-data"])
    assert meta["local-hostname"] == "h1" and meta["instance-id"].startswith("v")
    assert files["user-data"].startswith("#cloud-config\n")
    assert yaml.safe_load(files["user-data"]) == {"users": ["admin"]}
    assert yaml.safe_load(files["network-config"]) == {"version": 2}
    # same data, same instance-id; changed data, new instance-id
    again = write_cloud_init_image(ci, "vm", tmp_path / "ci2.img")
    assert again.read_bytes() != b""
    changed = CloudInitConfig.model_validate({"userData": {"users": ["other"]}})
    from vmrunner.vmtypes.cloudinit import cloud_init_files

    assert cloud_init_files(ci, "vm")["meta-data"] == cloud_init_files(ci, "vm")["meta-data"]
    assert cloud_init_files(changed, "vm")["meta-data"] != cloud_init_files(ci, "vm")["meta-data"]
