"""A pending CD change lands as soon as the guest unlocks the tray (issue 16, item 5), on the
real test guest.

A guest that unmounts the CD without ejecting leaves the tray closed but unlocked, and QEMU
tells nobody (no event). The controller's open attempts back off up to ``retry_max``; here
that is 30 s, so only the ``query-block`` polling of the lock state can make the change land
within the 0.5 s allowed after an independent QMP observer (a second monitor, polling every
10 ms) saw the unlock. With ``lock_poll=0`` the same steps wait for the next attempt: 3.9 s
after the unlock with the default backoff, measured.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmrunner.components.cdrom import CdromController
from vmrunner.events import CdromMediumChange, Outcome, VmContinued
from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.inproc import InProcessRunner
from vmrunner.testing.iso import make_iso
from vmrunner.testing.observer import TrayLockObserver, observer_template
from vmrunner.testing.runnerproc import guest_config, scratch_dir

pytestmark = pytest.mark.guest

BOOT = 60.0
CMD = 30.0
LAG_BOUND = 0.5


@pytest.fixture
def vmdir() -> Iterator[Path]:
    with scratch_dir("cdc") as path:
        yield path


async def test_pending_cd_change_lands_when_the_guest_unlocks_the_tray(
        vmdir: Path, guest_image: GuestImage, accel: AccelVerdict) -> None:
    isos = {n: make_iso(vmdir / f"{n.lower()}.iso", {"marker.txt": f"{n * 3}\n".encode()})
            for n in "AB"}
    socket = vmdir / "obs.sock"
    template = observer_template(vmdir, socket)

    def configure(file: Path) -> Path:
        return guest_config(vmdir, guest_image, accel=str(accel.accel),
                            runner={"template": template.name, "templateDirs": [str(vmdir)]},
                            drives=[{"type": "ide-cd", "bus": "scsi", "file": str(file)}])

    cdrom = CdromController(open_window=1.0, retry_initial=30.0, retry_max=30.0)
    async with InProcessRunner(configure(isos["A"]), cdrom) as vm:
        await vm.recorder.wait_for(VmContinued, timeout=BOOT)
        await vm.console.wait_ready(BOOT)
        rec, con = vm.recorder, vm.console
        assert "MARKER=AAA" in await con.check("tg cd-mount", CMD)  # mounted: tray locked
        configure(isos["B"])
        await rec.wait_for(CdromMediumChange,
                           lambda e: e.new == isos["B"] and e.outcome is Outcome.PENDING, CMD)
        async with TrayLockObserver(socket, "cd0") as observer:
            start = time.perf_counter()
            await observer.wait_first(lambda locked: locked is True, start, 5)
            await con.check("tg cd-umount", CMD)  # unlocked, the tray stays closed
            unlocked = await observer.wait_first(lambda locked: locked is False, start, 5)
            await rec.wait_for(CdromMediumChange,
                               lambda e: e.new == isos["B"] and e.outcome is Outcome.APPLIED,
                               20)
            applied = time.perf_counter()
        assert applied - unlocked < LAG_BOUND, (applied - unlocked, con.tail())
        assert "MARKER=BBB" in await con.check("tg cd-mount", CMD)
