"""The files a configuration names must exist: ``check`` and ``run`` refuse a missing one with
its key path before anything is spawned; ``check --no-host-files`` skips that (issue 18,
item 3). Real subprocesses, real files and devices of this host."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = """"/Runner":
  dataDir: {base}/data
  runtimeDir: {base}/run
  vm:
    name: files
    firmware: bios
    accelerator: tcg
    maximumRam: 64 MiB
    network: []
    kernel: {{image: {base}/vmlinuz, initrd: {base}/initrd.img}}
    drives:
    - {{type: raw, file: {base}/disk.img}}
    - {{type: ide-cd, file: {base}/cd.iso}}
    - {{type: ide-cd, file: ""}}
    - {{type: raw, device: {base}/disk.img}}
    - {{type: raw, resource: /dev/null}}
    display: {{spice: {{passwordFile: {base}/spice-password}}}}
  "/Api": {{listen: "127.0.0.1:9999", tokenFile: {base}/token}}
"""
FILES = ("vmlinuz", "initrd.img", "disk.img", "cd.iso", "spice-password", "token")


def vmrunner(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmrunner", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def config(tmp_path: Path, text: str = CONFIG) -> Path:
    file = tmp_path / "config.yaml"
    file.write_text(text.format(base=tmp_path))
    return file


def test_every_missing_file_is_an_error_naming_its_key(tmp_path: Path) -> None:
    done = vmrunner("check", "-c", str(config(tmp_path)))
    assert done.returncode == 2, done
    lines = set(done.stdout.splitlines())
    base = tmp_path
    assert {f"/Runner/vm/drives/0/file: {base}/disk.img does not exist",
            f"/Runner/vm/drives/1/file: {base}/cd.iso does not exist",
            f"/Runner/vm/drives/3/device: {base}/disk.img does not exist",
            "/Runner/vm/drives/4/resource: /dev/null is not a block device",
            f"/Runner/vm/kernel/image: {base}/vmlinuz does not exist",
            f"/Runner/vm/kernel/initrd: {base}/initrd.img does not exist",
            f"/Runner/vm/display/spice/passwordFile: {base}/spice-password does not exist",
            f"/Runner/Api/tokenFile: {base}/token does not exist"} <= lines, done.stdout
    assert "drives/2" not in done.stdout  # the empty CD tray needs no file


def test_present_files_pass_and_a_device_must_be_a_block_device(tmp_path: Path) -> None:
    for name in FILES:
        (tmp_path / name).write_bytes(b"x")
    done = vmrunner("check", "-c", str(config(tmp_path)))
    assert done.returncode == 2, done
    problems = [line for line in done.stdout.splitlines() if line.startswith("/Runner")]
    assert problems == [
        f"/Runner/vm/drives/3/device: {tmp_path}/disk.img is not a block device",
        "/Runner/vm/drives/4/resource: /dev/null is not a block device"], done.stdout
    block = next((e.path for e in os.scandir("/dev")
                  if e.name.startswith(("loop", "vd", "sd", "nvme", "zram"))
                  and stat.S_ISBLK(os.stat(e.path).st_mode)), None)
    if block is None:
        pytest.fail("this host has no block device in /dev to test with")
    good = CONFIG.replace("device: {base}/disk.img", f"device: {block}").replace(
        "resource: /dev/null", f"resource: {block}")
    done = vmrunner("check", "-c", str(config(tmp_path, good)))
    assert done.returncode == 0, done
    assert done.stdout.strip().endswith(": OK")


def test_no_host_files_skips_the_file_checks(tmp_path: Path) -> None:
    done = vmrunner("check", "--no-host-files", "-c", str(config(tmp_path)))
    assert done.returncode == 0, done
    assert "does not exist" not in done.stdout + done.stderr


def test_run_refuses_a_missing_disk_before_spawning_anything(tmp_path: Path) -> None:
    for name in FILES:
        (tmp_path / name).write_bytes(b"x")
    text = CONFIG.replace("    - {{type: raw, device: {base}/disk.img}}\n", "").replace(
        "    - {{type: raw, resource: /dev/null}}\n", "")
    file = config(tmp_path, text)
    (tmp_path / "disk.img").unlink()
    done = vmrunner("run", "-c", str(file))
    assert done.returncode == 2, done
    assert f"/Runner/vm/drives/0/file: {tmp_path}/disk.img does not exist" in done.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()


def test_the_builder_checks_files_unless_told_not_to(tmp_path: Path) -> None:
    """The one start path (RunnerBuilder.build) refuses before assembling anything; an
    embedding program validating for another host can pass ``host_files=False``."""
    from vmrunner.daemon.builder import ConfigInvalid, RunnerBuilder

    file = config(tmp_path)
    with pytest.raises(ConfigInvalid) as caught:
        RunnerBuilder(file, watch=False).build()
    assert f"/Runner/vm/drives/0/file: {tmp_path}/disk.img does not exist" in caught.value.problems
    runner = RunnerBuilder(file, watch=False, host_files=False).build()
    assert runner.component_path == "/Runner"
    assert not (tmp_path / "run").exists()


def _without_ovmf(*args: str) -> subprocess.CompletedProcess[str]:
    """``vmrunner ARGS`` in a private mount namespace where /usr/share/OVMF is an empty tmpfs
    (a host without OVMF; nothing outside the namespace changes)."""
    script = 'mount -t tmpfs none /usr/share/OVMF && exec "$@"'
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                           "sh", sys.executable, "-m", "vmrunner", *args],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/share/OVMF").is_dir(),
                    reason="needs root (a mount namespace) and /usr/share/OVMF")
def test_no_host_files_renders_uefi_without_ovmf_here(tmp_path: Path) -> None:
    """Without OVMF, ``check`` fails on the firmware; ``check --no-host-files`` and ``render``
    assume its usual path and say so."""
    for name in FILES:
        (tmp_path / name).write_bytes(b"x")
    text = CONFIG.replace("firmware: bios", "firmware: uefi").replace(
        "    - {{type: raw, device: {base}/disk.img}}\n", "").replace(
        "    - {{type: raw, resource: /dev/null}}\n", "")
    file = config(tmp_path, text)
    assert vmrunner("check", "-c", str(file)).returncode == 0  # OVMF is installed here
    done = _without_ovmf("check", "-c", str(file))
    assert done.returncode == 2, done
    assert "firmware" in done.stdout + done.stderr and "uefi" in done.stdout + done.stderr
    done = _without_ovmf("check", "--no-host-files", "-c", str(file))
    assert done.returncode == 0, done
    done = _without_ovmf("render", "-c", str(file))
    assert done.returncode == 0, done
    assert "# firmware 'uefi' is not installed here: rendered with /usr/share/OVMF/" in done.stdout
