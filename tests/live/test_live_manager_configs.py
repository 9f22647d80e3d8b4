"""Manager-shaped configurations boot the test guest (issue 13, item 1), under TCG.

Each test takes a file of the corpus ``tests/data/manager/`` as VM-Operator's manager would
write it and overlays only what the test bed needs: the test guest's kernel boot, the
accelerator, private dataDir/runtimeDir, a free SPICE port on loopback, no tap NIC (there is
no bridge here), bootindex + 1 (``-kernel`` takes 0) and, for ``/dev/<name>`` disks, a real
loop device. The configuration is
published the way kubelet publishes a ConfigMap volume (timestamped directory, ``..data``
swap), beside a ``logging.properties``. The real ``vmrunner run`` runs it; the guest reports
what it sees (RAM, vCPUs, TPM, the cloud-init data, the auto-login, the disk).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from qemu.qmp import ConnectError, QMPClient

from vmrunner.config.validate import validate_values
from vmrunner.proc.sockets import wait_for_socket
from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.iso import make_iso
from vmrunner.testing.runnerproc import RunnerProcess, scratch_dir
from vmrunner.testing.spice import LINK_OK, LINK_PERMISSION_DENIED, spice_link

pytestmark = pytest.mark.guest

CORPUS = Path(__file__).resolve().parents[1] / "data" / "manager"
BOOT = 120.0
CMD = 30.0
STOP = 60.0
LOGGING_PROPERTIES = "handlers=java.util.logging.ConsoleHandler\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def kubelet_publish(etc: Path, files: dict[str, str]) -> None:
    """Write ``files`` into ``etc`` as kubelet's AtomicWriter does for a ConfigMap volume: a
    new timestamped directory, ``..data`` swapped to it atomically, and the user-visible
    names as links into ``..data`` (created once)."""
    etc.mkdir(parents=True, exist_ok=True)
    new = etc / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    new.mkdir()
    for name, text in files.items():
        (new / name).write_text(text)
    old = os.readlink(etc / "..data") if (etc / "..data").is_symlink() else None
    for name in files:
        if not (etc / name).is_symlink():
            os.symlink(f"..data/{name}", etc / name)
    os.symlink(new.name, etc / "..data_tmp")
    os.rename(etc / "..data_tmp", etc / "..data")
    if old is not None:
        shutil.rmtree(etc / old)


def overlay(shape: str, base: Path, image: GuestImage, accel: AccelVerdict, *,
            disk: Path | None = None, knobs: tuple[str, ...] = ()) -> dict[str, Any]:
    """The corpus file ``shape`` with the test bed's keys overlaid (see module docs)."""
    document = yaml.safe_load((CORPUS / f"{shape}.yaml").read_text())
    runner = document["/Runner"]
    runner["dataDir"] = str(base / "data")
    runner["runtimeDir"] = str(base / "etc" / "run")  # RunnerProcess: <config dir>/run
    vm = runner["vm"]
    vm["accelerator"] = accel.accel
    vm["powerdownTimeout"] = 30
    vm["kernel"] = {"image": str(image.kernel), "initrd": str(image.initrd),
                    "cmdline": image.cmdline(*knobs)}
    if vm.get("network"):
        vm["network"] = [n for n in vm["network"] if n["type"] != "tap"] or None
    if vm.get("drives"):
        drives = []
        for drive in vm["drives"]:
            if str(drive.get("resource", "")).startswith("/dev/"):
                if disk is None:
                    continue
                drive = {**drive, "resource": str(disk)}
            if "bootindex" in drive:  # QEMU's -kernel boot takes bootindex 0 itself
                drive = {**drive, "bootindex": drive["bootindex"] + 1}
            drives.append(drive)
        vm["drives"] = drives or None
    spice = (vm.get("display") or {}).get("spice")
    if spice is not None:
        spice["port"] = free_port()
        spice["address"] = "127.0.0.1"
    return document


