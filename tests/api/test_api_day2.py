"""Day-2 operations against the real guest under TCG (issue 16, item 6): ``vmrunner pause`` /
``resume`` (clock resync, ``/ready``, shutdown of a paused guest), ``resize-disk`` (confirmed
in the guest's ``/sys/block``), ``fsfreeze`` / ``fsthaw`` (a write blocks while frozen; the
automatic thaw; the thaw on stop) and ``screenshot`` (a valid PNG of the display).

Each test runs the runner as a process and the operations as the CLI an operator types, so
the command, the API route, the component and the event stream are all exercised.
"""

from __future__ import annotations

import asyncio
import signal
import struct
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from vmrunner.api.client import api_socket, follow, get_json, request
from vmrunner.components.exit_codes import ExitCode
from vmrunner.testing.console import GuestConsole
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.logwait import wait_log
from vmrunner.testing.runnerproc import RunnerProcess, boot_runner, guest_config, scratch_dir

pytestmark = pytest.mark.guest

CMD = 60.0
MIB = 2**20


@pytest.fixture
def base() -> Any:
    with scratch_dir("vday2") as path:
        yield path


async def _cli(config: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vmrunner", *args, "-c", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), CMD)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _collect(sock: Path, into: list[dict[str, Any]]) -> None:
    async for record in follow(sock, since=0):
        into.append(record)


def _disk(base: Path, size: int) -> Path:
    disk = base / "disk.raw"
    with disk.open("wb") as sparse:
        sparse.truncate(size)
    return disk


async def _sectors(con: GuestConsole) -> int:
    return int((await con.check("cat /sys/block/vda/size"))[-1])


async def _guest_clock_lag(con: GuestConsole) -> float:
    """Host time minus the guest's (s), with the console's round trip taken off."""
    sent = time.time()
    guest = float((await con.check("date +%s"))[-1])
    return (sent + time.time()) / 2 - guest


async def test_pause_resume_resyncs_the_clock_and_a_paused_guest_shuts_down_cleanly(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    config = guest_config(base, guest_image, accel=accel_name, powerdown_timeout=60)
    runner = await boot_runner(runners, config)
    con = runner.console
    assert con is not None
    sock = api_socket(config)
    records: list[dict[str, Any]] = []
    stream = asyncio.ensure_future(_collect(sock, records))
    await wait_log(runner.log, "guest agent connected", timeout=CMD)
    assert abs(await _guest_clock_lag(con)) < 2.5

    code, out, err = await _cli(config, "pause")
    assert code == 0 and out.strip() == "pause applied: paused by the operator", (out, err)
    doc = await get_json(sock, "/status")
    assert doc["paused"]["reason"] == "requested", doc
    assert doc["paused"]["detail"] == "paused by the operator", doc
    status, body = await request(sock, "GET", "/ready")
    assert status == 503 and b'"paused": "requested"' in body, body
    # the vCPUs really stand: a console command gets no answer while paused
    mark = con.mark()
    await con.send_line("@900 echo alive")
    await asyncio.sleep(6)
    assert "TG-END 900 rc=0" not in con.lines[mark:]
    code, _, err = await _cli(config, "pause")
    assert code == 1 and "already paused by the operator" in err, err

    code, out, err = await _cli(config, "resume")
    assert code == 0, (out, err)
    assert out.startswith("resume applied: was paused by the operator"), out
    assert "(guest clock: synced to the host's time)" in out, out
    await con.wait_for("^TG-END 900 rc=0$", since=mark, timeout=CMD)
    # the guest's clock stood still for the 6 s pause; the resync set it to the host's
    assert abs(await _guest_clock_lag(con)) < 2.5
    assert (await request(sock, "GET", "/ready"))[0] == 200
    code, _, err = await _cli(config, "resume")
    assert code == 1 and "the guest is not paused" in err, err

    # a paused guest is resumed first on TERM, then powered off gracefully (no forced stop)
    assert (await _cli(config, "pause"))[0] == 0
    sent = time.monotonic()
    runner.signal(signal.SIGTERM)
    assert await runner.wait(CMD) == ExitCode.OK, runner.log_tail()
    assert time.monotonic() - sent < 30
    log = runner.log_text()
    assert "the operator paused the guest: resuming it so that it can shut down" in log
    assert "shutdown rung terminate" not in log
    assert "no RESUME from QEMU" not in log  # the ladder did not start before the resume
    await asyncio.wait_for(stream, 10)
    changes = [(r["data"]["action"], r["data"]["outcome"]) for r in records
               if r["type"] == "PauseChange"]
    assert changes == [("pause", "applied"), ("pause", "rejected"), ("resume", "applied"),
                       ("resume", "rejected"), ("pause", "applied")], changes
    assert any(r["type"] == "GuestPaused" and r["data"]["reason"] == "requested" for r in records)


async def test_resize_disk_grows_the_guest_disk_and_refuses_to_shrink(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    disk = _disk(base, 32 * MIB)
    config = guest_config(base, guest_image, accel=accel_name, disk=disk)
    runner = await boot_runner(runners, config)
    con = runner.console
    assert con is not None
    sock = api_socket(config)
    records: list[dict[str, Any]] = []
    stream = asyncio.ensure_future(_collect(sock, records))
    assert await _sectors(con) == 32 * MIB // 512

    with disk.open("r+b") as grow:
        grow.truncate(48 * MIB)
    code, out, err = await _cli(config, "resize-disk", "disk0")
    assert code == 0, (out, err)
    assert out.strip() == f"resize of disk0 applied: disk.raw: {32 * MIB} → {48 * MIB} bytes"
    assert await _sectors(con) == 48 * MIB // 512  # the guest sees it at once

    with disk.open("r+b") as shrink:
        shrink.truncate(40 * MIB)
    code, out, err = await _cli(config, "resize-disk", "disk0")
    assert code == 1 and "shrinking is refused" in err, (out, err)
    assert await _sectors(con) == 48 * MIB // 512

    with disk.open("r+b") as grow:
        grow.truncate(64 * MIB)
    code, out, err = await _cli(config, "resize-disk", str(disk))  # by path
    assert code == 0 and "→ 67108864 bytes" in out, (out, err)
    assert await _sectors(con) == 64 * MIB // 512
    # the guest's data past the old end is usable
    await con.check("dd if=/dev/zero of=/dev/vda bs=1M seek=60 count=1 conv=fsync")

    code, _, err = await _cli(config, "resize-disk", "disk7")
    assert code == 1 and "no such disk; the disks are: disk0 (" in err, err
    status, body = await request(sock, "POST", "/resize-disk", b'{"drive": "disk0", "x": 1}')
    assert status == 400 and b"/resize-disk takes no key 'x'" in body, body

    runner.signal(signal.SIGTERM)
    assert await runner.wait(CMD) == ExitCode.OK, runner.log_tail()
    await asyncio.wait_for(stream, 10)
    resizes = [(r["data"]["outcome"], r["data"]["previous"], r["data"]["size"])
               for r in records if r["type"] == "DiskResizeChange"]
    assert resizes == [("applied", 32 * MIB, 48 * MIB), ("rejected", 48 * MIB, 40 * MIB),
                       ("applied", 48 * MIB, 64 * MIB), ("rejected", 0, 0)], resizes


async def _exists(con: GuestConsole, path: str) -> bool:
    return (await con.run(f"test -e {path}")).rc == 0


async def test_fsfreeze_blocks_writes_until_thawed_by_request_deadline_and_stop(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    disk = _disk(base, 32 * MIB)
    config = guest_config(base, guest_image, accel=accel_name, disk=disk)
    runner = await boot_runner(runners, config)
    con = runner.console
    assert con is not None
    sock = api_socket(config)
    records: list[dict[str, Any]] = []
    stream = asyncio.ensure_future(_collect(sock, records))
    await wait_log(runner.log, "guest agent connected", timeout=CMD)
    await con.check("mke2fs -q /dev/vda && mkdir -p /mnt/d && mount /dev/vda /mnt/d")

    # requested freeze and thaw: a write waits for the thaw
    code, out, err = await _cli(config, "fsfreeze", "--timeout", "120")
    assert code == 0, (out, err)
    assert out.startswith("freeze applied: thawed automatically after 120 s "
                          "(1 filesystem(s), agent: frozen)"), out
    await con.check("touch /mnt/d/one </dev/null >/dev/null 2>&1 &")
    await asyncio.sleep(2)
    assert not await _exists(con, "/mnt/d/one")
    code, _, err = await _cli(config, "fsfreeze")
    assert code == 1 and "already frozen" in err, err
    code, out, err = await _cli(config, "fsthaw")
    assert code == 0 and out.strip() == "thaw applied (1 filesystem(s), agent: thawed)", (
        out, err)
    await con.check("sleep 1; test -e /mnt/d/one")

    # the deadline thaws a forgotten freeze
    assert (await _cli(config, "fsfreeze", "--timeout", "4"))[0] == 0
    await con.check("touch /mnt/d/two </dev/null >/dev/null 2>&1 &")
    await asyncio.sleep(1)
    assert not await _exists(con, "/mnt/d/two")
    await wait_log(runner.log, "filesystem thaw applied (deadline)", timeout=15)
    await con.check("sleep 1; test -e /mnt/d/two")

    # a deadline that passes while the guest is paused thaws once it runs again
    assert (await _cli(config, "fsfreeze", "--timeout", "3"))[0] == 0
    await con.check("touch /mnt/d/three </dev/null >/dev/null 2>&1 &")
    assert (await _cli(config, "pause"))[0] == 0
    await wait_log(runner.log, "the freeze's deadline passed while the guest is paused",
                   timeout=15)
    code, _, err = await _cli(config, "fsthaw")
    assert code == 1 and "the guest is paused (requested)" in err, err
    assert (await _cli(config, "resume"))[0] == 0
    await wait_log(runner.log, "filesystem thaw applied (deadline)", count=2, timeout=15)
    await con.check("sleep 1; test -e /mnt/d/three")

    # stopping the runner resumes the paused guest, thaws, then runs the shutdown ladder:
    # the guest powers off cleanly
    assert (await _cli(config, "fsfreeze", "--timeout", "600"))[0] == 0
    assert (await _cli(config, "pause"))[0] == 0
    code, _, err = await _cli(config, "fsfreeze")
    assert code == 1 and "freeze rejected: the guest is paused (requested)" in err, err
    runner.signal(signal.SIGTERM)
    assert await runner.wait(CMD) == ExitCode.OK, runner.log_tail()
    log = runner.log_text()
    assert "resuming it so that it can shut down" in log
    assert "filesystem thaw applied (stop)" in log
    assert "no RESUME from QEMU" not in log
    await asyncio.wait_for(stream, 10)
    freezes = [(r["data"]["action"], r["data"]["outcome"], r["data"]["trigger"])
               for r in records if r["type"] == "FsFreezeChange"]
    assert freezes == [("freeze", "applied", "requested"), ("freeze", "rejected", "requested"),
                       ("thaw", "applied", "requested"), ("freeze", "applied", "requested"),
                       ("thaw", "applied", "deadline"), ("freeze", "applied", "requested"),
                       ("thaw", "rejected", "requested"), ("thaw", "applied", "deadline"),
                       ("freeze", "applied", "requested"), ("freeze", "rejected", "requested"),
                       ("thaw", "applied", "stop")], freezes


async def test_a_slow_freeze_is_waited_for(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    """The guest's freeze takes 7 s (its fsfreeze hook sleeps first, as applications that
    flush their data would): longer than the agent's usual 5 s reply timeout, well within
    the FsFreezer's own (``AGENT_TIMEOUT``); the freeze is applied, not failed."""
    disk = _disk(base, 32 * MIB)
    config = guest_config(base, guest_image, accel=accel_name, disk=disk,
                          knobs=("tg.fsfreeze_delay=7",))
    runner = await boot_runner(runners, config)
    con = runner.console
    assert con is not None
    await wait_log(runner.log, "guest agent connected", timeout=CMD)
    await con.check("mke2fs -q /dev/vda && mkdir -p /mnt/d && mount /dev/vda /mnt/d")
    mark = con.mark()
    started = time.monotonic()
    code, out, err = await _cli(config, "fsfreeze", "--timeout", "120")
    assert code == 0, (out, err, runner.log_tail())
    assert time.monotonic() - started >= 7
    assert out.startswith("freeze applied: thawed automatically after 120 s "
                          "(1 filesystem(s), agent: frozen)"), out
    await con.wait_for(r"fsfreeze-hook freeze \(7s\)", since=mark, timeout=5)
    code, out, err = await _cli(config, "fsthaw")
    assert code == 0 and out.strip() == "thaw applied (1 filesystem(s), agent: thawed)", (
        out, err)
    runner.signal(signal.SIGTERM)
    assert await runner.wait(CMD) == ExitCode.OK, runner.log_tail()


def _decode_png(data: bytes) -> tuple[int, int]:
    """(width, height) of an 8-bit RGB PNG, checking every chunk's CRC and that the image
    data decompresses to exactly height rows of width pixels."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + chunk) == crc, kind
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
        if kind == b"IEND":
            break
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert (depth, colour) == (8, 2)  # 8-bit RGB
    assert len(zlib.decompress(idat)) == height * (1 + 3 * width)
    return width, height


async def test_screenshot_is_a_png_of_the_display(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    config = guest_config(base, guest_image, accel=accel_name, display={"outputs": 1})
    runner = await boot_runner(runners, config)
    records: list[dict[str, Any]] = []
    stream = asyncio.ensure_future(_collect(api_socket(config), records))
    png = base / "shot.png"
    code, out, err = await _cli(config, "screenshot", "-o", str(png))
    assert code == 0, (out, err)
    data = png.read_bytes()
    assert out.strip() == f"screenshot written to {png} ({len(data)} bytes)"
    # the guest has no graphics driver: the card shows the VGA text console, 80x25 cells of
    # 9x16 pixels
    assert _decode_png(data) == (720, 400)
    assert not (base / "run" / "screenshot.png").exists()

    runner.signal(signal.SIGTERM)
    assert await runner.wait(CMD) == ExitCode.OK, runner.log_tail()
    await asyncio.wait_for(stream, 10)
    taken = [r["data"] for r in records if r["type"] == "ScreenshotTaken"]
    assert taken == [{"outcome": "applied", "width": 720, "height": 400, "size": len(data),
                      "detail": ""}], taken


async def test_screenshot_without_a_display_names_qemus_reason(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    config = guest_config(base, guest_image, accel=accel_name)
    await boot_runner(runners, config)
    code, out, err = await _cli(config, "screenshot", "-o", str(base / "shot.png"))
    assert code == 1 and "vmrunner screenshot: screenshot failed: QEMU:" in err, (out, err)
    assert not (base / "shot.png").exists()
