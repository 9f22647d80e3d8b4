"""The `vmrunner` command line: options, commands, exit codes (real subprocesses)."""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from vmrunner import __version__
from vmrunner.daemon.cli import DEFAULT_CONFIG, _with_command
from vmrunner.daemon.logs import setup_logging

REPO = Path(__file__).resolve().parents[3]


def vmrunner(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmrunner", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "config.yaml"
    file.write_text(text)
    return file


GOOD = """"/Runner":
  dataDir: /nonexistent/vmrunner/data
  runtimeDir: /nonexistent/vmrunner/run
  vm:
    name: cli
    uuid: 11111111-2222-3333-4444-555555555555
    firmware: bios
    accelerator: tcg
    network: []
    accelertor: kvm
"""


def test_version() -> None:
    result = vmrunner("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"vmrunner {__version__}"


def test_run_is_the_default_command() -> None:
    assert _with_command(["-c", "x"]) == ["-c", "x", "run"]
    assert _with_command([]) == ["run"]
    assert _with_command(["--log-level", "debug", "-c", "x"]) == ["--log-level", "debug",
                                                                  "-c", "x", "run"]
    assert _with_command(["-cx", "--strict", "--no-kube"]) == ["-cx", "--strict", "run",
                                                                "--no-kube"]
    assert _with_command(["--log-format=json", "check"]) == ["--log-format=json", "check"]


def test_default_config_path() -> None:
    assert Path("/etc/opt/vmrunner/config.yaml") == DEFAULT_CONFIG
    if not DEFAULT_CONFIG.exists():
        for command in ("check", "status", "console"):
            result = vmrunner(command)
            assert result.returncode == 2
            assert f"vmrunner: no configuration file at {DEFAULT_CONFIG} (the " \
                "default); name one with -c/--config FILE" in result.stderr


def test_check_ok_prints_warnings(tmp_path: Path) -> None:
    result = vmrunner("check", "-c", str(write(tmp_path, GOOD)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning: /Runner/vm/accelertor: unknown key (did you mean 'accelerator'?)" in (
        result.stdout)
    assert result.stdout.rstrip().endswith(": OK")


def test_check_strict(tmp_path: Path) -> None:
    result = vmrunner("check", "--strict", "-c", str(write(tmp_path, GOOD)))
    assert result.returncode == 2
    assert "/Runner/vm/accelertor: unknown key" in result.stdout


def test_check_reports_every_problem(tmp_path: Path) -> None:
    text = GOOD.replace("firmware: bios", "firmware: efi").replace(
        "accelerator: tcg", "accelerator: tcg\n    maximumCpus: 2\n    currentCpus: 3")
    result = vmrunner("check", "-c", str(write(tmp_path, text)))
    assert result.returncode == 2
    assert "/Runner/vm/firmware:" in result.stdout
    assert "/Runner/vm/currentCpus: 3 exceeds maximumCpus (2)" in result.stdout


def test_render_prints_runnable_argv_and_creates_nothing(tmp_path: Path) -> None:
    result = vmrunner("render", "-c", str(write(tmp_path, GOOD)))
    assert result.returncode == 0, result.stderr
    assert not Path("/nonexistent").exists()
    qemu = result.stdout.split("# qemu\n", 1)[1]
    argv = shlex.split(qemu.replace("\\\n", " "))
    assert argv[0].endswith("qemu-system-x86_64")
    assert "-S" in argv
    assert argv[argv.index("-uuid") + 1] == "11111111-2222-3333-4444-555555555555"
    assert "# swtpm" not in result.stdout
    assert "warning: /Runner/vm/accelertor" in result.stderr


def test_render_with_tpm_prints_swtpm_first(tmp_path: Path) -> None:
    text = GOOD.replace("name: cli", "name: cli\n    useTpm: true")
    result = vmrunner("render", "-c", str(write(tmp_path, text)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.index("# swtpm") < result.stdout.index("# qemu")
    assert "--tpmstate dir=/nonexistent/vmrunner/data" in result.stdout


def test_run_exits_2_on_bad_config(tmp_path: Path) -> None:
    result = vmrunner("-c", str(write(tmp_path, GOOD.replace("name: cli", "name: '-'"))))
    assert result.returncode == 2
    assert "/Runner/vm/name" in result.stderr
    assert "Traceback" not in result.stderr


def test_json_log_format(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging("info", "json")
        logging.getLogger("vmrunner.test").warning("hello %s", "world")
        logging.getLogger("vmrunner.test").debug("not shown")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["level"] == "WARNING" and record["message"] == "hello world"
    assert record["logger"] == "vmrunner.test" and record["time"].endswith("Z")


def test_python_dash_m_and_help() -> None:
    result = vmrunner("--help")
    assert result.returncode == 0
    assert "Exit codes" in result.stdout


def test_config_error_exit_code_is_cores() -> None:
    """``vmrunner.core`` ends a tree on a bad configuration with its own code; the CLI's
    documented code is the same number (and importing the exit codes stays cheap: no core)."""
    from vmrunner.components.exit_codes import ExitCode
    from vmrunner.core.config import CONFIG_ERROR_EXIT

    assert ExitCode.CONFIG_ERROR == CONFIG_ERROR_EXIT
