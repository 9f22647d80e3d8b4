"""What VM-Operator's manager writes (contract §2) is accepted, validated and rendered.

The corpus ``tests/data/manager/*.yaml`` is written after the contract, one file per shape.
Each file passes the real ``vmrunner check`` (exit 0, also with ``--strict``, so no key is
unknown) and renders to a QEMU command line whose important parts are asserted here. The real
boots of some shapes are in ``tests/live/test_live_manager_configs.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from vmrunner.components.reset import reset_requested
from vmrunner.config.model import RunnerConfig
from vmrunner.config.reload_plan import classify
from vmrunner.config.sizes import GIB, KIB, MIB
from vmrunner.config.validate import load_config, validate_values
from vmrunner.vmtypes.cloudinit import cloud_init_files
from vmrunner.vmtypes.prepare import plan_start
from vmrunner.vmtypes.render import ram_size_arg

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "data" / "manager"
SHAPES = sorted(p.stem for p in CORPUS.glob("*.yaml"))


def test_the_corpus_has_every_shape() -> None:
    assert {"crd-defaults", "no-disk", "no-nic", "ram-decimal", "ram-binary", "empty-cd",
            "block-devices", "topology", "full"} <= set(SHAPES)


def _vmrunner(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmrunner", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=60, check=False)


SPICE_LOOPBACK = ("warning: /Runner/vm/display/spice: no password (no passwordFile, no "
                  "display-password file beside the configuration, no ticket): SPICE listens "
                  "on 127.0.0.1 only; give it a password, or set address and allowNoPassword: "
                  "true to serve it elsewhere without one")


@pytest.mark.parametrize("strict", [False, True], ids=["plain", "strict"])
@pytest.mark.parametrize("shape", SHAPES)
def test_vmrunner_check_accepts_the_shape(shape: str, strict: bool, tmp_path: Path) -> None:
    """``vmrunner check`` exits 0 and warns about nothing (``--strict``: unknown keys would
    be errors, so every key of the file is known), as in the manager's pod, where the VM's
    display secret (``display-password``) is mounted beside the configuration. The manager
    writes the files for a pod, so its disks (``/dev/<name>``) are not on this host:
    ``--no-host-files``."""
    config = tmp_path / "config.yaml"
    config.write_text((CORPUS / f"{shape}.yaml").read_text())
    (tmp_path / "display-password").write_text("pw")
    done = _vmrunner("check", "--no-host-files", "-c", str(config),
                     *(["--strict"] if strict else []))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "warning" not in output.lower(), output
    assert output.strip().endswith(": OK"), output


def test_without_no_host_files_the_pods_block_devices_are_missing_here() -> None:
    done = _vmrunner("check", "-c", str(CORPUS / "block-devices.yaml"))
    assert done.returncode == 2, done
    assert "/Runner/vm/drives/2/resource: /dev/system-disk does not exist" in done.stdout


@pytest.mark.parametrize("shape", SHAPES)
def test_without_a_display_secret_spice_is_kept_on_loopback(shape: str) -> None:
    """Without any password, a manager's SPICE (no ``address``) still passes ``check`` (exit
    0), with one warning naming the key path, and listens on 127.0.0.1 only."""
    done = _vmrunner("check", "--no-host-files", "-c", str(CORPUS / f"{shape}.yaml"),
                     "--strict")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    warnings = [line for line in output.splitlines() if "warning" in line.lower()]
    has_password = "ticket:" in (CORPUS / f"{shape}.yaml").read_text()
    assert warnings == ([] if has_password else [SPICE_LOOPBACK]), output


def test_vmrunner_render_exits_0() -> None:
    done = _vmrunner("render", "-c", str(CORPUS / "full.yaml"))
    assert done.returncode == 0, done.stderr
    assert "-m 500000000B" in done.stdout and "s3cr3t" not in done.stdout


def load(shape: str, **vm: Any) -> RunnerConfig:
    file = CORPUS / f"{shape}.yaml"
    if vm:
        document = yaml.safe_load(file.read_text())
        document["/Runner"]["vm"].update(vm)
        values = document["/Runner"]
        result = validate_values(values, base_dir=CORPUS)
    else:
        result = load_config(file)
    unexpected = [p for p in result.problems if str(p) != SPICE_LOOPBACK]
    assert result.ok and not unexpected, result.problems
    assert result.config is not None
    return result.config


def argv(shape: str, tmp_path: Path, **vm: Any) -> list[str]:
    """QEMU's argv for a corpus shape, with dataDir/runtimeDir moved into ``tmp_path``."""
    config = load(shape, **vm)
    config = config.model_copy(update={"data_dir": tmp_path / "data",
                                       "runtime_dir": tmp_path / "run"})
    rendered = plan_start(config).render(resolve_executables=False)
    return list(rendered.qemu.arguments)


