"""SPICE password and expiry from a mounted-Secret-style directory, applied live (issue 5,
item 7), checked with real QEMU + SPICE: a minimal SPICE client
(:mod:`vmrunner.testing.spice`) links to QEMU's SPICE server and reports which password it
accepts right now. The passwords must never show up in logs, events, QEMU's argv or files.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vmrunner.components.display import DisplayController
from vmrunner.events import DisplayPasswordChange, ExecuteQmp, Outcome, QemuStarted
from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.inproc import InProcessRunner
from vmrunner.testing.runnerproc import guest_config, scratch_dir
from vmrunner.testing.spice import LINK_OK, LINK_PERMISSION_DENIED, spice_link

pytestmark = pytest.mark.guest

BOOT = 60.0
EVENT = 20.0


@pytest.fixture(scope="module", autouse=True)
def _spice() -> None:
    probe = subprocess.run(["qemu-system-x86_64", "-spice", "help"], capture_output=True,
                           check=False)
    if b"spice options" not in probe.stdout + probe.stderr:
        pytest.skip("this QEMU has no SPICE support")


@pytest.fixture
def vmdir() -> Iterator[Path]:
    with scratch_dir("vdp") as path:
        yield path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SecretVolume:
    """A directory laid out like a Kubernetes Secret volume: ``key -> ..data/key``,
    ``..data -> ..<version>``; :meth:`publish` swaps ``..data`` atomically like kubelet."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.version = 0

    def publish(self, **keys: str) -> None:
        self.version += 1
        old = (self.directory / "..data").resolve() if (self.directory / "..data").exists() \
            else None
        new = self.directory / f"..v{self.version}"
        new.mkdir()
        for key, value in keys.items():
            (new / key.replace("_", "-")).write_text(value)
            link = self.directory / key.replace("_", "-")
            if not link.is_symlink():
                link.symlink_to(Path("..data") / key.replace("_", "-"))
        tmp = self.directory / "..data_tmp"
        tmp.symlink_to(new.name)
        os.replace(tmp, self.directory / "..data")
        if old is not None:
            shutil.rmtree(old)


def _change(outcome: Outcome, serial: int, expiry: str | None = None) -> Any:
    return lambda e: (e.outcome is outcome and e.serial == serial
                      and (expiry is None or e.expiry == expiry))


async def test_password_and_expiry_follow_the_secret(
        vmdir: Path, guest_image: GuestImage, accel: AccelVerdict,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    pw = {n: f"pw{n}-{uuid.uuid4().hex[:12]}" for n in "ABCD"}
    port = _free_port()
    secret = SecretVolume(vmdir)
    secret.publish(display_password=pw["A"], password_expiry="never")
    config = guest_config(vmdir, guest_image, accel=str(accel.accel), display={
        "spice": {"port": port, "address": "127.0.0.1", "passwordFile": "display-password"}})

    async def link(password: str) -> int:
        return await spice_link("127.0.0.1", port, password)

    display = DisplayController(vmdir)
    async with InProcessRunner(config, display) as vm:
        rec = vm.recorder
        # applied before the guest runs (the initial ConfigureQemu waits for it)
        await rec.wait_for(DisplayPasswordChange, _change(Outcome.APPLIED, 1, "never"), EVENT)
        await vm.console.wait_ready(BOOT)
        assert await link(pw["A"]) == LINK_OK
        assert await link("wrong") == LINK_PERMISSION_DENIED

        # a new password with a relative expiry, through the volume's ..data swap
        secret.publish(display_password=pw["B"], password_expiry="+3600")
        await rec.wait_for(DisplayPasswordChange, _change(Outcome.APPLIED, 2, "+3600"), EVENT)
        assert await link(pw["B"]) == LINK_OK
        assert await link(pw["A"]) == LINK_PERMISSION_DENIED

        # an invalid expiry rejects the change as a whole
        secret.publish(display_password=pw["C"], password_expiry="tomorrow")
        rejected = await rec.wait_for(DisplayPasswordChange,
                                      _change(Outcome.REJECTED, 2), EVENT)
        assert rejected.message.startswith(f"{vmdir}/password-expiry: 'tomorrow'")
        assert await link(pw["B"]) == LINK_OK
        assert await link(pw["C"]) == LINK_PERMISSION_DENIED

        # an expiry-only change: "now" locks the current password out
        secret.publish(display_password=pw["B"], password_expiry="now")
        expired = await rec.wait_for(DisplayPasswordChange, _change(Outcome.APPLIED, 2, "now"),
                                     EVENT)
        assert not expired.password_changed
        assert await link(pw["B"]) == LINK_PERMISSION_DENIED

        # a new password after "now" works again (the expiry is re-sent with it)
        secret.publish(display_password=pw["D"], password_expiry="+3600")
        await rec.wait_for(DisplayPasswordChange, _change(Outcome.APPLIED, 3, "+3600"), EVENT)
        assert await link(pw["D"]) == LINK_OK
        assert display.serial == 3

        qemu_pid = rec.of_type(QemuStarted)[0].pid
        argv = _read(Path(f"/proc/{qemu_pid}/cmdline"))
        assert await vm.stop() == 0

    rendered = _render(config)
    assert "spice-password" in rendered  # the -object secret with the file's path
    leaks = _leaks(pw.values(), caplog.text + rendered, argv, rec.events, vmdir)
    assert not leaks, leaks
    assert "set_password" in caplog.text  # the traffic log did see the (masked) command


def _render(config: Path) -> str:
    """``vmrunner render`` output (the QEMU command line) for ``config``."""
    done = subprocess.run([sys.executable, "-m", "vmrunner", "render", "-c", str(config)],
                          capture_output=True, text=True, check=True)
    return done.stdout + done.stderr


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _leaks(secrets: Any, log: str, argv: bytes, events: list[Any], vmdir: Path) -> list[str]:
    """Where any of ``secrets`` shows up outside the secret files."""
    leaks: list[str] = []
    for value in secrets:
        if value in log:
            leaks.append(f"log: {value}")
        if value.encode() in argv:
            leaks.append(f"QEMU argv: {value}")
        if any(value in repr(event) for event in events):
            leaks.append(f"an event's repr: {value}")
        for sub in ("run", "data"):
            for path in (vmdir / sub).rglob("*"):
                if path.is_file() and not path.is_symlink() and value.encode() in \
                        path.read_bytes():
                    leaks.append(f"{path}: {value}")
    return leaks



async def test_password_without_ticketing_is_rejected(
        vmdir: Path, guest_image: GuestImage, accel: AccelVerdict) -> None:
    """SPICE started without a password (no passwordFile, no display-password at start)
    cannot take one live: a display-password that appears later is rejected, nothing sent."""
    port = _free_port()
    config = guest_config(vmdir, guest_image, accel=str(accel.accel), display={
        "spice": {"port": port, "address": "127.0.0.1"}})
    async with InProcessRunner(config, DisplayController(vmdir)) as vm:
        rec = vm.recorder
        await vm.console.wait_ready(BOOT)
        (vmdir / "display-password").write_text("unused-secret")
        rejected = await rec.wait_for(DisplayPasswordChange,
                                      lambda e: e.outcome is Outcome.REJECTED, EVENT)
        assert rejected.message.startswith("/Runner/vm/display/spice/passwordFile: unset")
        assert "restart" in rejected.message
        sent = [e.command.name for e in rec.of_type(ExecuteQmp)]
        assert "set_password" not in sent and "expire_password" not in sent
        assert await spice_link("127.0.0.1", port, "anything") == LINK_OK  # still open
        assert await vm.stop() == 0
