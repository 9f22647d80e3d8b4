"""End to end: ``python -m vmrunner run`` on the real test guest (issue 4, "Done means").

Each test runs the runner as a subprocess, attaches to the guest's serial console and
checks exit codes, timing and that no QEMU or swtpm process is left behind (the ``base``
fixture fails the test if one is).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from vmrunner.components.exit_codes import ExitCode
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.qemu import raw_disk
from vmrunner.testing.runnerproc import (
    RunnerProcess,
    boot_runner,
    guest_config,
    process_alive,
    processes_using,
    term_during_start,
    wait_gone,
)

pytestmark = pytest.mark.guest

BOOT = 60.0
CMD = 20.0


async def test_term_powers_guest_off_and_keeps_last_write(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    disk = raw_disk(base / "disk.img")
    config = guest_config(base, guest_image, accel=accel_name, disk=disk)
    runner = await boot_runner(runners, config)
    assert runner.console is not None
    marker = f"mark-{uuid.uuid4().hex}"
    # a buffered write (no sync): only a graceful power-off gets it onto the image
    await runner.console.check(
        f"printf '{marker}\\n' | dd of=/dev/vda bs=512 count=1 conv=sync 2>/dev/null", CMD)
    runner.signal(signal.SIGTERM)
    assert await runner.wait(30) == ExitCode.OK, runner.log_tail()
    log = runner.log_text()
    assert "shutdown rung guest-agent" in log or "shutdown rung powerdown" in log, log
    assert "shutdown rung terminate" not in log
    assert disk.read_bytes()[:512].rstrip(b"\0") == f"{marker}\n".encode()


async def test_guest_ignoring_acpi_is_forced_at_the_timeout(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    config = guest_config(base, guest_image, accel=accel_name, powerdown_timeout=7,
                          knobs=("tg.powerbtn=ignore", "tg.qga=0"), useTpm=True)
    runner = await boot_runner(runners, config)
    assert runner.console is not None
    since = runner.console.mark()
    sent = time.monotonic()
    runner.signal(signal.SIGTERM)
    # the button is pressed again while waiting (guests miss presses while booting)
    await runner.console.wait_for(r"^TG-EVENT power-button action=ignore", since=since,
                                  count=2, timeout=CMD)
    code = await runner.wait(30)
    elapsed = time.monotonic() - sent
    assert code == ExitCode.FORCED_STOP, runner.log_tail()
    assert 6.0 <= elapsed <= 8.5, f"forced stop after {elapsed:.2f} s, expected 7 ± 1"
    assert "shutdown rung terminate" in runner.log_text()
    assert runner.pid_of("swtpm") is not None
    assert processes_using(runner.runtime_dir) == []  # neither QEMU nor swtpm


async def test_powerdown_timeout_change_moves_the_deadline(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    knobs = ("tg.powerbtn=ignore", "tg.qga=0")
    config = guest_config(base, guest_image, accel=accel_name, powerdown_timeout=60,
                          knobs=knobs)
    runner = await boot_runner(runners, config)
    sent = time.monotonic()
    runner.signal(signal.SIGTERM)
    assert await runner.wait(1.5) is None
    guest_config(base, guest_image, accel=accel_name, powerdown_timeout=4, knobs=knobs)
    code = await runner.wait(30)
    elapsed = time.monotonic() - sent
    assert code == ExitCode.FORCED_STOP, runner.log_tail()
    assert 3.0 <= elapsed <= 5.5, f"forced stop after {elapsed:.2f} s, expected 4 ± 1"
    assert "powerdownTimeout changed to 4 s" in runner.log_text()


async def test_second_term_does_not_skip_the_graceful_wait(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    knobs = ("tg.powerbtn=ignore", "tg.qga=0")
    config = guest_config(base, guest_image, accel=accel_name, powerdown_timeout=60,
                          knobs=knobs)
    runner = await boot_runner(runners, config)
    runner.signal(signal.SIGTERM)
    await asyncio.sleep(0.5)
    runner.signal(signal.SIGTERM)
    assert await runner.wait(2) is None, "a second TERM ended the graceful wait"
    assert "already shutting down" in runner.log_text()
    runner.signal(signal.SIGTERM)  # a third within 3 s of the second: force it
    assert await runner.wait(15) == ExitCode.FORCED_STOP, runner.log_tail()


async def test_poweroff_inside_the_guest_exits_0(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    runner = await boot_runner(runners, guest_config(base, guest_image, accel=accel_name))
    assert runner.console is not None
    await runner.console.send_line("@1 tg poweroff")
    assert await runner.wait(30) == ExitCode.OK, runner.log_tail()
    assert "the guest powered off" in runner.log_text()


async def test_qemu_killed_exits_nonzero_quickly_and_swtpm_goes(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    runner = await boot_runner(runners, guest_config(base, guest_image, accel=accel_name,
                                                useTpm=True))
    qemu, swtpm = runner.pid_of("qemu"), runner.pid_of("swtpm")
    assert qemu is not None and swtpm is not None, runner.log_tail()
    os.kill(qemu, signal.SIGKILL)
    killed = time.monotonic()
    code = await runner.wait(10)
    assert code == ExitCode.QEMU_DIED, runner.log_tail()
    assert time.monotonic() - killed < 2.0
    assert not process_alive(swtpm)


async def test_term_during_start_phases_leaves_nothing(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    config = guest_config(base, guest_image, accel=accel_name, useTpm=True)
    for delay in (0.05, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9):
        runner, code = await term_during_start(runners, config, delay)
        assert code in (ExitCode.OK, ExitCode.START_FAILED, -signal.SIGTERM), (
            delay, runner.log_tail())
        assert processes_using(runner.runtime_dir) == [], (delay, runner.log_tail())


def _cmdline(pid: int | None) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode()


def _reset_count(output: list[str]) -> int:
    raw = bytes(int(b, 16) for line in output for b in line.split())
    assert raw[:2] == b"\x80\x01" and raw[6:10] == b"\0\0\0\0", raw.hex()
    return int.from_bytes(raw[26:30], "big")


async def test_tpm_is_visible_and_its_state_persists(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    config = guest_config(base, guest_image, accel=accel_name, useTpm=True)
    # TPM2_ReadClock: clockInfo.resetCount counts TPM resets (one per boot) in NV state
    read_clock = ("(printf '\\200\\001\\000\\000\\000\\012\\000\\000\\001\\201' >&3; "
                  "dd bs=64 count=1 <&3 2>/dev/null) 3<>/dev/tpm0 | od -An -tx1")
    counts = []
    for _ in range(2):
        runner = await boot_runner(runners, config)
        assert runner.console is not None
        assert "tpm=ok" in await runner.console.check("tg tpm", CMD)
        counts.append(_reset_count(await runner.console.check(read_clock, CMD)))
        runner.signal(signal.SIGTERM)
        assert await runner.wait(30) == ExitCode.OK, runner.log_tail()
        await runner.close()
    assert (base / "data" / "tpm2-00.permall").exists()
    assert counts[1] == counts[0] + 1, counts


async def test_uefi_boots_with_ovmf_and_a_per_vm_vars_file(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    config = guest_config(base, guest_image, accel=accel_name, firmware="uefi")
    runner = RunnerProcess(config)
    runners.append(runner)
    await runner.start()
    assert runner.console is not None
    await runner.console.wait_for("TG-READY", timeout=2 * BOOT)  # after OVMF's escape codes
    cmdline = _cmdline(runner.pid_of("qemu"))
    assert "/usr/share/OVMF/" in cmdline and str(base / "data" / "fw-vars.fd") in cmdline
    assert (base / "data" / "fw-vars.fd").stat().st_size > 0
    runner.signal(signal.SIGTERM)
    assert await runner.wait(30) == ExitCode.OK, runner.log_tail()


async def test_term_while_booting_still_powers_off_gracefully(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    runner = RunnerProcess(guest_config(base, guest_image, accel=accel_name))
    runners.append(runner)
    await runner.start()
    assert runner.console is not None
    await runner.console.wait_for(r"Linux version|\S", timeout=BOOT)  # the kernel is booting
    runner.signal(signal.SIGTERM)
    assert await runner.wait(30) == ExitCode.OK, runner.log_tail()
    log = runner.log_text()
    # the first press is lost while the guest boots: a repeated press or qemu-ga did it
    assert "system_powerdown again" in log or "shutdown rung guest-agent" in log, log
    assert "shutdown rung terminate" not in log


async def test_children_die_with_a_killed_runner(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    runner = await boot_runner(runners, guest_config(base, guest_image, accel=accel_name,
                                                useTpm=True))
    qemu, swtpm = runner.pid_of("qemu"), runner.pid_of("swtpm")
    assert qemu is not None and swtpm is not None
    runner.signal(signal.SIGKILL)
    assert await runner.wait(5) == -signal.SIGKILL
    assert await wait_gone(qemu, 2) and await wait_gone(swtpm, 2)  # PDEATHSIG


def _standin_swtpm_template(base: Path, executable: str, arguments: list[str]) -> Path:
    """The standard template with swtpm replaced by a stand-in program (a labelled fake:
    a real swtpm cannot be made to fail or hang on demand)."""
    standard = Path(__file__).resolve().parents[2] / "templates" / "Standard-VM.yaml.mako"
    text = standard.read_text()
    start, end = text.index("swtpm:\n"), text.index("% endif\nqemu:")
    args = "".join(f"    - {a!r}\n" for a in arguments)
    stand_in = f"swtpm:\n  executable: [{executable}]\n  arguments:\n{args}"
    directory = base / "templates"
    directory.mkdir()
    (directory / "Standin.yaml.mako").write_text(text[:start] + stand_in + text[end:])
    return directory


async def test_swtpm_failure_is_reported_with_its_stderr(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    templates = _standin_swtpm_template(
        base, "/bin/sh", ["-c", "echo 'stand-in swtpm: cannot open state' >&2; exit 3"])
    config = guest_config(base, guest_image, accel=accel_name, useTpm=True,
                          runner={"template": "Standin.yaml.mako",
                                  "templateDirs": [str(templates)]})
    runner = RunnerProcess(config)
    runners.append(runner)
    await runner.start(console=False)
    assert await runner.wait(20) == ExitCode.START_FAILED, runner.log_tail()
    log = runner.log_text()
    assert "start failed at swtpm" in log and "stand-in swtpm: cannot open state" in log, log
    assert runner.pid_of("qemu") is None


async def test_swtpm_never_ready_times_out(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    templates = _standin_swtpm_template(base, "/bin/sleep", ["60"])
    config = guest_config(base, guest_image, accel=accel_name, useTpm=True,
                          runner={"template": "Standin.yaml.mako",
                                  "templateDirs": [str(templates)]})
    runner = RunnerProcess(config)
    runners.append(runner)
    await runner.start(console=False)
    assert await runner.wait(20) == ExitCode.START_FAILED, runner.log_tail()
    assert "no control socket" in runner.log_text()
    sleeper = runner.pid_of("swtpm")
    assert sleeper is not None and await wait_gone(sleeper, 1)


async def test_qemu_dying_during_the_graceful_wait_is_not_ok(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    config = guest_config(base, guest_image, accel=accel_name, powerdown_timeout=60,
                          knobs=("tg.powerbtn=ignore", "tg.qga=0"))
    runner = await boot_runner(runners, config)
    qemu = runner.pid_of("qemu")
    assert qemu is not None
    runner.signal(signal.SIGTERM)
    assert await runner.wait(1) is None
    os.kill(qemu, signal.SIGKILL)
    assert await runner.wait(2) == ExitCode.QEMU_DIED, runner.log_tail()
    assert "during the shutdown" in runner.log_text()


async def test_cloud_init_image_is_made_attached_and_removed(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    config = guest_config(base, guest_image, accel=accel_name, runner={
        "cloudInit": {"metaData": {"instance-id": "i-1"}, "userData": {"hostname": "tg"}}})
    runner = await boot_runner(runners, config)
    assert runner.console is not None
    image = runner.runtime_dir / "cloud-init.img"
    assert str(image) in _cmdline(runner.pid_of("qemu"))
    # the guest sees the NoCloud disk (virtio-blk, ISO 9660 volume "cidata")
    out = await runner.console.check(
        "dd if=/dev/vda bs=1 skip=32808 count=6 2>/dev/null; echo", CMD)
    assert out == ["cidata"], out
    runner.signal(signal.SIGTERM)
    assert await runner.wait(30) == ExitCode.OK, runner.log_tail()
    assert not image.exists()


async def test_powerdown_handler_node_disallows_the_agent_and_sets_the_interval(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    config = guest_config(
        base, guest_image, accel=accel_name, powerdown_timeout=4,
        knobs=("tg.powerbtn=ignore",),  # qemu-ga runs, but may not be used
        runner={"/PowerdownHandler": {"useGuestAgent": False, "repeatInterval": 1}})
    runner = await boot_runner(runners, config)
    assert runner.console is not None
    await runner.console.wait_for(r"TG-READY .*qga=yes", timeout=CMD)
    since = runner.console.mark()
    runner.signal(signal.SIGTERM)
    await runner.console.wait_for(r"^TG-EVENT power-button action=ignore", since=since,
                                  count=3, timeout=CMD)
    assert await runner.wait(15) == ExitCode.FORCED_STOP, runner.log_tail()
    assert "shutdown rung guest-agent" not in runner.log_text()