def values_of(args: list[str], option: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == option]


def devices(args: list[str], driver: str) -> list[str]:
    return [d for d in values_of(args, "-device") if d.split(",", 1)[0] == driver]


def test_crd_defaults(tmp_path: Path) -> None:
    config = load("crd-defaults")
    vm = config.vm
    assert vm.maximum_ram == 10**9 and vm.network == [] and vm.drives == []
    assert config.reset_counter == 0 and config.guest_shutdown_stops is False
    args = argv("crd-defaults", tmp_path)
    assert values_of(args, "-m") == ["1000000000B"]
    assert values_of(args, "-cpu") == ["host"] and values_of(args, "-accel") == ["kvm"]
    assert values_of(args, "-smp") == ["cpus=1,maxcpus=1"]
    assert values_of(args, "-netdev") == [] and devices(args, "virtio-blk-pci") == []
    assert devices(args, "ide-cd") == [] and devices(args, "virtio-net") == []
    assert values_of(args, "-spice") == [
        "port=5900,addr=127.0.0.1,disable-ticketing=on,seamless-migration=on"]
    assert len(devices(args, "usb-redir")) == 2
    assert devices(args, "virtio-vga") == ["virtio-vga,id=video0,max_outputs=1"]
    assert "pflash0=fw-code" in values_of(args, "-machine")[0]  # firmware: uefi


def test_no_disk(tmp_path: Path) -> None:
    args = argv("no-disk", tmp_path)
    assert values_of(args, "-netdev") == ["user,id=hostnet0"]
    assert devices(args, "virtio-net") == ["virtio-net,netdev=hostnet0,id=net0"]
    assert devices(args, "virtio-blk-pci") == [] and devices(args, "ide-cd") == []
    assert values_of(args, "-smp") == ["cpus=1,maxcpus=2"]
    assert values_of(args, "-m") == ["512"]
    assert "pflash0" not in values_of(args, "-machine")[0]  # firmware: bios


def test_no_nic(tmp_path: Path) -> None:
    args = argv("no-nic", tmp_path)
    assert values_of(args, "-netdev") == [] and devices(args, "virtio-net") == []
    blockdevs = values_of(args, "-blockdev")
    assert ("driver=host_device,node-name=disk0-file,filename=/dev/no-nic-disk,read-only=off,"
            "aio=native,cache.direct=on,discard=unmap") in blockdevs
    assert devices(args, "virtio-blk-pci") == [
        "virtio-blk-pci,drive=disk0,id=disk0,bootindex=0"]
    assert devices(args, "ide-cd") == ["ide-cd,bus=ide.0,id=cd0,drive=cd0,bootindex=1"]
    assert any("filename=/var/local/vmop-image-repository/installer.iso" in b
               for b in blockdevs)


def test_ram_decimal(tmp_path: Path) -> None:
    vm = load("ram-decimal").vm
    assert (vm.maximum_ram, vm.current_ram) == (300 * 10**6, 250 * 10**6)
    assert values_of(argv("ram-decimal", tmp_path), "-m") == ["300000000B"]


