"""A qcow2 overlay disk (``format: qcow2``), observed from inside the real guest (issue 18,
item 4): the runner's rendered ``-blockdev`` opens the overlay with its raw backing image, the
guest reads the base's content through it, and what the guest writes lands in the overlay
while the base file stays byte for byte as it was."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.inproc import InProcessRunner
from vmrunner.testing.prereq import require_tools
from vmrunner.testing.runnerproc import guest_config, scratch_dir

pytestmark = pytest.mark.guest

BOOT = 60.0
CMD = 30.0


@pytest.fixture
def vmdir() -> Iterator[Path]:
    with scratch_dir("vq2") as path:
        yield path


def _sector(image: Path, n: int) -> bytes:
    with image.open("rb") as f:
        f.seek(512 * n)
        return f.read(512).rstrip(b"\0")


def _qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, timeout=30)


async def test_the_guest_writes_into_the_overlay_not_the_base(
        vmdir: Path, guest_image: GuestImage, accel: AccelVerdict) -> None:
    require_tools("qemu-img")
    base, overlay, flat = vmdir / "base.raw", vmdir / "overlay.qcow2", vmdir / "flat.raw"
    base.write_bytes(b"BASE\n".ljust(512, b"\0") * 2 + bytes(2**20 - 1024))
    before = hashlib.sha256(base.read_bytes()).hexdigest()
    _qemu_img("create", "-q", "-f", "qcow2", "-b", str(base), "-F", "raw", str(overlay))
    config = guest_config(vmdir, guest_image, accel=str(accel.accel),
                          drives=[{"file": str(overlay), "format": "qcow2"}])
    async with InProcessRunner(config) as vm:
        await vm.console.wait_ready(BOOT)
        assert await vm.console.check("tg disk-read /dev/vda 1", CMD) == ["BASE"]
        await vm.console.check("tg disk-mark OVERLAY /dev/vda 0", CMD)
        assert await vm.console.check("tg disk-read /dev/vda 0", CMD) == ["OVERLAY"]
    assert hashlib.sha256(base.read_bytes()).hexdigest() == before
    _qemu_img("convert", "-f", "qcow2", "-O", "raw", str(overlay), str(flat))
    assert (_sector(flat, 0), _sector(flat, 1)) == (b"OVERLAY\n", b"BASE\n")
