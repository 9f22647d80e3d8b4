"""VmLock without a VM: the lock files, the holder's pid, a shared directory, symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vmrunner.config.model import RunnerConfig
from vmrunner.vmtypes.lock import LOCK_NAME, AlreadyRunning, VmLock, lock_vm
from vmrunner.vmtypes.state import VmPaths


def _paths(tmp_path: Path, runtime: str = "run") -> VmPaths:
    for name in ("data", runtime):
        (tmp_path / name).mkdir(exist_ok=True)
    return VmPaths(data_dir=tmp_path / "data", runtime_dir=tmp_path / runtime)


def test_both_files_hold_the_pid_and_a_second_lock_is_refused(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    first = VmLock(paths)
    first.acquire()
    for directory in (paths.data_dir, paths.runtime_dir):
        lock = directory / LOCK_NAME
        assert lock.read_text() == f"{os.getpid()}\n"
        assert os.lstat(lock).st_mode & 0o777 == 0o600
    # flock conflicts between open file descriptions, in one process too
    with pytest.raises(AlreadyRunning, match=rf"another runner \(pid {os.getpid()}\)"):
        VmLock(paths).acquire()
    first.release()
    again = VmLock(paths)
    again.acquire()
    assert again.held
    again.release()


def test_a_directory_shared_with_another_vm_is_enough_to_refuse(tmp_path: Path) -> None:
    first = VmLock(_paths(tmp_path, "run-a"))
    first.acquire()
    second = VmLock(_paths(tmp_path, "run-b"))  # same dataDir, its own runtimeDir
    with pytest.raises(AlreadyRunning) as refused:
        second.acquire()
    assert refused.value.path == tmp_path / "data" / LOCK_NAME
    assert not second.held
    first.release()


def test_one_directory_for_both_is_locked_once(tmp_path: Path) -> None:
    same = VmPaths(data_dir=tmp_path, runtime_dir=tmp_path)
    lock = VmLock(same)
    lock.acquire()
    assert lock.files == (tmp_path / LOCK_NAME,)
    lock.release()
    alias = tmp_path / "alias"
    alias.symlink_to(tmp_path)  # the same directory by another name: still one lock
    lock = VmLock(VmPaths(data_dir=tmp_path, runtime_dir=alias))
    lock.acquire()
    assert lock.held
    lock.release()


def test_a_symlinked_lock_file_is_refused(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    target = tmp_path / "victim"
    target.write_text("keep\n")
    (paths.runtime_dir / LOCK_NAME).symlink_to(target)
    lock = VmLock(paths)
    with pytest.raises(OSError):
        lock.acquire()
    assert not lock.held
    assert target.read_text() == "keep\n"


def test_lock_vm_creates_the_directories(tmp_path: Path) -> None:
    config = RunnerConfig.model_validate({
        "dataDir": str(tmp_path / "d" / "data"), "runtimeDir": str(tmp_path / "r" / "run"),
        "vm": {"name": "t", "maximumRam": "256 MiB"}})
    lock = lock_vm(config)
    assert (tmp_path / "d" / "data" / LOCK_NAME).exists()
    assert os.stat(tmp_path / "r" / "run").st_mode & 0o777 == 0o700
    lock.release()
