"""Configurable components on a real bus: initial delivery, invalid config, live updates."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest
from pydantic import BaseModel, Field, ValidationInfo, field_validator

from vmrunner.components.exit_codes import ExitCode
from vmrunner.core import Component, Start, Started, Stop, handler, run
from vmrunner.core.config import (
    Configurable,
    ConfigurationRejected,
    ConfigurationUpdate,
    ConfigWatcher,
    InitialConfiguration,
)
from vmrunner.core.recorder import EventRecorder


class VmModel(BaseModel):
    name: str
    current_cpus: int = Field(default=1, alias="currentCpus")


class RunnerModel(BaseModel):
    vm: VmModel


class MonitorModel(BaseModel):
    connect_timeout: float = Field(default=5.0, alias="connectTimeout")


class Journal:
    """What happened, in order, across components."""

    def __init__(self) -> None:
        self.lines: list[str] = []


class Runner(Configurable[RunnerModel], Component):
    config_model = RunnerModel

    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self.journal = journal
        self.seen: list[tuple[RunnerModel, bool]] = []

    def on_config(self, config: RunnerModel, initial: bool) -> None:
        self.seen.append((config, initial))
        self.journal.lines.append(f"{self.component_path} config cpus={config.vm.current_cpus}")

    @handler
    def on_start(self, event: Start) -> None:
        self.journal.lines.append(f"{self.component_path} start")


class QemuMonitor(Configurable[MonitorModel], Component):
    config_model = MonitorModel

    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self.journal = journal
        self.seen: list[tuple[MonitorModel, bool]] = []

    async def on_config(self, config: MonitorModel, initial: bool) -> None:
        await asyncio.sleep(0)  # async on_config is awaited
        self.seen.append((config, initial))
        self.journal.lines.append(f"{self.component_path} config {config.connect_timeout}")

    @handler(priority=1000)
    def on_start_early(self, event: Start) -> None:
        self.journal.lines.append(f"{self.component_path} start(1000)")


GOOD = """
"/Runner":
  vm: {name: test-vm, currentCpus: 2}
  "/QemuMonitor":
    connectTimeout: 10
