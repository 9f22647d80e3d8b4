"""``ReloadConfiguration`` (SIGHUP in ``vmrunner run``): the ConfigWatcher re-reads its file
now, also when it does not watch it; an unchanged file is only logged."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from pydantic import BaseModel

from vmrunner.components.exit_codes import ExitCode
from vmrunner.core import Component, ReloadConfiguration, Started, Stop, run
from vmrunner.core.config import Configurable, ConfigurationUpdate, ConfigWatcher
from vmrunner.core.recorder import EventRecorder


class AppModel(BaseModel):
    level: int = 0


class App(Configurable[AppModel], Component):
    config_model = AppModel

    def __init__(self) -> None:
        super().__init__()
        self.applied: list[AppModel] = []

    def on_config(self, config: AppModel, initial: bool) -> None:
        self.applied.append(config)


async def test_reload_applies_a_change_and_logs_an_unchanged_file(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "vmrunner.core.config")
    file = tmp_path / "config.yaml"
    file.write_text('"/App": {level: 1}\n')
    app = App()
    recorder = app.attach(EventRecorder())
    app.attach(ConfigWatcher(file, watch=False))  # nothing but the event reads it again
    task = asyncio.create_task(run(app))
    await recorder.wait_for(Started)
    assert app.applied == [AppModel(level=1)]

    file.write_text('"/App": {level: 2}\n')
    await app.call(ReloadConfiguration(reason="test"))
    assert app.applied == [AppModel(level=1), AppModel(level=2)]
    assert len(recorder.of_type(ConfigurationUpdate)) == 2  # the initial one and this one

    await app.call(ReloadConfiguration(reason="test"))
    assert len(recorder.of_type(ConfigurationUpdate)) == 2
    assert "re-read (test): unchanged" in caplog.text
    app.fire(Stop())
    assert await asyncio.wait_for(task, 5) == ExitCode.OK
