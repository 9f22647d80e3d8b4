"""Fault matrix gaps not covered by tests/runner (issue 8): each case has a defined outcome
and exit code, and leaves no QEMU or swtpm process (checked by pid, and by the ``base``
fixture for anything mentioning the test's directory). See docs/design/reliability.md."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from vmrunner.components.exit_codes import ExitCode
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.logwait import wait_log
from vmrunner.testing.runnerproc import (
    RunnerProcess,
    boot_runner,
    guest_config,
    process_alive,
    processes_using,
    wait_gone,
)

pytestmark = pytest.mark.guest

CMD = 20.0
GRACEFUL = ("shutdown rung guest-agent", "shutdown rung powerdown")


def _graceful(log: str) -> bool:
    return any(r in log for r in GRACEFUL) and "shutdown rung terminate" not in log


async def test_swtpm_killed_while_running_vm_keeps_running(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    """kill -9 swtpm: a warning naming the consequence; QEMU and the guest keep running
    (TPM commands fail in the guest); a later TERM is graceful, exit 0."""
    runner = await boot_runner(runners, guest_config(base, guest_image, accel=accel_name,
                                                useTpm=True))
    assert runner.console is not None
    qemu, swtpm = runner.pid_of("qemu"), runner.pid_of("swtpm")
    assert qemu is not None and swtpm is not None
    assert (await runner.console.run("tg tpm", CMD)).rc == 0
    os.kill(swtpm, signal.SIGKILL)
    await wait_log(runner.log, "swtpm was killed by SIGKILL before QEMU: the guest's TPM "
                   "no longer answers; the VM keeps running")
    assert (await runner.console.run("tg tpm", CMD)).rc != 0  # the TPM is gone...
    assert (await runner.console.run("true", CMD)).rc == 0    # ...the guest is not
    assert process_alive(qemu) and runner.proc is not None and runner.proc.returncode is None
    runner.signal(signal.SIGTERM)
    assert await runner.wait(30) == ExitCode.OK, runner.log_tail()
    assert _graceful(runner.log_text())
    assert await wait_gone(qemu, 1)


async def test_frozen_qemu_is_forced_and_killed(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    """QEMU stopped (SIGSTOP): QMP stays connected but never answers, the guest cannot
    react. The ladder still reaches terminate at powerdownTimeout and kill after killGrace:
    exit 3, nothing left. (The QMP connection *closing* only happens when QEMU exits: that
    is kill -9 of QEMU, tests/runner/test_runner_lifecycle.py.)"""
    config = guest_config(base, guest_image, accel=accel_name, powerdown_timeout=3,
                          knobs=("tg.qga=0",), useTpm=True,
                          runner={"/PowerdownHandler": {"killGrace": 2}})
    runner = await boot_runner(runners, config)
    qemu, swtpm = runner.pid_of("qemu"), runner.pid_of("swtpm")
    assert qemu is not None and swtpm is not None
    os.kill(qemu, signal.SIGSTOP)
    try:
        runner.signal(signal.SIGTERM)
        code = await runner.wait(20)
    finally:
        if process_alive(qemu):
            os.kill(qemu, signal.SIGKILL)
    assert code == ExitCode.FORCED_STOP, runner.log_tail()
    log = runner.log_text()
    assert "shutdown rung terminate" in log and "shutdown rung kill" in log, log
    assert await wait_gone(qemu, 1) and await wait_gone(swtpm, 3)


async def test_config_deleted_then_corrupted_keeps_the_last_good_one(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    """The file deleted, then written back as broken YAML, then as an invalid value: each
    is logged and ignored, the VM runs on; when a valid file returns it is applied."""
    config = guest_config(base, guest_image, accel=accel_name)
    good = config.read_text()
    runner = await boot_runner(runners, config)
    assert runner.console is not None
    config.unlink()
    await wait_log(runner.log, "the configuration file vanished; keeping the last good")
    config.write_text('"/Runner":\n  vm: {name: tg\n')  # unclosed flow mapping
    await wait_log(runner.log, "configuration change rejected; keeping the last good one")
    config.write_text(good.replace("maximumCpus: 1", "maximumCpus: many"))
    await wait_log(runner.log, "/Runner/vm/maximumCpus")
    await wait_log(runner.log, "rejected; keeping the last good one", count=2)
    assert (await runner.console.run("true", CMD)).rc == 0
    assert runner.proc is not None and runner.proc.returncode is None
    config.write_text(good.replace("powerdownTimeout: 30", "powerdownTimeout: 25"))
    await wait_log(runner.log, "configuration changed")
    runner.signal(signal.SIGTERM)
    assert await runner.wait(30) == ExitCode.OK, runner.log_tail()
    log = runner.log_text()
    assert _graceful(log) and "Traceback" not in log, log
    qemu = runner.pid_of("qemu")
    assert qemu is not None and await wait_gone(qemu, 1)


async def test_missing_disk_image_at_start(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    missing = base / "no-such-disk.img"
    config = guest_config(base, guest_image, accel=accel_name, disk=missing)
    runner = RunnerProcess(config)
    runners.append(runner)
    await runner.start(console=False)
    code = await runner.wait(30)
    log = runner.log_text()
    # refused before anything is spawned, naming the key (issue 18), not QEMU's exit 5
    assert code == ExitCode.CONFIG_ERROR, log
    assert f"/Runner/vm/drives/0/file: {missing} does not exist" in log, log
    assert "started qemu" not in log and "Traceback" not in log, log
    assert runner.pid_of("qemu") is None


def _template_without_swtpm(base: Path) -> Path:
    """The standard template with swtpm's executable list replaced by a missing path."""
    standard = Path(__file__).resolve().parents[2] / "templates" / "Standard-VM.yaml.mako"
    text = standard.read_text()
    line = "  executable: [/usr/bin/swtpm, swtpm]\n"
    assert line in text, "the standard template's swtpm executable line changed"
    templates = base / "templates"
    templates.mkdir()
    (templates / "NoSwtpm.yaml.mako").write_text(
        text.replace(line, f"  executable: [{base / 'missing' / 'swtpm'}]\n"))
    return templates


async def test_missing_swtpm_binary_with_use_tpm(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    """swtpm's executable does not exist (the template names a missing path): exit 2 with
    the reason, nothing started."""
    templates = _template_without_swtpm(base)
    config = guest_config(base, guest_image, accel=accel_name, useTpm=True,
                          runner={"template": "NoSwtpm.yaml.mako",
                                  "templateDirs": [str(templates)]})
    runner = RunnerProcess(config)
    runners.append(runner)
    await runner.start(console=False)
    code = await runner.wait(30)
    log = runner.log_text()
    # found while preparing (the executable is resolved before anything starts): exit 2
    assert code == ExitCode.CONFIG_ERROR, log
    assert "swtpm: no executable found" in log and "Traceback" not in log, log
    assert runner.pid_of("qemu") is None, log
    assert processes_using(base) == []
