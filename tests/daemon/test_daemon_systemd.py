"""systemd integration that needs no VM: directory defaults, the watchdog interval, journald
log lines (docs/guide/operations.md, "systemd")."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmrunner.api.sdnotify import watchdog_interval
from vmrunner.config.model import RunnerConfig
from vmrunner.daemon.logs import journal_priority, setup_logging
from vmrunner.vmtypes.state import default_data_dir, default_runtime_dir, resolve_paths

VM = {"name": "vm1", "firmware": "bios"}


def test_systemd_directories_are_the_defaults_first_path_wins() -> None:
    env = {"STATE_DIRECTORY": "/var/lib/vmrunner/vm1:/var/lib/other",
           "RUNTIME_DIRECTORY": "/run/vmrunner/vm1:/run/other",
           "XDG_DATA_HOME": "/x/data", "XDG_RUNTIME_DIR": "/x/run", "HOME": "/home/u"}
    paths = resolve_paths(RunnerConfig.model_validate({"vm": VM}), env)
    assert paths.data_dir == Path("/var/lib/vmrunner/vm1")
    assert paths.runtime_dir == Path("/run/vmrunner/vm1")
    # an explicit key still wins
    explicit = RunnerConfig.model_validate({"vm": VM, "dataDir": "/d", "runtimeDir": "/r"})
    assert resolve_paths(explicit, env).data_dir == Path("/d")
    assert resolve_paths(explicit, env).runtime_dir == Path("/r")


def test_root_gets_system_directories_others_keep_xdg() -> None:
    env = {"HOME": "/root"}
    assert default_data_dir("vm1", env, uid=0) == Path("/var/lib/vmrunner/vm1")
    assert default_runtime_dir("vm1", env, uid=0) == Path("/run/vmrunner/vm1")
    assert default_data_dir("vm1", {"HOME": "/home/u"}, uid=1000) == Path(
        "/home/u/.local/share/vmrunner/vm1")
    assert default_runtime_dir("vm1", {"XDG_RUNTIME_DIR": "/run/user/1000"}, uid=1000) == Path(
        "/run/user/1000/vmrunner/vm1")
    # an explicit XDG variable is honoured for root, too (tests isolate themselves so)
    assert default_data_dir("vm1", {"XDG_DATA_HOME": "/x"}, uid=0) == Path("/x/vmrunner/vm1")
    assert default_data_dir("vm1", {"STATE_DIRECTORY": ""}, uid=0) == Path(
        "/var/lib/vmrunner/vm1")


def test_watchdog_interval() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, 42) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, 42) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "43"}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "x"}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "\u00b2"}, 42) is None  # a Unicode digit
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "\u00b2"}, 42) is None
    assert watchdog_interval({}, 42) is None


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield None
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def _log_to(path: Path, env: dict[str, str]) -> str:
    with path.open("w") as stream:
        setup_logging("DEBUG", "text", stream, env=env)
        log = logging.getLogger("vmrunner.test")
        log.error("bad\nsecond line")
        log.warning("careful")
        log.info("fine")
        log.debug("detail")
        for handler in logging.getLogger().handlers:
            handler.flush()
    return path.read_text()


@pytest.mark.usefixtures("restore_logging")
def test_journal_stream_lines_have_priorities_and_no_time(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    path.touch()
    info = os.stat(path)
    text = _log_to(path, {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"})
    assert text.splitlines() == [
        "<3>ERROR vmrunner.test: bad", "<3>second line", "<4>WARNING vmrunner.test: careful",
        "<6>INFO vmrunner.test: fine", "<7>DEBUG vmrunner.test: detail"]


@pytest.mark.usefixtures("restore_logging")
def test_other_streams_keep_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "plain"
    path.touch()
    info = os.stat(path)
    for env in ({}, {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino + 1}"},
                {"JOURNAL_STREAM": "garbage"}):
        first = _log_to(path, env).splitlines()[0]
        assert first[:2] == "20" and first.endswith(" ERROR vmrunner.test: bad"), first


def test_priorities() -> None:
    assert [journal_priority(level) for level in (50, 40, 30, 20, 10, 5)] == [3, 3, 4, 6, 7, 7]