"""


def build(tmp_path: Path, text: str) -> tuple[Runner, QemuMonitor, ConfigWatcher, EventRecorder,
                                              Journal]:
    file = tmp_path / "config.yaml"
    file.write_text(text)
    journal = Journal()
    runner = Runner(journal)
    monitor = runner.attach(QemuMonitor(journal))
    watcher = runner.attach(ConfigWatcher(file, watch=False))
    recorder = runner.attach(EventRecorder())
    return runner, monitor, watcher, recorder, journal


async def test_initial_configuration_precedes_ordinary_start_handlers(tmp_path: Path) -> None:
    runner, monitor, _, recorder, journal = build(tmp_path, GOOD)
    task = asyncio.create_task(run(runner))
    await recorder.wait_for(Started)
    assert journal.lines == [
        "/Runner config cpus=2",
        "/Runner/QemuMonitor config 10.0",
        "/Runner/QemuMonitor start(1000)",
        "/Runner start",
    ]
    assert runner.seen == [(RunnerModel(vm=VmModel(name="test-vm", currentCpus=2)), True)]
    assert monitor.config == MonitorModel(connectTimeout=10)
    names = recorder.names()
    assert names.index("InitialConfiguration") < names.index("Started")
    runner.fire(Stop())
    assert await asyncio.wait_for(task, 5) == ExitCode.OK


async def test_invalid_initial_config_stops_the_tree_with_the_key_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = GOOD.replace("currentCpus: 2", "currentCpus: many").replace("10", "soon")
    runner, monitor, _, recorder, journal = build(tmp_path, bad)
    with caplog.at_level(logging.ERROR):
        code = await asyncio.wait_for(run(runner), 5)
    assert code == ExitCode.CONFIG_ERROR
    assert ("/Runner/vm/currentCpus: Input should be a valid integer, unable to parse string "
            "as an integer") in caplog.messages
    assert any(m.startswith("/Runner/QemuMonitor/connectTimeout: Input should be a valid")
               for m in caplog.messages)
    assert journal.lines == []  # no on_config, and no ordinary Start handler ran
    assert runner.config is None and monitor.config is None
    rejected = recorder.of_type(ConfigurationRejected)
    assert [(r.path, r.initial) for r in rejected] == [("/Runner", True),
                                                        ("/Runner/QemuMonitor", True)]
    assert len(recorder.of_type(Stop)) == 1
    assert recorder.of_type(Started) == []


async def test_missing_required_section_at_start_is_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runner, _, _, _, journal = build(tmp_path, '"/Other": {a: 1}\n')
    with caplog.at_level(logging.ERROR):
        assert await asyncio.wait_for(run(runner), 5) == ExitCode.CONFIG_ERROR
    assert "/Runner/vm: Field required" in caplog.messages
    assert journal.lines == ["/Runner/QemuMonitor config 5.0"]  # defaults; nothing started


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"/Runner":\n  vm: [unclosed\n', r"config\.yaml:3: invalid YAML: .*"),
        ('"/Runner": 7\n', r"^/Runner: a node must be a mapping, not int$"),
        (None, r"config\.yaml: file not found$"),
        ('"/Runner":\n  vm: ' + "[" * 990 + "]" * 990 + "\n",
         r"config\.yaml:2: nested deeper than 64 levels$"),
        ('"/Runner":\n  a: 1\n  a: 2\n',
         r"config\.yaml:3: invalid YAML: key 'a' is given more than once \(first on line 2\)$"),
    ],
)
async def test_unreadable_file_at_start_names_file_and_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str | None, message: str
) -> None:
    runner, _, watcher, recorder, journal = build(tmp_path, text or "")
    if text is None:
        watcher.path.unlink()
    with caplog.at_level(logging.ERROR):
        assert await asyncio.wait_for(run(runner), 5) == ExitCode.CONFIG_ERROR
    assert any(re.search(message, m) for m in caplog.messages), caplog.messages
    assert journal.lines == []
    [rejected] = recorder.of_type(ConfigurationRejected)
    assert rejected.path == "/" and rejected.initial
    assert recorder.of_type(InitialConfiguration) == []


async def test_runtime_updates_apply_reject_and_skip_unchanged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runner, monitor, watcher, recorder, _ = build(tmp_path, GOOD)
    task = asyncio.create_task(run(runner))
    await recorder.wait_for(Started)
    good = runner.config

    # Invalid update: rejected with the key path, result and event; last good config kept.
    with caplog.at_level(logging.WARNING):
        result = await runner.call(ConfigurationUpdate.of({
            "/Runner": {"vm": {"name": "x", "currentCpus": "two", "accelertor": "tcg"}},
            "/Runner/QemuMonitor": {"connectTimeout": 10}}))
    assert isinstance(result, ConfigurationRejected)
    assert result.path == "/Runner" and not result.initial
    assert result.errors[0].startswith("/Runner/vm/currentCpus: Input should be a valid integer")
    assert "/Runner/vm/accelertor: unknown key" in caplog.messages
    assert runner.config is good and len(runner.seen) == 1
    assert recorder.of_type(ConfigurationRejected) == [result]

    # A valid change reaches on_config; the unchanged monitor section does not.
    assert await runner.call(ConfigurationUpdate.of({
        "/Runner": {"vm": {"name": "x", "currentCpus": 4}},
        "/Runner/QemuMonitor": {"connectTimeout": 10}})) is None
    assert runner.config == RunnerModel(vm=VmModel(name="x", currentCpus=4))
    assert runner.seen[-1] == (runner.config, False)
    assert len(monitor.seen) == 1

    # Same values again, or only an ignored key changed: no on_config.
    await runner.call(ConfigurationUpdate.of({"/Runner": {"vm": {"name": "x", "currentCpus": 4,
                                                                 "other": 1}}}))
    assert len(runner.seen) == 2

    # A removed section counts as empty: the monitor falls back to its defaults.
    await runner.call(ConfigurationUpdate.of({"/Runner/QemuMonitor": None}))
    assert monitor.seen[-1] == (MonitorModel(), False)
    runner.fire(Stop())
    assert await asyncio.wait_for(task, 5) == ExitCode.OK
    assert watcher.current is not None and "/Runner" in watcher.current


async def test_late_attached_component_gets_its_initial_configuration(tmp_path: Path) -> None:
    runner, _, _, recorder, journal = build(tmp_path, GOOD + '"/Runner/Late": {}\n')
    task = asyncio.create_task(run(runner))
    await recorder.wait_for(Started)

    class Late(Configurable[MonitorModel], Component):
        config_model = MonitorModel

    late = runner.attach(Late())
    await recorder.wait_for(Started, lambda e: len(recorder.of_type(Started)) == 2)
    assert late.config == MonitorModel()
    assert journal.lines.count("/Runner config cpus=2") == 1  # not reconfigured
    runner.fire(Stop())
    assert await asyncio.wait_for(task, 5) == ExitCode.OK


class DiskModel(BaseModel):
    disk: Path

    @field_validator("disk")
    @classmethod
    def relative_to_file(cls, value: Path, info: ValidationInfo) -> Path:
        base = (info.context or {}).get("base_dir")
        return value if base is None or value.is_absolute() else base / value


class Disk(Configurable[DiskModel], Component):
    config_model = DiskModel


async def test_validators_see_the_source_file_directory(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    file = tmp_path / "conf" / "config.yaml"
    file.write_text('"/Disk": {disk: disk.img}\n')
    disk = Disk()
    recorder = disk.attach(EventRecorder())
    disk.attach(ConfigWatcher(file, watch=False))
    task = asyncio.create_task(run(disk))
    await recorder.wait_for(Started)
    assert disk.config == DiskModel(disk=tmp_path / "conf" / "disk.img")
    [initial] = recorder.of_type(InitialConfiguration)
    assert initial.source == file
    await disk.call(ConfigurationUpdate.of({"/Disk": {"disk": "other.img"}}))  # no source
    assert disk.config == DiskModel(disk=Path("other.img"))
    disk.fire(Stop())
    assert await asyncio.wait_for(task, 5) == ExitCode.OK


async def test_an_unexpected_error_at_start_is_a_configuration_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vmrunner.core.config.watcher as watcher_module

    def broken(path: Path) -> bytes:
        raise RecursionError("too deep")

    runner, _, watcher, recorder, journal = build(tmp_path, '"/Runner": {}\n')
    monkeypatch.setattr(watcher_module, "read_bytes", broken)
    with caplog.at_level(logging.ERROR):
        assert await asyncio.wait_for(run(runner), 5) == ExitCode.CONFIG_ERROR
    [rejected] = recorder.of_type(ConfigurationRejected)
    assert rejected.errors == (f"{watcher.path}: cannot load: RecursionError: too deep",)
    assert journal.lines == []
