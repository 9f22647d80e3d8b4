"""Host-side failures are not configuration errors (issue 15, item 5): a read-only or full
filesystem under dataDir ends the start with ``HOST_ERROR`` (7), naming the key and the path,
so a unit's ``RestartPreventExitStatus=2`` does not keep the VM down after a transient
ENOSPC/EROFS; and ``runner.pid`` is never written through a link planted in runtimeDir.

Real tmpfs mounts (root only); the runner is the real ``vmrunner run``. QEMU is never needed:
the runs end before it starts, or at its start (a kernel that does not exist).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from vmrunner.components.exit_codes import ExitCode
from vmrunner.testing.runnerproc import run_to_exit


def _config(base: Path, data_dir: Path) -> Path:
    path = base / "config.yaml"
    vm = {"name": "host", "firmware": "bios", "accelerator": "tcg", "maximumRam": "64 MiB",
          "network": [], "kernel": {"image": str(base / "vmlinuz")}}
    (base / "vmlinuz").write_bytes(b"")  # never booted: the state directories fail first
    path.write_text(yaml.safe_dump({"/Runner": {
        "dataDir": str(data_dir), "runtimeDir": str(base / "run"), "vm": vm}}))
    return path


async def test_read_only_data_dir_is_a_host_error(
        base: Path, tmpfs: Callable[[str], Path]) -> None:
    mount = tmpfs("ro,size=1m")
    code, log = await run_to_exit(_config(base, mount / "data"))
    assert code == ExitCode.HOST_ERROR, log
    assert "/Runner/dataDir: cannot create" in log and "Read-only file system" in log, log
    assert "started qemu" not in log


async def test_full_data_dir_is_a_host_error(
        base: Path, tmpfs: Callable[[str], Path]) -> None:
    mount = tmpfs("size=64k")
    fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    code, log = await run_to_exit(_config(base, mount / "data"))
    assert code == ExitCode.HOST_ERROR, log
    assert "No space left on device" in log, log
    assert "started qemu" not in log


async def test_runner_pid_is_never_written_through_a_planted_link(base: Path) -> None:
    victim = base / "victim"
    victim.write_text("precious\n")
    runtime = base / "run"
    runtime.mkdir(mode=0o700)
    (runtime / "runner.pid").symlink_to(victim)
    code, log = await run_to_exit(_config(base, base / "data"))
    assert code == ExitCode.START_FAILED, log  # the kernel does not exist: QEMU refuses
    assert victim.read_text() == "precious\n"
    assert not [p for p in runtime.iterdir() if p.name.startswith(".runner.pid")]
