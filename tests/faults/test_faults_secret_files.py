"""Secret files are checked for their permissions (issue 15, item 6 "Security"): a SPICE
``passwordFile`` or an API ``tokenFile`` readable by its group or others, or owned by another
user than root or the runner's, is a warning naming the key path, the file, its mode or
owner and the fix; with ``--strict`` an error (exit 2). Real files, the real ``vmrunner
check``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

SPICE_KEY = "/Runner/vm/display/spice/passwordFile"


def _config(directory: Path, secret: Path, *, api: bool) -> Path:
    runner: dict[str, Any] = {
        "dataDir": str(directory / "data"), "runtimeDir": str(directory / "run"),
        "vm": {"name": "s", "maximumRam": "256 MiB", "accelerator": "tcg"}}
    if api:
        runner["/Api"] = {"listen": "127.0.0.1:18765", "tokenFile": str(secret)}
    else:
        runner["vm"]["display"] = {"spice": {"passwordFile": str(secret)}}
    config = directory / "config.yaml"
    config.write_text(yaml.safe_dump({"/Runner": runner}))
    return config


def _check(config: Path, *extra: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "vmrunner", "check", "-c", str(config),
                           *extra], capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, done.stdout + done.stderr


def _secret(directory: Path, mode: int) -> Path:
    secret = directory / "secret"
    secret.write_text("s3cr3t\n")
    secret.chmod(mode)
    return secret


@pytest.mark.parametrize("api", [False, True], ids=["spice-passwordFile", "api-tokenFile"])
def test_a_secret_file_others_can_read_is_a_warning_or_a_strict_error(
        tmp_path: Path, api: bool) -> None:
    secret = _secret(tmp_path, 0o644)
    config = _config(tmp_path, secret, api=api)
    key = "/Runner/Api/tokenFile" if api else SPICE_KEY
    expected = (f"{key}: {secret} holds a secret but has mode 0644: readable by its group "
                f"and others; chmod 0600 {secret}")
    code, output = _check(config)
    assert code == 0, output
    assert f"warning: {expected}" in output, output
    code, output = _check(config, "--strict")
    assert code == 2, output
    assert expected in output and f"warning: {expected}" not in output, output
    assert "s3cr3t" not in output


@pytest.mark.parametrize("api", [False, True], ids=["spice-passwordFile", "api-tokenFile"])
def test_a_private_secret_file_passes_silently(tmp_path: Path, api: bool) -> None:
    config = _config(tmp_path, _secret(tmp_path, 0o600), api=api)
    code, output = _check(config, "--strict")
    assert code == 0, output
    assert "warning" not in output, output


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_a_secret_file_of_another_user_is_reported(tmp_path: Path) -> None:
    secret = _secret(tmp_path, 0o600)
    os.chown(secret, 65534, 65534)
    code, output = _check(_config(tmp_path, secret, api=False))
    assert code == 0, output
    assert (f"warning: {SPICE_KEY}: {secret} holds a secret but is owned by "
            in output and "(uid 65534) (mode 0600), who can read and change it" in output), output
