"""The embedding example (examples/embed_policy.py) runs the real guest with its own policy."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from vmrunner.testing.guest import GuestImage
from vmrunner.testing.runnerproc import guest_config

pytestmark = pytest.mark.guest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "embed_policy.py"


async def test_embed_example_runs_standard_set_plus_policy(
        base: Path, guest_image: GuestImage, accel_name: str) -> None:
    config = guest_config(base, guest_image, accel=accel_name)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), "-c", str(config), "--uptime", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 90)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    policy = [line for line in text.splitlines() if line.startswith("policy: ")]
    assert policy == [
        "policy: initializing -> starting (RunnerStarted)",
        "policy: starting -> booting (VmStarted)",
        "policy: booting -> booted (VmBooted)",
        "policy: stopping the VM in 1 s",
        "policy: booted -> terminating (VmTerminating)",
        "policy: terminating -> stopped (VmStopped)",
    ], text
    assert "shutdown rung guest-agent" in text
