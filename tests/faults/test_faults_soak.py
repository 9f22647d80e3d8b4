"""The graceful-stop soak (``benchmarks/soak.py``) at CI size: 10 cycles of boot, synced
marker, SIGTERM; every cycle must end graceful with the marker on the disk (issue 8).

One cycle takes ~4.2 s under TCG on the 2-core development machine, so 10 cycles ≈ 45 s.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vmrunner.testing.guest import GuestImage

pytestmark = pytest.mark.guest

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"
CYCLES = 10


def test_soak_ten_cycles_all_graceful(guest_image: GuestImage) -> None:
    result = subprocess.run([sys.executable, str(SOAK), "--cycles", str(CYCLES)],
                            capture_output=True, text=True, timeout=300, check=False)
    output = result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert last == f"soak: {CYCLES}/{CYCLES} graceful, 0 forced, 0 lost", output
    assert result.returncode == 0, output
    assert "Traceback" not in output


CHURN_CYCLES = 3


def test_soak_with_churn_all_graceful_no_crash(guest_image: GuestImage) -> None:
    """CI size of ``soak.py --churn`` (50 cycles by hand, docs/design/reliability.md): random live
    edits (RAM, vCPUs, CD, reset, password) in each cycle, then TERM; a fixed seed so a
    failure can be replayed."""
    result = subprocess.run(
        [sys.executable, str(SOAK), "--churn", "--seed", "15", "--cycles", str(CHURN_CYCLES)],
        capture_output=True, text=True, timeout=600, check=False)
    output = result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert last.startswith(f"soak: {CHURN_CYCLES}/{CHURN_CYCLES} graceful, 0 forced, 0 lost, "
                           "0 crashes, churn "), output
    assert int(last.split("churn ")[1].split()[0]) >= 3 * CHURN_CYCLES, last
    assert result.returncode == 0, output