def test_ram_binary(tmp_path: Path) -> None:
    vm = load("ram-binary").vm
    assert (vm.maximum_ram, vm.current_ram) == (4 * GIB, 2097156 * KIB)
    args = argv("ram-binary", tmp_path)
    assert values_of(args, "-m") == ["4096"]
    assert devices(args, "virtio-vga") == ["virtio-vga,id=video0,max_outputs=2"]


def test_empty_cd(tmp_path: Path) -> None:
    drive = load("empty-cd").vm.drives[0]
    assert (drive.type, drive.file, drive.bootindex) == ("ide-cd", None, 0)
    args = argv("empty-cd", tmp_path)
    assert devices(args, "ide-cd") == ["ide-cd,bus=ide.0,id=cd0,bootindex=0"]  # no drive=
    assert not any("cd0-file" in b for b in values_of(args, "-blockdev"))
    assert values_of(args, "-boot") == ["menu=on"]
    assert values_of(args, "-netdev") == ["bridge,id=hostnet0,br=br0"]
    assert any("_4M" in b or "4M" in b for b in values_of(args, "-blockdev")
               if "fw-code-file" in b)  # firmware: uefi-4m


def test_block_devices(tmp_path: Path) -> None:
    args = argv("block-devices", tmp_path)
    blockdevs = values_of(args, "-blockdev")
    for name in ("/dev/system-disk", "/dev/disk-1"):
        assert any(b.startswith("driver=host_device,") and f"filename={name}," in b
                   for b in blockdevs), (name, blockdevs)
    assert devices(args, "virtio-blk-pci") == [
        "virtio-blk-pci,drive=disk0,id=disk0,bootindex=1",
        "virtio-blk-pci,drive=disk1,id=disk1"]
    assert devices(args, "ide-cd") == ["ide-cd,bus=ide.0,id=cd0,drive=cd0,bootindex=0",
                                       "ide-cd,bus=ide.1,id=cd1,drive=cd1"]
    assert "smm=on" in values_of(args, "-machine")[0]  # firmware: secure-4m
    assert devices(args, "virtio-net") == [
        "virtio-net,netdev=hostnet0,id=net0,mac=00:16:3e:33:58:18"]


def test_a_regular_file_as_resource_is_attached_as_a_file(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 4096)
    args = argv("no-nic", tmp_path, drives=[{"type": "raw", "resource": str(image)}])
    assert any(b.startswith("driver=file,") and f"filename={image}," in b
               for b in values_of(args, "-blockdev"))


def test_topology_with_zeros(tmp_path: Path) -> None:
    vm = load("topology").vm
    assert (vm.sockets, vm.dies_per_socket, vm.cores_per_die, vm.threads_per_core) == (
        1, None, 2, None)
    assert (vm.maximum_cpus, vm.effective_current_cpus) == (2, 1)
    assert values_of(argv("topology", tmp_path), "-smp") == [
        "cpus=1,maxcpus=2,sockets=1,cores=2"]


