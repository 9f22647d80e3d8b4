"""The standard VM type's command lines against real QEMU 7.2 (and swtpm): accepted as rendered,
and config values cannot inject options."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vmt_qemu_run import qemu_error, running_qemu, wait_created

from vmrunner.config.validate import validate_values
from vmrunner.vmtypes.cloudinit import write_cloud_init_image
from vmrunner.vmtypes.prepare import StartPlan, plan_start

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="no QEMU")


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short directory under /tmp (unix socket paths are limited to 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="vmt-", dir="/tmp") as d:
        yield Path(d)


def plan(base: Path, vm: dict[str, Any], **runner: Any) -> StartPlan:
    values = {"dataDir": str(base / "data"), "runtimeDir": str(base / "run"),
              "vm": {"name": "q", "firmware": "bios", "accelerator": "tcg", "network": [],
                     **vm}, **runner}
    result = validate_values(values, base_dir=base)
    assert result.ok and result.config is not None, result.problems
    return plan_start(result.config, create=True)


async def test_full_featured_vm_is_accepted(short_dir: Path) -> None:
    (short_dir / "disk.img").write_bytes(b"\0" * 1024 * 1024)
    iso = write_cloud_init_image(
        validate_values({"vm": {"name": "x"}, "cloudInit": {}}).config.cloud_init,  # type: ignore[union-attr]
        "x", short_dir / "cd.iso")
    (short_dir / "pw").write_text("secret\n")
    p = plan(short_dir, {
        "useTpm": True, "firmware": "uefi-4m", "maximumRam": "256M", "currentRam": "200M",
        "maximumCpus": 4, "currentCpus": 2, "network": [{"type": "user"}],
        "drives": [{"file": "disk.img", "bootindex": 0}, {"type": "ide-cd"},
                   {"type": "ide-cd", "bus": "scsi", "file": str(iso)}],
        "display": {"outputs": 2, "spice": {"port": 0, "address": "127.0.0.1",
                                              "passwordFile": "pw", "usbRedirects": 1}},
        "kernel": None,
    }, cloudInit={"userData": {"packages": ["x"]}})
    config = p.inputs.config
    assert config.cloud_init is not None
    write_cloud_init_image(config.cloud_init, "q", p.inputs.paths.cloud_init_image)
    rendered = p.render()
    assert rendered.swtpm is not None
    swtpm = await asyncio.create_subprocess_exec(*rendered.swtpm.argv,
                                                 stdin=asyncio.subprocess.DEVNULL)
    try:
        await asyncio.wait_for(wait_created(p.inputs.paths.swtpm_socket, swtpm), 10)
        async with running_qemu(rendered.qemu.argv, p.inputs.paths.monitor_socket) as (_, qmp):
            status = await qmp.execute("query-status")
            assert status["status"] == "prelaunch"
            assert len(await qmp.execute("query-cpus-fast")) == 2
            assert len(await qmp.execute("query-hotpluggable-cpus")) == 4
            blocks = {b["qdev"]: b for b in await qmp.execute("query-block")}
            assert {"cd0", "cd1"} <= set(blocks)
            assert "inserted" not in blocks["cd0"] and "inserted" in blocks["cd1"]
            assert [t["id"] for t in await qmp.execute("query-tpm")] == ["tpm0"]
            spice = await qmp.execute("query-spice")
            assert spice["enabled"] and spice["auth"] == "spice"
            memory = await qmp.execute("query-memory-size-summary")
            assert memory["base-memory"] == 256 * 1024 * 1024
    finally:
        with contextlib.suppress(ProcessLookupError):
            swtpm.kill()
        await swtpm.wait()
    assert (p.inputs.paths.data_dir / "tpm2-00.permall").exists()
    assert p.inputs.paths.firmware_vars.stat().st_size == 540672


async def test_comma_in_a_drive_path_cannot_inject_options(short_dir: Path) -> None:
    # the literal path <dir>/x,file=/etc/shadow exists: a directory "x,file=" with etc/shadow
    literal = short_dir / "x,file=" / "etc" / "shadow"
    literal.parent.mkdir(parents=True)
    literal.write_bytes(b"\0" * 512)
    p = plan(short_dir, {"drives": [{"file": str(literal)}]})
    rendered = p.render()
    assert f"filename={short_dir}/x,,file=/etc/shadow," in " ".join(rendered.qemu.argv)
    async with running_qemu(rendered.qemu.argv, p.inputs.paths.monitor_socket) as (_, qmp):
        nodes = {n["node-name"]: n for n in await qmp.execute("query-named-block-nodes")}
        assert nodes["disk0-file"]["file"] == str(literal)


async def test_qemu_error_names_the_literal_path(short_dir: Path) -> None:
    missing = f"{short_dir}/none,file=/etc/shadow"
    p = plan(short_dir, {"drives": [{"file": missing}]})
    code, stderr = await qemu_error(p.render().qemu.argv)
    assert code != 0
    assert f"Could not open '{missing}'" in stderr


async def test_kernel_path_is_passed_verbatim(short_dir: Path) -> None:
    kernel = f"{short_dir}/no,such=kernel"
    p = plan(short_dir, {"kernel": {"image": kernel, "cmdline": "console=ttyS0,115200"}})
    argv = p.render().qemu.argv
    assert argv[argv.index("-append") + 1] == "console=ttyS0,115200"
    code, stderr = await qemu_error(argv)
    assert code != 0
    assert f"could not open kernel file '{kernel}'" in stderr
