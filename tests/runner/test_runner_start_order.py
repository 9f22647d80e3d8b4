"""The one start sequence (``vmrunner run`` = ``RunnerBuilder(...).build()`` + ``run(root)``).

The file is read and validated once (by the builder); the Runner prepares the VM and fires
the first start step in its ``Start`` handler, after every component has its configuration.
Start order and clean-up are tested with real processes and the real guest.
"""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from vmrunner.api.client import request
from vmrunner.components import BUS
from vmrunner.components.exit_codes import ExitCode
from vmrunner.components.processes import ProcessManager
from vmrunner.components.runner import Runner
from vmrunner.config.model import RunnerConfig
from vmrunner.core import Component, Stop, run
from vmrunner.core.config.validation import Validated
from vmrunner.core.recorder import EventRecorder
from vmrunner.daemon.builder import RunnerBuilder
from vmrunner.events import RunnerStateChanged, RunState, StartProcess
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.runnerproc import (
    RunnerProcess,
    boot_runner,
    guest_config,
    process_alive,
    processes_using,
    term_during_start,
)
from vmrunner.vmtypes.errors import VmTypeError
from vmrunner.vmtypes.launch import LaunchPlan

SLEEP = ("sleep", "60")


# -- one read, one validation -----------------------------------------------------------------

class CountingRunner(Runner):
    """Counts the validations of its own node; its VM cannot be prepared (nothing starts)."""

    def __init__(self, config: RunnerConfig | None = None, **options: Any) -> None:
        super().__init__(config, preparer=self._no_vm, **options)
        self.validations = 0

    @staticmethod
    def _no_vm(config: RunnerConfig) -> LaunchPlan:
        raise VmTypeError("not in this test")

    def validate_config(self, path: str, section: dict[str, Any],
                        context: dict[str, Any] | None) -> Validated[Any]:
        self.validations += 1
        return super().validate_config(path, section, context)


async def test_the_initial_configuration_is_validated_once(tmp_path: Path) -> None:
    config = tmp_path / "vm.yaml"
    config.write_text(f"/Runner:\n  dataDir: {tmp_path}/data\n  runtimeDir: {tmp_path}/run\n"
                      "  vm: {name: t, maximumRam: 256 MiB}\n"
                      "  /PowerdownHandler: {repeatInterval: 2}\n")
    builder = RunnerBuilder(config)
    runner = builder.build(runner_factory=CountingRunner)
    assert isinstance(runner, CountingRunner) and runner.config is not None
    validated = runner.config
    recorder = runner.attach(EventRecorder(BUS))
    # the VM cannot be prepared: a config error, after the initial configuration
    assert await asyncio.wait_for(run(runner), 20) == ExitCode.CONFIG_ERROR
    assert runner.validations == 0
    assert runner.config is validated
    states = [e.new for e in recorder.of_type(RunnerStateChanged)]
    assert states[:1] == [RunState.STARTING]
    # a later change of the file is validated (by the Runner, as a live update)
    assert runner.validate_config("/Runner", {"vm": {"name": "t", "maximumRam": "x"}},
                                  None).config is None
    assert runner.validations == 1


async def test_an_invalid_node_raises_before_anything_is_built(tmp_path: Path) -> None:
    from vmrunner.daemon.builder import ConfigInvalid

    config = tmp_path / "vm.yaml"
    config.write_text("/Runner:\n  vm: {name: t, currentCpus: 9, maximumCpus: 2}\n")
    with pytest.raises(ConfigInvalid) as raised:
        RunnerBuilder(config).build()
    assert any("/Runner/vm/currentCpus" in p for p in raised.value.problems)
    config.write_text("/Other: {}\n")
    with pytest.raises(ConfigInvalid) as raised:
        RunnerBuilder(config).build()
    assert raised.value.problems == [
        "/Runner: required key is missing (the file has no '/Runner' node)"]


# -- the ProcessManager -------------------------------------------------------------------

async def test_stale_sockets_are_removed_before_a_spawn(tmp_path: Path) -> None:
    import socket

    root = Component(BUS, "Root")
    root.attach(ProcessManager())
    task = asyncio.create_task(run(root))
    await asyncio.sleep(0)
    try:
        stale = tmp_path / "stale.sock"
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(stale))
        pid = await root.fire(StartProcess(name="sleeper", argv=SLEEP, stale_sockets=(stale,)))
        assert pid is not None and not stale.exists()
        plain = tmp_path / "not-a-socket"
        plain.write_text("keep me")
        assert await root.fire(
            StartProcess(name="other", argv=SLEEP, stale_sockets=(plain,))) is None
        assert plain.read_text() == "keep me"
    finally:
        root.fire(Stop())
        assert await asyncio.wait_for(task, 20) == ExitCode.OK


