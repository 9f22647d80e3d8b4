"""Smoke tests of the tiny test guest itself, with QEMU and QMP directly.

One VM (cloud kernel, swtpm, CD, qemu-ga, balloon) is shared by the independent
checks; power-off, the power-button knob, the boot counter and the generic flavour
get their own short-lived VMs.  Timeouts are sized for TCG (see docs/design/testing.md).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.iso import make_iso
from vmrunner.testing.prereq import require_tools
from vmrunner.testing.qemu import GuestSpec, GuestVM, describe_exit, raw_disk, wait_event
from vmrunner.testing.qga import QgaClient

pytestmark = [pytest.mark.guest, pytest.mark.asyncio(loop_scope="module")]

BOOT = 90.0        # observed ~3 s under TCG
CMD = 30.0
MIB = 2**20


def _is_cd0(event: dict[str, object]) -> bool:
    data = event.get("data")
    return isinstance(data, dict) and data.get("id") == "cd0"


async def _memtotal_kb(vm: GuestVM) -> int:
    assert vm.console
    lines = await vm.console.check("tg mem", CMD)
    line = next(x for x in lines if x.startswith("MemTotal:"))
    return int(line.split()[1])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def vm(guest_image: GuestImage, accel: AccelVerdict,
             tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GuestVM]:
    """The shared VM: 512 MiB, 1 of 4 vCPUs, CD (scsi-cd), swtpm TPM, qemu-ga, a disk."""
    require_tools("swtpm")
    work = tmp_path_factory.mktemp("shared-vm")
    iso = make_iso(work / "a.iso", {"marker.txt": b"A\n"})
    spec = GuestSpec(guest_image, accel, cdrom=iso, tpm=True, qga=True,
                     disks=(raw_disk(work / "disk.img"),))
    async with GuestVM(spec, work) as machine:
        details = await machine.start(timeout=BOOT)
        print(f"shared VM ready in {machine.boot_seconds:.2f} s: {details}")
        yield machine


async def test_boots_to_ready(vm: GuestVM) -> None:
    assert vm.console
    ready = vm.console.lines[next(i for i, x in enumerate(vm.console.lines)
                                  if x.startswith("TG-READY"))]
    for want in ("tpm=yes", "cd=yes", "qga=yes"):
        assert want in ready, ready
    status = await vm.qmp.execute("query-status")
    assert status["status"] == "running" and status["running"] is True, status


async def test_tpm_visible_with_swtpm(vm: GuestVM) -> None:
    assert vm.console
    out = await vm.console.check("tg tpm", CMD)
    assert "version_major=2" in out and "tpm=ok" in out, out


async def test_qemu_guest_agent_answers(vm: GuestVM) -> None:
    qga = await QgaClient.connect(vm.qga_socket)
    try:
        await qga.sync()
        assert await qga.execute("guest-ping") == {}
        info = await qga.execute("guest-get-osinfo")
        assert info["id"] == "vmrunner-tg", info
    finally:
        await qga.close()


async def test_balloon_change_reaches_guest(vm: GuestVM) -> None:
    full = vm.spec.memory_mib * MIB
    target = 256 * MIB
    before_kb = await _memtotal_kb(vm)
    for value in (target, full):
        with vm.events("BALLOON_CHANGE") as listener:
            await vm.qmp.execute("balloon", {"value": value})
            event = await wait_event(listener, lambda e, v=value: e["data"]["actual"] == v, 30)
        assert event is not None, f"no BALLOON_CHANGE to {value >> 20} MiB"
        assert (await vm.qmp.execute("query-balloon")) == {"actual": value}
        if value == target:
            shrunk_kb = await _memtotal_kb(vm)
            # the guest gives the ballooned pages up: MemTotal drops by ~256 MiB
            assert before_kb - shrunk_kb > 200 * 1024, (before_kb, shrunk_kb)
    assert await _memtotal_kb(vm) == before_kb


async def test_cd_tray_stays_locked_until_guest_ejects(vm: GuestVM) -> None:
    con = vm.console
    assert con
    assert "mounted" in await con.check("tg cd-mount", CMD)
    cd = next(b for b in await vm.qmp.execute("query-block") if b.get("qdev") == "cd0")
    assert cd["locked"] is True and cd["tray_open"] is False, cd

    with vm.events("DEVICE_TRAY_MOVED", where=_is_cd0) as trays:
        since = con.mark()
        # On a locked tray QEMU only forwards an eject request and still returns {}.
        assert await vm.qmp.execute("blockdev-open-tray", {"id": "cd0", "force": False}) == {}
        await con.wait_for(r"^TG-EVENT eject-request sr0 policy=manual", since=since,
                           timeout=CMD)
        assert await wait_event(trays, timeout=3.0) is None, "tray opened although locked"
        cd = next(b for b in await vm.qmp.execute("query-block") if b.get("qdev") == "cd0")
        assert cd["tray_open"] is False, cd

        assert "ejected" in await con.check("tg cd-eject", CMD)
        moved = await wait_event(trays, timeout=10.0)
    assert moved is not None and moved["data"]["tray-open"] is True, moved
    cd = next(b for b in await vm.qmp.execute("query-block") if b.get("qdev") == "cd0")
    assert cd["tray_open"] is True and cd["locked"] is False, cd


async def test_hotplugged_vcpu_comes_online_and_unplugs(vm: GuestVM) -> None:
    con = vm.console
    assert con
    free = [s for s in await vm.qmp.execute("query-hotpluggable-cpus") if "qom-path" not in s]
    slot = min(free, key=lambda s: s["props"]["core-id"])
    since = con.mark()
    await vm.qmp.execute("device_add", {"driver": slot["type"], "id": "hcpu1", **slot["props"]})
    cpu = await con.wait_for(r"^TG-EVENT cpu-online (cpu\d+)", since=since, timeout=CMD)
    assert cpu.group(1) == "cpu1"
    assert "online=0-1 present=0-1" in await con.check("tg cpus", CMD)

    # Unplug: the guest kernel offlines and ejects the vCPU by itself.  QEMU 7.2 under
    # TCG never emits DEVICE_DELETED for the CPU, so wait for the ACPI eject status.
    with vm.events("ACPI_DEVICE_OST") as ost:
        await vm.qmp.execute("device_del", {"id": "hcpu1"})
        done = await wait_event(
            ost, lambda e: e["data"]["info"].get("source") == 3
            and e["data"]["info"].get("status") == 0, 30)
    assert done is not None, "no ACPI_DEVICE_OST completing the unplug"
    assert len(await vm.qmp.execute("query-cpus-fast")) == 1
    assert "online=0 present=0" in await con.check("tg cpus", CMD)


async def test_powerdown_syncs_disk_marker(guest_image: GuestImage, accel: AccelVerdict,
                                          tmp_path: Path) -> None:
    disk = raw_disk(tmp_path / "disk.img")
    marker = f"tg-marker-{uuid.uuid4().hex}"
    async with GuestVM(GuestSpec(guest_image, accel, disks=(disk,)), tmp_path) as vm:
        await vm.start(timeout=BOOT)
        assert vm.console
        assert await vm.console.check(f"tg disk-mark {marker}", CMD) == ["marked /dev/vda"]
        with vm.events("SHUTDOWN") as shutdown:
            await vm.qmp.execute("system_powerdown")
            rc = await vm.wait_exit(30)
            event = await wait_event(shutdown, timeout=1)
        assert rc == 0, describe_exit(vm)
        assert event is not None and event["data"] == {"guest": True,
                                                       "reason": "guest-shutdown"}, event
        assert "TG-SHUTDOWN" in vm.console.lines  # the syncing shutdown path ran
    assert disk.read_bytes()[:512] == (marker + "\n").encode().ljust(512, b"\0")


async def test_power_button_can_be_ignored(guest_image: GuestImage, accel: AccelVerdict,
                                           tmp_path: Path) -> None:
    spec = GuestSpec(guest_image, accel, knobs=("tg.powerbtn=ignore",))
    async with GuestVM(spec, tmp_path) as vm:
        await vm.start(timeout=BOOT)
        assert vm.console
        since = vm.console.mark()
        await vm.qmp.execute("system_powerdown")
        await vm.console.wait_for(r"^TG-EVENT power-button action=ignore", since=since,
                                  timeout=CMD)
        assert await vm.wait_exit(3) is None, "guest powered off despite tg.powerbtn=ignore"
        assert (await vm.console.run("true", CMD)).rc == 0
        await vm.qmp.execute("quit")
        assert await vm.wait_exit(30) == 0


async def test_boot_counter_counts_resets(guest_image: GuestImage, accel: AccelVerdict,
                                          tmp_path: Path) -> None:
    disk = raw_disk(tmp_path / "disk.img")
    spec = GuestSpec(guest_image, accel, disks=(disk,), reboot=True,
                     knobs=("tg.bootcount=vda", "tg.bootcount_sector=8"))
    async with GuestVM(spec, tmp_path) as vm:
        assert "boots=1" in await vm.start(timeout=BOOT)
        assert vm.console
        since = vm.console.mark()
        await vm.qmp.execute("system_reset")
        again = await vm.console.wait_for(r"^TG-READY (.*)", since=since, timeout=BOOT)
        assert "boots=2" in again.group(1)
        await vm.qmp.execute("quit")
        assert await vm.wait_exit(30) == 0
    assert disk.read_bytes()[8 * 512:9 * 512].rstrip(b"\0") == b"TGBOOT 2\n"


async def test_generic_flavor_mounts_ide_cd(generic_guest_image: GuestImage,
                                            accel: AccelVerdict, tmp_path: Path) -> None:
    iso = make_iso(tmp_path / "b.iso", {"marker.txt": b"B\n"})
    spec = GuestSpec(generic_guest_image, accel, cdrom=iso, cd_bus="ide", balloon=False)
    async with GuestVM(spec, tmp_path) as vm:
        await vm.start(timeout=BOOT)
        assert vm.console
        out = await vm.console.check("tg cd-mount", CMD)
        assert "MARKER=B" in out, out
        cd = next(b for b in await vm.qmp.execute("query-block") if b.get("qdev") == "cd0")
        assert cd["locked"] is True, cd
        await vm.qmp.execute("system_powerdown")
        assert await vm.wait_exit(30) == 0, describe_exit(vm)