def test_full(tmp_path: Path) -> None:
    config = load("full")
    assert config.update_template and config.guest_shutdown_stops
    assert config.reset_counter == 3 and config.template == "Standard-VM.yaml.mako"
    spice = config.vm.display.spice if config.vm.display else None
    assert spice is not None
    assert (spice.ticket, spice.streaming_video, spice.usb_redirects) == ("s3cr3t", "filter", 3)
    assert config.vm.display is not None and config.vm.display.logged_in_user == "alice"
    args = argv("full", tmp_path)
    assert values_of(args, "-uuid") == ["7f2c0a5e-9a43-4c2e-b1d6-0c8e7f3a9b11"]
    assert values_of(args, "-m") == ["500000000B"]
    assert values_of(args, "-smp") == [
        "cpus=2,maxcpus=4,sockets=1,dies=1,cores=2,threads=2"]
    assert values_of(args, "-rtc") == ["base=localtime,clock=host,driftfix=slew"]
    assert values_of(args, "-boot") == ["menu=on"]
    assert devices(args, "tpm-tis") == ["tpm-tis,tpmdev=tpm0"]
    assert values_of(args, "-netdev") == ["bridge,id=hostnet0,br=br0",
                                          "user,id=hostnet1,net=10.0.9.0/24"]
    assert devices(args, "virtio-blk-pci") == [
        "virtio-blk-pci,drive=disk0,id=disk0,bootindex=1",
        "virtio-blk-pci,drive=cidata,id=cidata"]
    assert devices(args, "ide-cd") == ["ide-cd,bus=ide.0,id=cd0,bootindex=0"]
    ticket = tmp_path / "run" / "spice-ticket"
    assert values_of(args, "-object")[-1] == (
        f"secret,id=spice-password,file={ticket},format=raw")
    assert values_of(args, "-spice") == [
        "port=5910,password-secret=spice-password,streaming-video=filter,"
        "seamless-migration=on"]
    assert len(devices(args, "usb-redir")) == 3
    assert devices(args, "virtio-vga") == ["virtio-vga,id=video0,max_outputs=2"]
    assert not any("s3cr3t" in a for a in args)


def test_full_cloud_init_maps_reach_the_image() -> None:
    config = load("full")
    assert config.cloud_init is not None
    files = cloud_init_files(config.cloud_init, config.vm.name)
    meta = yaml.safe_load(files["meta-data"])
    assert meta == {"instance-id": "v7", "local-hostname": "full",
                    "tags": {"team": "a/b", "note": "été"}}
    user = files["user-data"].decode()
    assert user.startswith("#cloud-config\n")
    assert yaml.safe_load(user)["write_files"][0]["content"] == "hello\nworld\n"
    assert yaml.safe_load(files["network-config"])["ethernets"]["id0"]["dhcp4"] is True


def test_cpu_model_host_runs_as_max_without_kvm(tmp_path: Path) -> None:
    assert values_of(argv("full", tmp_path, accelerator="tcg"), "-cpu") == ["max"]
    assert values_of(argv("full", tmp_path, accelerator="kvm"), "-cpu") == ["host"]
    assert values_of(argv("full", tmp_path, accelerator="tcg", cpuModel="qemu64"),
                     "-cpu") == ["qemu64"]


@pytest.mark.parametrize("firmware", ["bios", "uefi", "uefi-4m", "secure", "secure-4m"])
def test_every_firmware_renders(firmware: str, tmp_path: Path) -> None:
    args = argv("full", tmp_path, firmware=firmware)
    machine = values_of(args, "-machine")[0]
    assert ("pflash0=fw-code" in machine) == (firmware != "bios")
    assert ("smm=on" in machine) == firmware.startswith("secure")


def test_ram_sizes_go_to_qemu_unrounded() -> None:
    assert ram_size_arg(GIB) == "1024"
    assert ram_size_arg(10**9) == "1000000000B"
    assert ram_size_arg(MIB + 1) == f"{MIB + 1}B"


def vm_values(**vm: Any) -> dict[str, Any]:
    return {"vm": {"name": "t", **vm}}


def test_null_network_and_drives_mean_none_absent_network_means_the_default() -> None:
    config = RunnerConfig.model_validate(vm_values(network=None, drives=None))
    assert config.vm.network == [] and config.vm.drives == []
    assert [n.type for n in RunnerConfig.model_validate(vm_values()).vm.network] == ["tap"]


@pytest.mark.parametrize(("vm", "maximum"), [
    ({"sockets": 2, "coresPerDie": 2, "diesPerSocket": 1, "threadsPerCore": 2}, 8),
    ({"sockets": 1, "diesPerSocket": 0, "coresPerDie": 0, "threadsPerCore": 0}, 1),
    ({"sockets": 2, "diesPerSocket": 0, "coresPerDie": 0, "threadsPerCore": 0,
      "currentCpus": 3}, 4),
    ({"currentCpus": 3}, 3),
    ({}, 1),
])
def test_maximum_cpus_unset_is_derived(vm: dict[str, Any], maximum: int) -> None:
    assert RunnerConfig.model_validate(vm_values(**vm)).vm.maximum_cpus == maximum


