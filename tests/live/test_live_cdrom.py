"""CD-ROM media follow config edits, observed from inside the real guest (issue 5, item 4).

The runner tree runs in-process (``InProcessRunner``) with a :class:`CdromController`, so the
test awaits its typed events; the guest (cloud flavour, ``scsi-cd`` on virtio-scsi) mounts
and reads the media through its serial console. One boot walks through: a change the guest
reads, a change while the guest holds the CD mounted (pending, then applied once the guest
ejects), a guest eject afterwards (reported, not undone), a missing image (rejected, VM
unaffected) and the retry that finds a tray the guest unmounted without ejecting.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vmrunner.components.cdrom import CdromController
from vmrunner.core import Event
from vmrunner.events import CdromEjectedByGuest, CdromMediumChange, ExecuteQmp, Outcome, QmpReply
from vmrunner.protocols.qmp import commands
from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.inproc import InProcessRunner
from vmrunner.testing.iso import make_iso
from vmrunner.testing.runnerproc import guest_config, scratch_dir

pytestmark = pytest.mark.guest

BOOT = 60.0
CMD = 30.0
EVENT = 20.0


@pytest.fixture
def vmdir() -> Iterator[Path]:
    with scratch_dir("vcd") as path:
        yield path


def _change(new: Path | None, outcome: Outcome) -> Any:
    return lambda e: e.new == new and e.outcome is outcome


async def _medium(vm: InProcessRunner, drive: str = "cd0") -> tuple[str | None, bool]:
    assert vm.runner is not None
    reply = await vm.runner.fire(ExecuteQmp(command=commands.QueryBlock()))
    for block in (reply or QmpReply()).unwrap():
        if block.get("qdev") == drive:
            inserted = block.get("inserted")
            return (inserted["file"] if inserted else None), bool(block["tray_open"])
    raise AssertionError(f"no {drive} in query-block")


def _tray_commands(events: list[Event[Any]]) -> list[str]:
    names = ("blockdev-open-tray", "blockdev-change-medium", "blockdev-remove-medium")
    return [e.command.name for e in events
            if isinstance(e, ExecuteQmp) and e.command.name in names]


async def test_cd_media_follow_the_config(vmdir: Path, guest_image: GuestImage,
                                          accel: AccelVerdict) -> None:
    isos = {n: make_iso(vmdir / f"{n.lower()}.iso", {"marker.txt": f"{n * 3}\n".encode()})
            for n in "ABCD"}

    def configure(file: Path) -> Path:
        return guest_config(vmdir, guest_image, accel=str(accel.accel),
                            drives=[{"type": "ide-cd", "bus": "scsi", "file": str(file)}])

    cdrom = CdromController(open_window=2.0, retry_initial=1.0, retry_max=2.0)
    async with InProcessRunner(configure(isos["A"]), cdrom) as vm:
        await vm.console.wait_ready(BOOT)
        rec, con = vm.recorder, vm.console
        assert "MARKER=AAA" in await con.check("tg cd-mount", CMD)
        await con.check("tg cd-umount", CMD)

        # 1. the tray is unlocked: the change lands at once and the guest reads it
        configure(isos["B"])
        await rec.wait_for(CdromMediumChange, _change(isos["B"], Outcome.APPLIED), EVENT)
        assert "MARKER=BBB" in await con.check("tg cd-mount", CMD)  # mounted: tray locked

        # 2. the guest holds the CD mounted: the change is pending, and visible as such
        configure(isos["C"])
        pending = await rec.wait_for(CdromMediumChange, _change(isos["C"], Outcome.PENDING),
                                     EVENT)
        assert "waits until" in pending.message
        status = cdrom.status()[0]
        assert status.pending_change and status.pending == isos["C"]
        assert status.medium == isos["B"]
        assert await con.check("cat /mnt/cd/marker.txt", CMD) == ["BBB"]
        assert await _medium(vm) == (str(isos["B"]), False)
        # ...then lands once the guest unmounts and ejects
        await con.check("tg cd-umount", CMD)
        await con.check("tg cd-eject", CMD)
        await rec.wait_for(CdromMediumChange, _change(isos["C"], Outcome.APPLIED), EVENT)
        assert not cdrom.status()[0].pending_change
        assert "MARKER=CCC" in await con.check("tg cd-mount", CMD)

        # 3. the guest ejects after the change: reported, and the medium is not pushed back
        await con.check("tg cd-eject", CMD)
        ejected = await rec.wait_for(CdromEjectedByGuest, None, EVENT)
        assert ejected.drive == "cd0" and ejected.medium == isos["C"]
        after = len(rec.events)
        assert await _medium(vm) == (str(isos["C"]), True)
        assert _tray_commands(rec.events[after:]) == []
        assert cdrom.status()[0].tray_open and not cdrom.status()[0].pending_change

        # 4. a missing image: rejected with the key path, nothing sent, VM unaffected
        missing = vmdir / "missing.iso"
        before = len(rec.events)
        configure(missing)
        rejected = await rec.wait_for(CdromMediumChange, _change(missing, Outcome.REJECTED),
                                      EVENT)
        assert rejected.message.startswith("/Runner/vm/drives/0/file: ")
        assert "no such file" in rejected.message
        assert _tray_commands(rec.events[before:]) == []
        assert (await con.check("tg info", CMD))[0].startswith("cpus=")
        assert await _medium(vm) == (str(isos["C"]), True)

        # 5. the guest unmounts but does not eject: the tray stays closed but unlocked, and
        #    the periodic retry of the open finds it
        configure(isos["C"])  # back to the medium QEMU has: nothing to do
        assert "MARKER=CCC" in await con.check("tg cd-mount", CMD)  # closes and locks it
        configure(isos["D"])
        await rec.wait_for(CdromMediumChange, _change(isos["D"], Outcome.PENDING), EVENT)
        await con.check("tg cd-umount", CMD)
        applied = await rec.wait_for(CdromMediumChange, _change(isos["D"], Outcome.APPLIED),
                                     EVENT)
        assert not applied.forced
        assert "MARKER=DDD" in await con.check("tg cd-mount", CMD)
        assert await vm.stop() == 0


async def test_ide_cd_force_eject_and_insert(vmdir: Path, generic_guest_image: GuestImage,
                                             accel: AccelVerdict) -> None:
    """``ide-cd`` on q35's AHCI (generic guest): ``forceAfter`` opens a locked tray, an
    empty ``file`` empties the drive, and a medium goes back into the empty drive."""
    isos = {n: make_iso(vmdir / f"{n.lower()}.iso", {"marker.txt": f"{n * 3}\n".encode()})
            for n in "ABC"}

    def configure(file: Path | None) -> Path:
        drive: dict[str, Any] = {"type": "ide-cd", "bus": "ide", "forceAfter": 3}
        if file is not None:
            drive["file"] = str(file)
        return guest_config(vmdir, generic_guest_image, accel=str(accel.accel),
                            drives=[drive])

    cdrom = CdromController(open_window=1.0, retry_initial=1.0, retry_max=2.0)
    async with InProcessRunner(configure(isos["A"]), cdrom) as vm:
        await vm.console.wait_ready(BOOT)
        rec, con = vm.recorder, vm.console
        assert "MARKER=AAA" in await con.check("tg cd-mount", CMD)  # locks the tray

        # forceAfter: pending first, then forced; the guest's old mount goes stale
        configure(isos["B"])
        pending = await rec.wait_for(CdromMediumChange, _change(isos["B"], Outcome.PENDING),
                                     EVENT)
        forced = await rec.wait_for(CdromMediumChange, _change(isos["B"], Outcome.APPLIED),
                                    EVENT)
        assert forced.forced and "by force" in forced.message
        assert rec.events.index(pending) < rec.events.index(forced)
        assert await _medium(vm) == (str(isos["B"]), False)
        await con.check("tg cd-umount", CMD)
        assert "MARKER=BBB" in await con.check("tg cd-mount", CMD)
        await con.check("tg cd-umount", CMD)

        # no file: the drive is emptied (tray unlocked, so no force needed)
        configure(None)
        emptied = await rec.wait_for(CdromMediumChange, _change(None, Outcome.APPLIED), EVENT)
        assert not emptied.forced
        assert await _medium(vm) == (None, False)
        assert (await con.run("tg cd-mount", CMD)).rc != 0

        # and a medium goes into the empty drive
        configure(isos["C"])
        await rec.wait_for(CdromMediumChange, _change(isos["C"], Outcome.APPLIED), EVENT)
        assert "MARKER=CCC" in await con.check("tg cd-mount", CMD)
        assert await vm.stop() == 0
