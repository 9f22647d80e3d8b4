"""The command line's conventions, with real subprocesses and a real bash: global options
after the command, unknown commands, a closed stdout, Ctrl-C, ``check --json``, the
generated completion and man page (also as ``vmrunner completion bash`` and ``vmrunner man``),
and the VM commands' errors when no runner is there."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vmrunner.daemon.cli import build_parser
from vmrunner.daemon.commands.console import detach_byte
from vmrunner.daemon.commands.docgen import COMPLETION, outputs

BASE = [sys.executable, "-m", "vmrunner"]


def vmrunner(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BASE, *args], capture_output=True, text=True, timeout=60,
                          check=False, env=env)


CONFIG = """"/Runner":
  dataDir: {base}/data
  runtimeDir: {base}/run
  vm:
    name: usage
    firmware: bios
    accelerator: tcg
    network: []
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(base=tmp_path))
    return path


def test_global_options_before_and_after_the_command() -> None:
    parser = build_parser()
    args = parser.parse_args(["--log-level", "error", "-c", "a", "check"])
    assert (args.log_level, args.config, args.strict) == ("ERROR", Path("a"), False)
    args = parser.parse_args(["--log-level", "error", "-c", "a", "check", "--log-level",
                              "debug", "-c", "b", "--strict"])
    assert (args.log_level, args.config, args.strict) == ("DEBUG", Path("b"), True)


def test_log_level_after_check_is_taken(config: Path) -> None:
    result = vmrunner("check", "-c", str(config), "--log-level", "DEBUG")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(f"{config}: OK")


def test_unknown_command_names_the_commands() -> None:
    result = vmrunner("frob")
    assert result.returncode == 2
    assert "unknown command 'frob'; the commands are: run, check, render" in result.stderr
    assert "console, shutdown, reset, list, qmp" in result.stderr