@pytest.mark.parametrize(("vm", "path"), [
    ({"sockets": 2, "coresPerDie": 0, "maximumCpus": 3}, "/Runner/vm/maximumCpus"),
    ({"sockets": -1}, "/Runner/vm/sockets"),
    ({"maximumRam": "1000 kB"}, "/Runner/vm/maximumRam"),
    ({"maximumRam": "1 GB", "currentRam": "2 GB"}, "/Runner/vm/currentRam"),
    ({"drives": [{"type": "ide-cd", "file": "https://test.com/test.iso"}]},
     "/Runner/vm/drives/0/file"),
    ({"drives": [{"type": "raw", "file": ""}]}, "/Runner/vm/drives/0/file"),
    ({"drives": [{"type": "raw", "resource": ""}]}, "/Runner/vm/drives/0/resource"),
    ({"display": {"spice": {"streaming-video": "sometimes"}}},
     "/Runner/vm/display/spice/streaming-video"),
    ({"display": {"spice": {"streaming-video": "all", "streamingVideo": "all"}}},
     "/Runner/vm/display/spice"),
])
def test_bad_manager_values_name_the_key(vm: dict[str, Any], path: str) -> None:
    result = validate_values(vm_values(**vm))
    assert not result.ok
    assert [p.path for p in result.errors] == [path], result.errors


def test_spice_keys_in_both_spellings_and_an_empty_ticket() -> None:
    hyphen = RunnerConfig.model_validate(
        vm_values(display={"spice": {"streaming-video": "all", "ticket": ""}}))
    camel = RunnerConfig.model_validate(
        vm_values(display={"spice": {"streamingVideo": "all"}}))
    assert hyphen == camel
    assert hyphen.vm.display is not None and hyphen.vm.display.spice is not None
    assert hyphen.vm.display.spice.ticket is None


@pytest.mark.parametrize(("previous", "counter", "resets"), [
    (0, 1, True),     # an increment
    (3, 4, True),
    (3, 3, False),    # unchanged
    (3, 0, False),    # the manager restarted: new baseline
    (3, 1, True),     # the manager restarted and reset once; its 0 was not seen
    (5, 2, True),
    (None, 1, False),  # appears: only remembered
    (1, None, False),  # disappears
])
def test_reset_counter_rule(previous: int | None, counter: int | None, resets: bool) -> None:
    assert reset_requested(previous, counter) is resets


def test_the_ticket_is_a_secret() -> None:
    """A reload plan (published as an event) and the model's repr never show the ticket."""
    old, new = (RunnerConfig.model_validate(vm_values(display={"spice": {"ticket": t}}))
                for t in ("old-s3cr3t", "new-s3cr3t"))
    (entry,) = classify(old, new)
    assert entry.path == "/Runner/vm/display/spice/ticket"
    assert "s3cr3t" not in f"{entry.old} {entry.new} {entry.reason}"
    assert entry.klass.value == "restart"
    assert "s3cr3t" not in repr(new)


def test_spice_password_comes_from_password_file_then_display_password_then_ticket(
        tmp_path: Path) -> None:
    """VM-Operator's display secret (``display-password`` beside config.yaml) turns SPICE
    passwords on without any key; ``passwordFile`` wins over it, it wins over ``ticket``."""
    from vmrunner.config.spice import spice_password_source

    def source(spice: dict[str, Any]) -> str | None:
        result = validate_values(vm_values(display={"spice": spice}), base_dir=tmp_path)
        assert result.config is not None
        return spice_password_source(result.config)

    assert source({}) is None
    assert source({"ticket": "t"}) == "ticket"
    (tmp_path / "display-password").write_text("pw")
    assert source({"ticket": "t"}) == "display-password"
    assert source({}) == "display-password"
    assert source({"passwordFile": "elsewhere"}) == "passwordFile"
