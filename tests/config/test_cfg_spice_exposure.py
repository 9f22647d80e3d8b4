"""SPICE without a password is served only where the configuration says so (issue 15, item
6): no ``address`` → 127.0.0.1 and a warning naming the key path; a loopback address → as
given; another address → an error unless ``allowNoPassword: true``. The real ``vmrunner
check``/``render`` for the output, the real template for the rendered ``-spice`` argument."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from vmrunner.config.validate import load_config
from vmrunner.vmtypes.prepare import plan_start


def _write(directory: Path, spice: dict[str, Any]) -> Path:
    config = directory / "config.yaml"
    config.write_text(yaml.safe_dump({"/Runner": {
        "dataDir": str(directory / "data"), "runtimeDir": str(directory / "run"),
        "vm": {"name": "sp", "maximumRam": "256 MiB", "accelerator": "tcg",
               "display": {"spice": spice}}}}))
    return config


def _vmrunner(*args: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "vmrunner", *args], capture_output=True,
                          text=True, timeout=120, check=False)
    return done.returncode, done.stdout + done.stderr


def _spice_arg(config: Path) -> str:
    validation = load_config(config)
    assert validation.config is not None, validation.problems
    args = list(plan_start(validation.config).render(resolve_executables=False)
                .qemu.arguments)
    return args[args.index("-spice") + 1]


def test_no_password_and_no_address_listens_on_loopback_with_a_warning(
        tmp_path: Path) -> None:
    config = _write(tmp_path, {})
    code, output = _vmrunner("check", "-c", str(config))
    assert code == 0, output
    assert ("warning: /Runner/vm/display/spice: no password (no passwordFile, no "
            "display-password file beside the configuration, no ticket): SPICE listens on "
            "127.0.0.1 only") in output
    code, output = _vmrunner("render", "-c", str(config))
    assert code == 0, output
    assert "-spice port=5900,addr=127.0.0.1,disable-ticketing=on" in output, output


def test_a_network_address_without_a_password_is_an_error(tmp_path: Path) -> None:
    code, output = _vmrunner("check", "-c", str(_write(tmp_path, {"address": "0.0.0.0"})))
    assert code == 2, output
    assert ("/Runner/vm/display/spice/address: 0.0.0.0 would serve SPICE with no password "
            "(no passwordFile, no display-password file beside the configuration, no ticket) "
            "to the network; give it a password, or set allowNoPassword: true") in output


@pytest.mark.parametrize("spice, expected", [
    ({"address": "0.0.0.0", "allowNoPassword": True},
     "port=5900,addr=0.0.0.0,disable-ticketing=on"),
    ({"allowNoPassword": True}, "port=5900,disable-ticketing=on"),
    ({"address": "127.0.0.2"}, "port=5900,addr=127.0.0.2,disable-ticketing=on"),
    ({"address": "::1"}, "port=5900,addr=::1,disable-ticketing=on"),
    ({"address": "localhost"}, "port=5900,addr=localhost,disable-ticketing=on"),
    ({"ticket": "t"}, "port=5900,password-secret=spice-password"),
    ({"passwordFile": "pw"}, "port=5900,password-secret=spice-password"),
])
def test_explicit_choices_pass_silently(tmp_path: Path, spice: dict[str, Any],
                                        expected: str) -> None:
    config = _write(tmp_path, spice)
    assert load_config(config).problems == []
    assert _spice_arg(config).startswith(expected + ",")


def test_the_display_secret_beside_the_config_is_a_password(tmp_path: Path) -> None:
    """VM-Operator's pod: ``display-password`` mounted beside config.yaml."""
    config = _write(tmp_path, {})
    (tmp_path / "display-password").write_text("pw")
    assert load_config(config).problems == []
    assert _spice_arg(config).startswith("port=5900,password-secret=spice-password,")
