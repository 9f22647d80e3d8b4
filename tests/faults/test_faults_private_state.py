"""The VM's directories and files are the runner's own (issue 15, item 6 "Security"): an
existing dataDir or runtimeDir of another user, or writable by others, or under a directory
another user controls, ends the start with ``HOST_ERROR`` (7) and a message naming the
directory, its owner and mode and the fix; files the runner writes there are 0600 and never
written through a planted link.

Real directories (``chown`` to another uid needs root), the real ``vmrunner run``; QEMU is
never needed: the runs end before it starts, or at its start (an empty kernel image, which QEMU
refuses).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from vmrunner.components.exit_codes import ExitCode
from vmrunner.testing.runnerproc import run_to_exit

NOBODY = 65534

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")


def _config(base: Path, data: Path, run: Path, **extra: Any) -> Path:
    path = base / "config.yaml"
    kernel = base / "empty-kernel"
    kernel.touch()
    vm = {"name": "priv", "firmware": "bios", "accelerator": "tcg", "maximumRam": "64 MiB",
          "network": [], "kernel": {"image": str(kernel)}}
    path.write_text(yaml.safe_dump({"/Runner": {
        "dataDir": str(data), "runtimeDir": str(run), "vm": vm, **extra}}))
    return path


@needs_root
async def test_runtime_dir_of_another_user_is_refused(base: Path) -> None:
    run = base / "run"
    run.mkdir(mode=0o700)
    os.chown(run, NOBODY, NOBODY)
    code, log = await run_to_exit(_config(base, base / "data", run))
    assert code == ExitCode.HOST_ERROR, log
    assert f"/Runner/runtimeDir: {run} is owned by" in log and "uid 65534" in log, log
    assert "mode 0700" in log and "remove it or give it to" in log, log
    assert list(run.iterdir()) == [], "nothing may be created in a foreign directory"
    assert "started qemu" not in log


@needs_root
async def test_world_writable_data_dir_with_a_foreign_file_is_refused(base: Path) -> None:
    data = base / "data"
    data.mkdir()
    data.chmod(0o777)
    planted = data / "VM.yaml.mako"
    planted.write_text("planted\n")
    os.chown(planted, NOBODY, NOBODY)
    code, log = await run_to_exit(_config(base, data, base / "run"))
    assert code == ExitCode.HOST_ERROR, log
    assert (f"/Runner/dataDir: {data} had mode 0777 (writable by its group and others): made "
            "it 0700") in log, log
    assert (f"cannot prepare the VM: /Runner/dataDir: {data} holds {planted}, owned by "
            "nobody (uid 65534): planted by another user? remove it") in log, log
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert planted.read_text() == "planted\n"
    assert "started qemu" not in log
    code, log = await run_to_exit(_config(base, data, base / "run"))  # refused until removed
    assert code == ExitCode.HOST_ERROR, log
    assert f"{data} holds {planted}, owned by nobody" in log, log


async def test_world_writable_dirs_of_ours_are_made_private(base: Path) -> None:
    """A Kubernetes emptyDir (or local-path volume) is a 0777 directory of root's, empty at
    first, with the VM's own files after a restart."""
    data, run = base / "data", base / "run"
    for directory in (data, run):
        directory.mkdir()
        directory.chmod(0o777)
    (data / "uuid.txt").write_text("6f1c3f4e-6e0e-4d51-9a53-7b3c2f6f2a10\n")
    code, log = await run_to_exit(_config(base, data, run))
    assert code == ExitCode.START_FAILED, log  # got as far as QEMU: an empty kernel
    assert (f"WARNING vmrunner.vmtypes.private: /Runner/dataDir: {data} had mode 0777 "
            "(writable by its group and others): made it 0700") in log, log
    assert f"/Runner/runtimeDir: {run} had mode 0777" in log, log
    assert {stat.S_IMODE(d.stat().st_mode) for d in (data, run)} == {0o700}


@needs_root
async def test_a_directory_under_another_users_directory_is_refused(base: Path) -> None:
    """What a ``/tmp/<user>`` fallback pre-created by another local user looks like: the
    runner's own directory below it would be created, but that user could swap it."""
    foreign = base / "user"
    foreign.mkdir()
    os.chown(foreign, NOBODY, NOBODY)
    foreign.chmod(0o777)
    code, log = await run_to_exit(_config(base, base / "data", foreign / "vmrunner" / "priv"))
    assert code == ExitCode.HOST_ERROR, log
    assert f"{foreign} (above {foreign}/vmrunner/priv) is owned by" in log, log
    assert "started qemu" not in log


@pytest.mark.parametrize("where, name", [
    ("run", ".cloud-init.img.tmp"),
    ("data", ".uuid.txt.tmp"),
    ("data", ".VM.yaml.mako.tmp"),
])
async def test_a_planted_link_is_not_followed(base: Path, where: str, name: str) -> None:
    victim = base / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    dirs = {"data": base / "data", "run": base / "run"}
    for directory in dirs.values():
        directory.mkdir(mode=0o700)
    link = dirs[where] / name
    link.symlink_to(victim)
    code, log = await run_to_exit(_config(base, dirs["data"], dirs["run"],
                                   cloudInit={"userData": {"hostname": "x"}}))
    assert code == ExitCode.HOST_ERROR, log
    assert f"{link} is a symbolic link, planted where the runner writes a new file" in log, log
    assert victim.read_text() == "precious\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert "started qemu" not in log


async def test_links_at_the_final_names_are_replaced_not_followed(base: Path) -> None:
    victim = base / "victim"
    victim.write_text("precious\n")
    data, run = base / "data", base / "run"
    data.mkdir(mode=0o700)
    run.mkdir(mode=0o700)
    for link in (run / "cloud-init.img", data / "VM.yaml.mako"):
        link.symlink_to(victim)
    code, log = await run_to_exit(_config(base, data, run, cloudInit={"userData": {}}))
    assert code == ExitCode.START_FAILED, log  # got as far as QEMU: an empty kernel
    assert victim.read_text() == "precious\n"
    assert not (run / "cloud-init.img").is_symlink()
    assert not (data / "VM.yaml.mako").is_symlink()


async def test_state_files_are_owner_only(base: Path) -> None:
    data, run = base / "data", base / "run"
    config = _config(base, data, run, cloudInit={"userData": {}})
    code, log = await run_to_exit(config)
    assert code == ExitCode.START_FAILED, log  # got as far as QEMU: an empty kernel
    # (runtimeDir's cloud-init.img is removed at the exit; it is written like these)
    written = [data / "uuid.txt", data / "VM.yaml.mako", data / "VM.yaml.mako.source"]
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in written}
    assert modes == {p.name: "0o600" for p in written}
    assert not [p for p in (*data.iterdir(), *run.iterdir()) if p.name.endswith(".tmp")]
    # files of older versions (0644) are tightened at the next start
    for path in written:
        path.chmod(0o644)
    code, log = await run_to_exit(config)
    assert code == ExitCode.START_FAILED, log
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in written} == modes


def test_a_stale_temporary_file_of_ours_is_replaced(tmp_path: Path) -> None:
    """What a runner killed while writing leaves behind does not block the next start."""
    from vmrunner.vmtypes.private import write_private_bytes

    (tmp_path / ".uuid.txt.tmp").write_text("half a uu")
    write_private_bytes(tmp_path / "uuid.txt", "/Runner/dataDir", b"whole\n")
    assert (tmp_path / "uuid.txt").read_text() == "whole\n"
    assert stat.S_IMODE((tmp_path / "uuid.txt").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["uuid.txt"]