@contextlib.contextmanager
def loop_device(backing: Path) -> Iterator[Path | None]:
    """A loop block device over ``backing`` (``None`` where losetup cannot make one)."""
    done = subprocess.run(["losetup", "--find", "--show", str(backing)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        yield None
        return
    device = Path(done.stdout.strip())
    try:
        yield device
    finally:
        subprocess.run(["losetup", "-d", str(device)], check=False)


@pytest.fixture
def base() -> Iterator[Path]:
    with scratch_dir("vmm", watched="etc/run") as path:
        yield path


class Booted:
    """A runner started on a kubelet-published manager config, with its guest's READY line."""

    def __init__(self, runner: RunnerProcess, ready: str, document: dict[str, Any]) -> None:
        self.runner, self.ready, self.document = runner, ready, document

    @property
    def vm(self) -> dict[str, Any]:
        return dict(self.document["/Runner"]["vm"])

    def field(self, name: str) -> str:
        match = re.search(rf"\b{name}=(\S+)", self.ready)
        assert match is not None, self.ready
        return match[1]

    async def stop(self) -> None:
        self.runner.signal(signal.SIGTERM)
        code = await self.runner.wait(STOP)
        assert code == 0, f"exit {code}\n{self.runner.log_tail()}"


async def boot(runners: list[RunnerProcess], base: Path, document: dict[str, Any],
               secret: dict[str, str] | None = None) -> Booted:
    etc = base / "etc"
    kubelet_publish(etc, {"config.yaml": yaml.safe_dump(document, sort_keys=False),
                          "logging.properties": LOGGING_PROPERTIES, **(secret or {})})
    check = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vmrunner", "check", "-c", str(etc / "config.yaml"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    said = (await check.communicate())[0].decode()
    assert check.returncode == 0 and "warning" not in said, said
    runner = RunnerProcess(etc / "config.yaml", log_level="INFO")
    runners.append(runner)
    await runner.start(timeout=BOOT)
    try:
        ready = await runner.wait_ready(BOOT)
    except Exception as exc:
        raise AssertionError(f"{exc}\n{runner.log_tail()}") from exc
    return Booted(runner, ready, document)


def qemu_argv(booted: Booted) -> list[str]:
    pid = booted.runner.pid_of("qemu")
    assert pid is not None, booted.runner.log_tail()
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def memtotal(booted: Booted) -> int:
    return int(booted.field("memtotal_kb")) * 1024


async def guest_memtotal(booted: Booted) -> int:
    assert booted.runner.console is not None
    lines = await booted.runner.console.check("tg mem", CMD)
    found = next(line for line in lines if line.startswith("MemTotal:"))
    return int(found.split()[1]) * 1024


async def balloon_reaches(booted: Booted, target: int, within: float = 60.0) -> int:
    """The guest's MemTotal once it is at most ``target`` (the balloon inflated)."""
    seen = await guest_memtotal(booted)
    deadline = time.monotonic() + within
    while seen > target and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        seen = await guest_memtotal(booted)
    return seen


async def test_no_disk_boots(base: Path, runners: list[RunnerProcess],
                             guest_image: GuestImage, accel: AccelVerdict) -> None:
    booted = await boot(runners, base, overlay("no-disk", base, guest_image, accel))
    assert booted.vm["drives"] is None  # the manager's bare `drives:`
    assert booted.field("cpus") == "0"  # currentCpus 1 of maximumCpus 2
    assert 400 * 2**20 < memtotal(booted) <= 512 * 2**20
    assert booted.runner.console is not None
    disks = await booted.runner.console.check("ls /sys/block", CMD)
    assert not any(name.startswith("vd") for line in disks for name in line.split()), disks
    # the user NIC: a virtio network device on the PCI bus (the guest has no driver for it)
    pci = await booted.runner.console.check(
        "for d in /sys/bus/pci/devices/*; do echo $(cat $d/vendor):$(cat $d/device); done", CMD)
    assert "0x1af4:0x1000" in pci, pci
    await booted.stop()


async def test_crd_defaults_boot(base: Path, runners: list[RunnerProcess],
                                 guest_image: GuestImage, accel: AccelVerdict) -> None:
    """The CRD's defaults: "1 GB" of RAM, UEFI, no NIC, no disk, SPICE without a password."""
    document = overlay("crd-defaults", base, guest_image, accel)
    booted = await boot(runners, base, document)
    assert booted.vm["network"] is None and booted.vm["drives"] is None
    assert booted.field("cpus") == "0"
    assert 850 * 10**6 < memtotal(booted) <= 10**9
    assert booted.runner.console is not None
    pci = await booted.runner.console.check(
        "for d in /sys/bus/pci/devices/*; do echo $(cat $d/vendor):$(cat $d/device); done", CMD)
    assert "0x1af4:0x1000" not in pci and "0x1af4:0x1001" not in pci, pci  # no NIC, no disk
    port = document["/Runner"]["vm"]["display"]["spice"]["port"]
    assert await spice_link("127.0.0.1", port, "anything") == LINK_OK
    await booted.stop()


async def wait_link(port: int, password: str, within: float) -> float:
    """Seconds until SPICE accepts ``password`` (polled every 50 ms)."""
    started = time.monotonic()
    while await spice_link("127.0.0.1", port, password) != LINK_OK:
        assert time.monotonic() - started < within, f"{password!r} not accepted"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_display_secret_beside_the_manager_config_sets_the_password(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel: AccelVerdict) -> None:
    """The manager's pod: no passwordFile in the config, the display secret's keys in the
    same projected volume. QEMU starts with ``display-password`` as its SPICE password, and a
    new one (a new volume version) is accepted well within the manager's 1.5 s."""
    document = overlay("crd-defaults", base, guest_image, accel)
    secret = {"display-password": "first-pw", "password-expiry": "never"}
    booted = await boot(runners, base, document, secret)
    port = document["/Runner"]["vm"]["display"]["spice"]["port"]
    assert await spice_link("127.0.0.1", port, "first-pw") == LINK_OK
    assert await spice_link("127.0.0.1", port, "other") == LINK_PERMISSION_DENIED
    assert not any("first-pw" in arg for arg in qemu_argv(booted))
    kubelet_publish(base / "etc", {
        "config.yaml": yaml.safe_dump(document, sort_keys=False),
        "logging.properties": LOGGING_PROPERTIES,
        "display-password": "second-pw", "password-expiry": "+60"})
    took = await wait_link(port, "second-pw", 5.0)
    assert took < 1.5, took
    assert await spice_link("127.0.0.1", port, "first-pw") == LINK_PERMISSION_DENIED
    assert "rejected" not in booted.runner.log_text()
    await booted.stop()


async def test_decimal_ram_boots_with_the_exact_size(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel: AccelVerdict) -> None:
    """``maximumRam: "300 MB"`` (not whole MiB) boots; the balloon takes the guest down to
    ``currentRam: "250 MB"``; both vCPUs are online."""
    booted = await boot(runners, base, overlay("ram-decimal", base, guest_image, accel))
    assert booted.vm["maximumRam"] == "300 MB" and booted.vm["network"] is None
    assert booted.field("cpus") == "0-1"
    assert qemu_argv(booted)[qemu_argv(booted).index("-m") + 1] == "300000000B"
    shrunk = await balloon_reaches(booted, 250 * 10**6)
    assert 200 * 10**6 < shrunk <= 250 * 10**6, shrunk
    await booted.stop()


async def test_full_feature_shape_boots(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel: AccelVerdict) -> None:
    """SPICE with the deprecated ticket, streaming-video, USB redirects and two outputs;
    TPM; UEFI; the topology; cloud-init from inline JSON maps; the auto-login; a ``/dev``
    disk (a real loop device where losetup works, else a file); ``logging.properties``
    changes are ignored without a word."""
    backing = base / "disk.img"
    backing.touch()
    os.truncate(backing, 16 * 2**20)
    with loop_device(backing) as device:
        document = overlay("full", base, guest_image, accel, disk=device or backing)
        booted = await boot(runners, base, document)
        console = booted.runner.console
        assert console is not None
        assert booted.field("cpus") == "0-1" and booted.field("tpm") == "yes"
        assert memtotal(booted) <= 500 * 10**6
        shrunk = await balloon_reaches(booted, 400 * 10**6)
        assert 340 * 10**6 < shrunk <= 400 * 10**6, shrunk

        # the auto-login of display.loggedInUser reached the guest's vmop agent
        await console.wait_for(r"TG-EVENT vmop login alice", timeout=CMD)

        # the ticket is the SPICE password; it is on no command line
        port = document["/Runner"]["vm"]["display"]["spice"]["port"]
        assert await spice_link("127.0.0.1", port, "s3cr3t") == LINK_OK
        assert await spice_link("127.0.0.1", port, "wrong") == LINK_PERMISSION_DENIED
        ticket = base / "etc" / "run" / "spice-ticket"
        assert ticket.stat().st_mode & 0o777 == 0o600
        assert not any("s3cr3t" in arg for arg in qemu_argv(booted))

        # cloud-init: the inline JSON maps are in the guest's NoCloud image
        meta = await console.check(
            "for d in /dev/vd?; do mount -t iso9660 -r $d /mnt 2>/dev/null && break; done; "
            "cat /mnt/meta-data; umount /mnt", CMD)
        assert "instance-id: v7" in meta and "local-hostname: full" in meta, meta

        # the /dev disk: what the guest writes lands in the backing file
        driver = "host_device" if device is not None else "file"
        assert f"driver={driver},node-name=disk0-file,filename={device or backing}," in \
            " ".join(qemu_argv(booted))
        await console.check("tg disk-mark MANAGER-DISK /dev/vda 3", CMD)
        assert b"MANAGER-DISK\n" in backing.read_bytes()[3 * 512:4 * 512]

        # a logging.properties change (a new ConfigMap version) is ignored silently
        before = len(booted.runner.log_text().splitlines())
        kubelet_publish(base / "etc", {
            "config.yaml": yaml.safe_dump(document, sort_keys=False),
            "logging.properties": LOGGING_PROPERTIES + ".level=FINE\n"})
        await asyncio.sleep(2.0)
        added = booted.runner.log_text().splitlines()[before:]
        assert not [line for line in added if re.search(
            r"config|logging|password|WARNING|ERROR", line)], added
        await booted.stop()
        assert not ticket.exists()  # the runner removes the ticket file when it stops


SHAPES = sorted(p.stem for p in CORPUS.glob("*.yaml"))


@pytest.mark.parametrize("shape", SHAPES)
async def test_qemu_accepts_every_shape_and_sizes_the_ram_itself(
        shape: str, base: Path, guest_image: GuestImage, accel: AccelVerdict) -> None:
    """Real QEMU (under ``-S``) takes each shape's command line as rendered, with RAM and
    vCPU slots as configured: ``-m`` not a whole MiB is rounded up to 8 KiB by QEMU itself.
    ``full`` also gets the most USB redirects and outputs the model allows (32, 16). The TPM
    is left out here (the boot test above has it), and the image repository's ISOs are
    replaced by a real one."""
    from vmrunner.vmtypes.launch import prepare

    document = overlay(shape, base, guest_image, accel, disk=base / "disk.img")
    vm = document["/Runner"]["vm"]
    vm["useTpm"] = False
    iso = make_iso(base / "cd.iso", {"marker.txt": b"CD\n"})
    for index, drive in enumerate(vm.get("drives") or ()):
        if drive["type"] == "ide-cd" and drive.get("file"):  # the image repository's ISOs
            drive["file"] = str(iso)
        if drive["type"] == "raw":  # one image file per /dev disk
            drive["resource"] = str(base / f"disk{index}.img")
            (base / f"disk{index}.img").write_bytes(b"\0" * 2**20)
    if shape == "full":
        vm["display"]["outputs"] = 16
        vm["display"]["spice"]["usbRedirects"] = 32
    result = validate_values(document["/Runner"], base_dir=base)
    assert result.ok and result.config is not None, result.problems
    config = result.config
    plan = prepare(config)
    process = await asyncio.create_subprocess_exec(
        *plan.qemu.argv, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    qmp = QMPClient("test")
    try:
        waiting = asyncio.ensure_future(wait_for_socket(plan.paths.monitor_socket))
        exited = asyncio.ensure_future(process.wait())
        await asyncio.wait({waiting, exited}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        exited.cancel()
        if not waiting.done():
            waiting.cancel()
            if process.returncode is None:
                process.kill()
            assert process.stderr is not None
            raise AssertionError((await process.stderr.read()).decode())
        try:
            async with asyncio.timeout(30):
                while True:  # QEMU binds the socket a moment before it listens
                    try:
                        await qmp.connect(str(plan.paths.monitor_socket))
                        break
                    except ConnectError as exc:
                        if not isinstance(exc.exc, ConnectionRefusedError):
                            raise
                        await asyncio.sleep(0.02)
                memory = await qmp.execute("query-memory-size-summary")
                slots = await qmp.execute("query-hotpluggable-cpus")
        except Exception as exc:
            if process.returncode is None:
                process.kill()
            assert process.stderr is not None
            raise AssertionError(f"{exc!r}: {(await process.stderr.read()).decode()}") from exc
    finally:
        with contextlib.suppress(Exception):
            await qmp.disconnect()
        if process.returncode is None:
            process.kill()
        await process.wait()
    assert isinstance(memory, dict) and isinstance(slots, list)
    size = config.vm.maximum_ram
    assert memory["base-memory"] == -(-size // 8192) * 8192, (size, memory)
    assert len(slots) == config.vm.maximum_cpus