def test_closed_stdout_exits_141_quietly(config: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before vmrunner writes its first line
    proc = subprocess.run([*BASE, "render", "-c", str(config)], stdout=write,
                          stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    os.close(write)
    assert proc.returncode == 141
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr


def test_ctrl_c_exits_130(config: Path, tmp_path: Path) -> None:
    """``vmrunner events`` waiting on an API socket that never answers (the test's own
    listening socket: a fake runner, since a real one answers at once) gets SIGINT."""
    run = tmp_path / "run"
    run.mkdir()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(run / "api.sock"))
    server.listen(1)
    server.settimeout(30)
    proc = subprocess.Popen([*BASE, "events", "-c", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        conn, _ = server.accept()  # the command is now waiting for the answer
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        conn.close()
    finally:
        proc.kill()
        server.close()
    assert proc.returncode == 130, err
    assert "Traceback" not in err


def test_check_json_reports_key_paths(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(base=tmp_path).replace(
        "    network: []\n", "    network: []\n    maximumRam: lots\n    accelertor: kvm\n"))
    result = vmrunner("check", "--json", "-c", str(config))
    assert result.returncode == 2
    doc = json.loads(result.stdout)
    assert doc["file"] == str(config) and doc["ok"] is False
    by_path = {p["path"]: p for p in doc["problems"]}
    assert by_path["/Runner/vm/maximumRam"]["severity"] == "error"
    assert by_path["/Runner/vm/accelertor"] == {
        "path": "/Runner/vm/accelertor", "severity": "warning",
        "message": "unknown key (did you mean 'accelerator'?)"}


def test_check_json_ok(config: Path) -> None:
    result = vmrunner("check", "--json", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"file": str(config), "ok": True, "problems": []}


def test_generated_completion_and_man_page_are_current() -> None:
    for path, text in outputs().items():
        assert path.read_text() == text, \
            f"{path} is stale: python -m vmrunner.daemon.commands.docgen"


def test_the_installed_command_prints_the_completion_and_the_man_page(tmp_path: Path) -> None:
    """For an install without this repository (a wheel): ``vmrunner completion bash`` and
    ``vmrunner man`` print the generated files, with no configuration anywhere."""
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    generated = {path.name: text for path, text in outputs().items()}
    bash = subprocess.run([*BASE, "completion", "bash"], capture_output=True, text=True,
                          timeout=60, check=False, env=env, cwd=tmp_path)
    assert (bash.returncode, bash.stderr) == (0, ""), bash
    assert bash.stdout == generated[COMPLETION.name]
    man = subprocess.run([*BASE, "man"], capture_output=True, text=True, timeout=60,
                         check=False, env=env, cwd=tmp_path)
    assert (man.returncode, man.stderr) == (0, ""), man
    assert man.stdout == generated["vmrunner.1"]
    assert vmrunner("completion", "zsh").returncode == 2


def complete(line: str) -> list[str]:
    """What bash offers for ``line`` (the last word is completed) with the completion."""
    words = line.split(" ")
    script = (f"source {COMPLETION}\nCOMP_WORDS=({' '.join(repr(w) for w in words)})\n"
              f"COMP_CWORD={len(words) - 1}\n_vmrunner\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n")
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", script],
                            capture_output=True, text=True, timeout=30, check=True)
    return result.stdout.split()


def test_bash_completion_offers_commands_options_and_values(tmp_path: Path) -> None:
    assert complete("vmrunner ") == ["run", "check", "render", "status", "probe", "events",
                                     "console", "shutdown", "reset", "list", "qmp", "pause",
                                     "resume", "resize-disk", "fsfreeze", "fsthaw",
                                     "screenshot", "completion", "man"]
    assert complete("vmrunner fsfreeze --t") == ["--timeout"]
    assert complete("vmrunner screenshot --o") == ["--output"]
    assert complete("vmrunner sh") == ["shutdown"]
    assert complete("vmrunner shutdown --w") == ["--wait"]
    assert complete("vmrunner console --log-l") == ["--log-level"]  # global, after the command
    assert complete("vmrunner check --log-level W") == ["WARNING"]
    assert complete("vmrunner probe r") == ["ready"]
    assert complete("vmrunner completion b") == ["bash"]
    (tmp_path / "vm.yaml").write_text("")
    assert complete(f"vmrunner list -c {tmp_path}/v") == [f"{tmp_path}/vm.yaml"]


def test_detach_key() -> None:
    assert detach_byte("^]") == 0x1D
    assert detach_byte("^a") == detach_byte("^A") == 1
    for bad in ("]", "^", "^1", "ctrl-]"):
        with pytest.raises(ValueError, match="--detach-key"):
            detach_byte(bad)


def test_vm_commands_without_a_runner(config: Path) -> None:
    result = vmrunner("console", "-c", str(config), "--detach-key", "x")
    assert result.returncode == 2 and "--detach-key 'x'" in result.stderr
    result = vmrunner("console", "-c", str(config))
    assert result.returncode == 1 and "is the VM running?" in result.stderr
    for command in (["shutdown"], ["reset"], ["qmp", '{"execute": "query-status"}']):
        result = vmrunner(*command, "-c", str(config))
        assert result.returncode == 1, command
        assert "no runner answers on" in result.stderr, command
    result = vmrunner("qmp", "{not json", "-c", str(config))
    assert result.returncode == 2 and "not JSON" in result.stderr


def test_list_reports_a_socket_nobody_answers_on(tmp_path: Path) -> None:
    """A socket left behind (bound, nothing accepting: a killed runner's) in a default runtime
    dir (``$XDG_RUNTIME_DIR/vmrunner/<name>``) is found without ``--dir`` and listed as
    such."""
    run = tmp_path / "vmrunner" / "gone"
    run.mkdir(parents=True)
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(str(run / "api.sock"))
    left.close()
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    result = vmrunner("list", "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {"name": "gone", "state": "not answering", "pid": None, "uptime": None,
            "ram": None, "cpus": None, "runtimeDir": str(run)} in rows
    table = vmrunner("list", env=env).stdout.splitlines()
    assert table[0].split() == ["NAME", "STATE", "PID", "UPTIME", "RAM", "VCPUS", "RUNTIME",
                                "DIR"]
    assert any(line.startswith("gone") and "not answering" in line for line in table)
