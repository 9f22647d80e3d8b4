"""Messages quote what the user wrote and say what to write instead (issue 18, item 3): memory
units, durations with a unit, unquoted MAC addresses, a missing default configuration. Real
subprocesses of ``vmrunner`` reading real YAML (so the MAC is mangled by YAML itself)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vmrunner.daemon.cli import DEFAULT_CONFIG

CONFIG = """"/Runner":
  vm:
    name: msg
    firmware: bios
    accelerator: tcg
    {line}
"""


def check(tmp_path: Path, line: str) -> subprocess.CompletedProcess[str]:
    file = tmp_path / "config.yaml"
    file.write_text(CONFIG.format(line=line))
    return vmrunner("check", "-c", str(file))


def vmrunner(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmrunner", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_a_decimal_memory_unit_gets_a_note_not_an_error(tmp_path: Path) -> None:
    done = check(tmp_path, "maximumRam: 256 MB")
    assert done.returncode == 0, done
    assert done.stdout.splitlines() == [
        'note: /Runner/vm/maximumRam: "256 MB" is 244.1 MiB (MB = 10^6 bytes); '
        'did you mean "256 MiB"?', f"{tmp_path / 'config.yaml'}: OK"]
    strict = vmrunner("check", "--strict", "-c", str(tmp_path / "config.yaml"))
    assert strict.returncode == 0, strict


def test_a_binary_unit_gets_no_note(tmp_path: Path) -> None:
    done = check(tmp_path, "maximumRam: 256 MiB")
    assert done.returncode == 0 and "note" not in done.stdout, done


def test_an_unknown_memory_unit_suggests_the_binary_one(tmp_path: Path) -> None:
    done = check(tmp_path, "maximumRam: 256 mb")
    assert done.returncode == 2, done
    assert ('/Runner/vm/maximumRam: unknown memory unit "mb" in "256 mb"; did you mean '
            '"256 MiB" (or "256 MB" = 256000000 bytes)?') in done.stdout


@pytest.mark.parametrize(("written", "meant"), [("5m", "300"), ("90 s", "90"),
                                                ("1h", "3600"), ("2.5 min", "150")])
def test_a_duration_with_a_unit_says_it_is_in_seconds(
        tmp_path: Path, written: str, meant: str) -> None:
    done = check(tmp_path, f"powerdownTimeout: {written}")
    assert done.returncode == 2, done
    assert (f'/Runner/vm/powerdownTimeout: "{written}": the value is in seconds, without a '
            f"unit; did you mean {meant}?") in done.stdout


def test_an_unquoted_mac_address_must_be_quoted(tmp_path: Path) -> None:
    done = check(tmp_path, "network: [{type: user, mac: 52:54:00:12:34:56}]")
    assert done.returncode == 2, done
    assert ('/Runner/vm/network/0/mac: a MAC address must be quoted: YAML read '
            '52:54:00:12:34:56 as the number 41135085296 (write mac: "52:54:00:12:34:56")'
            ) in done.stdout


@pytest.mark.parametrize("command", [["run"], ["check"], ["render"], ["status"], ["events"],
                                     ["probe", "live"], []])
def test_without_a_configuration_at_the_default_path_every_command_says_pass_c(
        command: list[str]) -> None:
    assert not DEFAULT_CONFIG.exists(), "this test needs a host without the default file"
    done = vmrunner(*command)
    assert done.returncode == 2, done
    assert done.stderr.strip() == (f"vmrunner: no configuration file at {DEFAULT_CONFIG} "
                                   "(the default); name one with -c/--config FILE")
