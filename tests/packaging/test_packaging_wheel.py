"""The distribution as a user gets it: ``python -m build`` (sdist, then the wheel built from
that sdist), the wheel installed in a fresh venv with no access to this tree, and the
installed ``vmrunner`` checking, rendering and running the test guest."""

from __future__ import annotations

import signal
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from vmrunner.testing.guest import GuestImage
from vmrunner.testing.runnerproc import RunnerProcess, guest_config, scratch_dir

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = "Standard-VM.yaml.mako"

pytestmark = pytest.mark.guest


def _run(*argv: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = _run(sys.executable, "-m", "build", "--outdir", out, ROOT, cwd=out)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def venv_python(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    assert _run(sys.executable, "-m", "venv", venv, cwd=venv).returncode == 0
    python = venv / "bin" / "python"
    (wheel,) = dist.glob("*.whl")
    installed = _run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                     wheel, cwd=venv)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return python


def test_sdist_and_wheel_are_complete(dist: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        sdist_names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert f"templates/{TEMPLATE}" in sdist_names
    assert "LICENSE" in sdist_names
    assert "vmrunner/testing/guest/rootfs/init" in sdist_names
    assert "vmrunner/testing/guest/standin/etc/tg/boot.d/50-cloud-init" in sdist_names
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        wheel_names = set(archive.namelist())
        metadata = next(archive.read(n).decode() for n in wheel_names
                        if n.endswith(".dist-info/METADATA"))
    assert f"vmrunner/templates/{TEMPLATE}" in wheel_names
    assert "vmrunner/py.typed" in wheel_names
    assert "vmrunner/testing/guest/rootfs/init" in wheel_names
    assert "vmrunner/testing/guest/standin/etc/tg/boot.d/50-cloud-init" in wheel_names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in wheel_names)
    for names in (sdist_names, wheel_names):
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert "License-Expression: Apache-2.0" in metadata
    assert "Requires-Dist: h11>=0.16" in metadata


async def test_installed_wheel_checks_renders_and_runs(
        venv_python: Path, guest_image: GuestImage, accel_name: str,
        runners: list[RunnerProcess]) -> None:
    with scratch_dir() as base:
        where = _run(venv_python, "-c", "import vmrunner; print(vmrunner.__file__)", cwd=base)
        assert where.stdout.startswith(str(venv_python.parents[1])), where
        config = guest_config(base, guest_image, accel=accel_name)
        vmrunner = venv_python.parent / "vmrunner"
        checked = _run(vmrunner, "check", "-c", config, cwd=base)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        rendered = _run(vmrunner, "render", "-c", config, cwd=base)
        assert rendered.returncode == 0, rendered.stderr
        assert "qemu-system-x86_64" in rendered.stdout
        # the completion script and the man page come with the wheel, no clone needed
        completion = _run(vmrunner, "completion", "bash", cwd=base)
        assert completion.returncode == 0 and "complete -F _vmrunner" in completion.stdout, \
            completion.stderr
        man = _run(vmrunner, "man", cwd=base)
        assert man.returncode == 0 and man.stdout.startswith(".\\\" generated"), man.stderr
        runner = RunnerProcess(config, python=str(venv_python), cwd=base)
        runners.append(runner)
        await runner.start()
        await runner.wait_ready(90)
        runner.signal(signal.SIGTERM)
        assert await runner.wait(60) == 0, runner.log_tail()
