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
