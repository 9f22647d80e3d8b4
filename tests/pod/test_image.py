"""The container image: built by podman from the Containerfile, what it holds, PID 1."""

from __future__ import annotations

import json

import pytest

import vmrunner
from vmrunner.components.exit_codes import ExitCode

from .conftest import ImageBuild
from .support import podman

pytestmark = pytest.mark.pod

# Leaves an orphan (a background sleep whose parent shell exits), waits until the orphan has
# exited, then counts zombies. Whoever is PID 1 inherits the orphan and must reap it.
ORPHAN_PROBE = """
import pathlib, subprocess, time
subprocess.run(["sh", "-c", "sleep 0.3 & exit 0"], check=True)
time.sleep(1.5)
zombies = [p.name for p in pathlib.Path("/proc").iterdir()
           if p.name.isdigit() and "State:\\tZ" in (p / "status").read_text()]
print("zombies", len(zombies))
"""


def test_image_builds_without_docker(image: ImageBuild) -> None:
    config = json.loads(podman("image", "inspect", "--format", "{{json .Config}}",
                               image.tag).stdout)
    assert config["Entrypoint"] == ["/usr/bin/catatonit", "--",
                                    "/opt/vmrunner/venv/bin/vmrunner"]
    assert config["Cmd"] == ["run", "-c", "/etc/opt/vmrunner/config.yaml"]
    assert image.size_bytes > 50_000_000
    print(f"image {image.tag}: {image.size_bytes / 1e6:.0f} MB, built in {image.seconds:.1f} s")


def test_image_has_qemu_swtpm_ovmf_and_the_runner(image: ImageBuild) -> None:
    out = podman("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", image.tag,
                 "-c", "qemu-system-x86_64 --version && swtpm --version && "
                 "command -v swtpm_setup && ls /usr/share/OVMF/OVMF_CODE_4M.fd && "
                 "test -d /opt/vmrunner/templates && test -d /etc/opt/vmrunner && "
                 "vmrunner --version").stdout
    assert "QEMU emulator version" in out
    assert "TPM emulator" in out
    assert out.strip().endswith(f"vmrunner {vmrunner.__version__}")


def test_exit_code_passes_through_pid1(image: ImageBuild) -> None:
    """No config mounted: the runner's CONFIG_ERROR is the container's exit code."""
    result = podman("run", "--rm", "--network", "none", image.tag, check=False)
    assert result.returncode == ExitCode.CONFIG_ERROR, result.stderr
    assert "/etc/opt/vmrunner/config.yaml" in result.stdout + result.stderr


def test_pid1_reaps_orphans(image: ImageBuild) -> None:
    python = "/opt/vmrunner/venv/bin/python"
    with_init = podman("run", "--rm", "--network", "none", "--entrypoint", "/usr/bin/catatonit",
                       image.tag, "--", python, "-c", ORPHAN_PROBE).stdout
    assert "zombies 0" in with_init
    # control: Python as PID 1 (no init) leaves the orphan a zombie -- why catatonit is there
    without = podman("run", "--rm", "--network", "none", "--entrypoint", python, image.tag,
                     "-c", ORPHAN_PROBE).stdout
    assert "zombies 1" in without