# -- the real guest ---------------------------------------------------------------------------

def _starts(log: str, name: str) -> list[str]:
    return re.findall(rf"started {name} \(pid (\d+)\)", log)


@pytest.mark.guest
async def test_run_starts_qemu_once_in_the_start_sequence(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    runner = await boot_runner(runners, guest_config(base, guest_image, accel=accel_name))
    log = runner.log_text()
    assert len(_starts(log, "qemu")) == 1, log
    assert log.index("state initializing → starting") < log.index("started qemu"), log
    assert "adopted" not in log
    runner.signal(signal.SIGTERM)
    assert await runner.wait(30) == ExitCode.OK, runner.log_tail()


@pytest.mark.guest
async def test_tpm_vm_starts_swtpm_before_qemu(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    runner = await boot_runner(runners, guest_config(base, guest_image, accel=accel_name,
                                                     useTpm=True))
    log = runner.log_text()
    assert len(_starts(log, "swtpm")) == 1 and len(_starts(log, "qemu")) == 1, log
    assert log.index("started swtpm") < log.index("started qemu"), log
    runner.signal(signal.SIGTERM)
    assert await runner.wait(30) == ExitCode.OK, runner.log_tail()


@pytest.mark.guest
@pytest.mark.parametrize("tpm", [False, True], ids=["plain", "tpm"])
async def test_bad_node_of_another_component_starts_nothing(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str, tpm: bool) -> None:
    config = guest_config(base, guest_image, accel=accel_name, useTpm=tpm,
                          runner={"/PowerdownHandler": {"repeatInterval": -1}})
    runner = RunnerProcess(config)
    runners.append(runner)
    await runner.start(console=False)
    assert await runner.wait(30) == ExitCode.CONFIG_ERROR, runner.log_tail()
    log = runner.log_text()
    assert "/Runner/PowerdownHandler/repeatInterval" in log, log
    assert "started " not in log, log
    assert "state initializing → starting" not in log, log
    assert processes_using(runner.runtime_dir) == []


@pytest.mark.guest
@pytest.mark.parametrize("tpm", [False, True], ids=["plain", "tpm"])
async def test_term_at_every_start_moment_leaves_nothing(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str, tpm: bool) -> None:
    """From the imports (the signal is remembered) through preparing, swtpm, QEMU and QMP
    to ``cont``: every child is reaped, exit 0."""
    config = guest_config(base, guest_image, accel=accel_name, useTpm=tpm)
    for delay in (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7):
        (base / "runner.log").unlink(missing_ok=True)  # appended to by each runner
        runner, code = await term_during_start(runners, config, delay)
        assert code in (ExitCode.OK, -signal.SIGTERM), (delay, runner.log_tail())
        assert processes_using(runner.runtime_dir) == [], (delay, runner.log_tail())
        log = runner.log_text()
        pids = [int(p) for p in _starts(log, "qemu") + _starts(log, "swtpm")]
        assert not any(process_alive(p) for p in pids), (delay, runner.log_tail())
        assert len(_starts(log, "qemu")) <= 1, (delay, log)


@pytest.mark.guest
async def test_run_uses_the_real_modules(
        base: Path, runners: list[RunnerProcess], guest_image: GuestImage,
        accel_name: str) -> None:
    """``vmrunner run`` puts nothing fake into ``sys.modules``: the real ``ssl`` (its C
    module, with OpenSSL) and OpenSSL's hashes are loaded as for any asyncio program, and
    ``GET /metrics`` imports prometheus-client (which needs ``ssl``'s real names) on demand."""
    runner = await boot_runner(runners, guest_config(base, guest_image, accel=accel_name))
    assert runner.proc is not None
    maps = Path(f"/proc/{runner.proc.pid}/maps").read_text()  # noqa: ASYNC240 - procfs
    assert "/_ssl." in maps and "/_hashlib." in maps
    code, body = await request(runner.runtime_dir / "api.sock", "GET", "/metrics")
    assert code == 200, body
    assert b'vmrunner_state{state="booting"} 1.0' in body or \
        b'vmrunner_state{state="booted"} 1.0' in body, body
    runner.signal(signal.SIGTERM)
    assert await runner.wait(30) == ExitCode.OK, runner.log_tail()
