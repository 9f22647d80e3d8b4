"""The standard VM type itself boots the real test guest (direct kernel boot, serial console
socket, TPM via swtpm, CD on virtio-scsi) and the guest powers off on the ACPI button."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path

import pytest
from vmt_qemu_run import running_qemu, wait_created

from vmrunner.config.validate import validate_values
from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.console import GuestConsole
from vmrunner.testing.guest import GuestImage
from vmrunner.vmtypes.prepare import plan_start


@pytest.mark.guest
async def test_standard_template_boots_the_test_guest(
    guest_image: GuestImage, accel: AccelVerdict
) -> None:
    with tempfile.TemporaryDirectory(prefix="vmt-", dir="/tmp") as tmp:
        base = Path(tmp)
        result = validate_values({
            "dataDir": str(base / "data"), "runtimeDir": str(base / "run"),
            "vm": {
                "name": "boot", "firmware": "bios", "useTpm": True, "network": [],
                "accelerator": "kvm" if accel.label == "kvm" else "tcg",
                "maximumRam": "256 MiB", "maximumCpus": 2, "currentCpus": 2, "audio": False,
                "drives": [{"type": "ide-cd", "bus": "scsi"}],
                "kernel": {"image": str(guest_image.kernel), "initrd": str(guest_image.initrd),
                           "cmdline": guest_image.cmdline()},
            }})
        assert result.config is not None, result.problems
        plan = plan_start(result.config, create=True)
        rendered = plan.render()
        assert rendered.swtpm is not None
        paths = plan.inputs.paths
        swtpm = await asyncio.create_subprocess_exec(*rendered.swtpm.argv,
                                                     stdin=asyncio.subprocess.DEVNULL)
        try:
            await asyncio.wait_for(wait_created(paths.swtpm_socket, swtpm), 10)
            async with running_qemu(rendered.qemu.argv, paths.monitor_socket) as (qemu, qmp):
                # QEMU listens on serialSocket (the runner's side of the console)
                reader, writer = await asyncio.open_unix_connection(str(paths.serial_socket))
                console = GuestConsole(reader, writer, base / "console.log")
                try:
                    await qmp.execute("cont")
                    details = await console.wait_ready(120)
                    assert "cpus=0-1" in details and "tpm=yes" in details and "qga=yes" in details
                    await qmp.execute("system_powerdown")
                    assert await asyncio.wait_for(qemu.wait(), 60) == 0
                finally:
                    await console.close()
        finally:
            with contextlib.suppress(ProcessLookupError):
                swtpm.kill()
            await swtpm.wait()
