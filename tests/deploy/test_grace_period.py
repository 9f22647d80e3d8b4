"""The pod's grace period against powerdownTimeout (docs/guide/kubernetes.md, "Grace period"):
``vmrunner check`` and the start of ``vmrunner run`` warn by key path when the chart's
``VMRUNNER_TERMINATION_GRACE_PERIOD`` cannot hold the timeout plus the forced stop. Real
subprocesses; no guest (the warning comes before anything starts)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vmrunner.daemon.grace import FORCED_STOP, GRACE_ENV, grace_warnings

CONFIG = """"/Runner":
  dataDir: {base}/data
  runtimeDir: {base}/run
  vm:
    name: grace
    firmware: bios
    accelerator: tcg
    maximumRam: 64 MiB
    network: []
    {timeout}
    kernel: {{image: {base}/empty-kernel}}
"""
WARNING = "/Runner/vm/powerdownTimeout: {timeout} s plus the 5 s forced stop exceeds the " \
          "pod's terminationGracePeriodSeconds ({grace} s, VMRUNNER_TERMINATION_GRACE_PERIOD)"


def _vmrunner(tmp_path: Path, command: str, timeout: str,
              grace: str | None) -> subprocess.CompletedProcess[str]:
    file = tmp_path / "config.yaml"
    file.write_text(CONFIG.format(base=tmp_path, timeout=timeout))
    (tmp_path / "empty-kernel").touch()  # exists (check requires it); QEMU refuses it at run
    env = {k: v for k, v in os.environ.items() if k != GRACE_ENV}
    if grace is not None:
        env[GRACE_ENV] = grace
    return subprocess.run([sys.executable, "-m", "vmrunner", command, "-c", str(file)],
                          capture_output=True, text=True, timeout=60, env=env, check=False)


def test_check_warns_when_the_timeout_outgrows_the_grace_period(tmp_path: Path) -> None:
    result = _vmrunner(tmp_path, "check", "powerdownTimeout: 120", "100")
    assert result.returncode == 0, result
    assert "warning: " + WARNING.format(timeout=120, grace=100) in result.stdout


def test_check_is_quiet_when_it_fits_or_outside_a_pod(tmp_path: Path) -> None:
    for grace in ("125", None):  # 120 + 5 fits exactly; no variable: not the chart's pod
        result = _vmrunner(tmp_path, "check", "powerdownTimeout: 120", grace)
        assert result.returncode == 0, result
        assert "powerdownTimeout" not in result.stdout


def test_the_default_timeout_counts(tmp_path: Path) -> None:
    result = _vmrunner(tmp_path, "check", "", "600")
    assert WARNING.format(timeout=900, grace=600) in result.stdout


def test_run_reports_it_at_the_start(tmp_path: Path) -> None:
    result = _vmrunner(tmp_path, "run", "powerdownTimeout: 300", "60")
    assert WARNING.format(timeout=300, grace=60) in result.stdout + result.stderr


@pytest.mark.parametrize(("runner", "environ", "expected"), [
    ({"vm": {"powerdownTimeout": 10}}, {GRACE_ENV: str(10 + FORCED_STOP)}, []),
    ({"vm": {"powerdownTimeout": 11}}, {GRACE_ENV: str(10 + FORCED_STOP)}, ["/Runner/vm/"]),
    ({"vm": {"powerdownTimeout": "soon"}}, {GRACE_ENV: "1"}, []),  # the validation's job
    ({"vm": {}}, {GRACE_ENV: "x"}, [f"{GRACE_ENV}: 'x' is not a number of seconds"]),
    (None, {}, []),
])
def test_grace_warnings(runner: object, environ: dict[str, str],
                        expected: list[str]) -> None:
    warnings = grace_warnings(runner, environ)
    assert len(warnings) == len(expected)
    for warning, start in zip(warnings, expected, strict=True):
        assert warning.startswith(start)
