"""ConfigWatcher with real files and real inotify: every way a config file gets replaced.

The file operations are done exactly as the tools in question do them (editors writing in
place, ``mv`` of a temporary file, kubelet's AtomicWriter for ConfigMap volumes).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import BaseModel

from vmrunner.components.exit_codes import ExitCode
from vmrunner.core import Component, Started, Stop, run
from vmrunner.core.config import (
    Configurable,
    ConfigurationRejected,
    ConfigurationUpdate,
    ConfigWatcher,
    InitialConfiguration,
)
from vmrunner.core.recorder import EventRecorder

TIMEOUT = 3.0


class AppModel(BaseModel):
    level: int = 0


class App(Configurable[AppModel], Component):
    config_model = AppModel

    def __init__(self) -> None:
        super().__init__()
        self.applied: list[AppModel] = []
        self._waiters: list[asyncio.Future[None]] = []

    def on_config(self, config: AppModel, initial: bool) -> None:
        self.applied.append(config)
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            fut.set_result(None)

    async def wait_applied(self, config: AppModel) -> None:
        """Wait until ``config`` has been passed to ``on_config``."""
        async with asyncio.timeout(TIMEOUT):
            while config not in self.applied:
                fut = asyncio.get_running_loop().create_future()
                self._waiters.append(fut)
                await fut


class ProbedWatcher(ConfigWatcher):
    """The real watcher plus a probe: tests can await the end of each re-read (``check``)."""

    def __init__(self, path: Path, **options: float) -> None:
        super().__init__(path, **options)  # type: ignore[arg-type]
        self.checks = 0
        self._check_waiters: list[asyncio.Future[None]] = []

    def check(self) -> None:
        super().check()
        self.checks += 1
        waiters, self._check_waiters = self._check_waiters, []
        for fut in waiters:
            fut.set_result(None)

    async def next_check(self) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._check_waiters.append(fut)
        await asyncio.wait_for(fut, TIMEOUT)


def doc(level: int) -> str:
    return f'"/App":\n  level: {level}\n'


@dataclass
class Tree:
    app: App
    watcher: ProbedWatcher
    recorder: EventRecorder

    def updates(self) -> list[ConfigurationUpdate]:
        return [u for u in self.recorder.of_type(ConfigurationUpdate)
                if not isinstance(u, InitialConfiguration)]

    async def level_becomes(self, level: int) -> None:
        await self.app.wait_applied(AppModel(level=level))
        assert self.app.config == AppModel(level=level)
        assert self.updates()[-1].structured("/Root/App") == {"level": level}


@pytest.fixture
async def make_tree() -> AsyncIterator[Callable[[Path], asyncio.Future[Tree]]]:
    tasks: list[asyncio.Task[int]] = []
    roots: list[Component] = []

    async def start(file: Path, **options: float) -> Tree:
        root = Component(name="Root")
        app = root.attach(App())
        watcher = root.attach(ProbedWatcher(file, **options))
        recorder = root.attach(EventRecorder())
        first_check = asyncio.ensure_future(watcher.next_check())
        tasks.append(asyncio.create_task(run(root)))
        roots.append(root)
        await recorder.wait_for(Started, timeout=TIMEOUT)
        await first_check  # the watch is established
        app_path = app.component_path
        assert app_path == "/Root/App"
        return Tree(app, watcher, recorder)

    yield start  # type: ignore[misc]
    for root, task in zip(roots, tasks, strict=True):
        root.fire(Stop())
        assert await asyncio.wait_for(task, TIMEOUT) == ExitCode.OK
    leftover = [t for t in asyncio.all_tasks() if t.get_name().endswith(":watch")]
    assert leftover == []  # the watch task ends with the tree


def rooted(level: int) -> str:
    return f'"/Root":\n  "/App":\n    level: {level}\n'


def write_in_place(file: Path, text: str) -> None:
    with open(file, "w") as stream:  # truncate + write + close, as editors without backup
        stream.write(text)


def write_by_rename(file: Path, text: str) -> None:
    tmp = file.with_name(f".{file.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, file)


class AtomicWriter:
    """kubelet's AtomicWriter for a ConfigMap volume, step by step::

        <dir>/..2024_01_01_00_00_00.<n>/config.yaml   the payload, one directory per version
        <dir>/..data -> ..2024_01_01_00_00_00.<n>    swapped atomically
        <dir>/config.yaml -> ..data/config.yaml       created once, never changes
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.version = 0

    def write(self, text: str) -> None:
        d = self.directory
        self.version += 1
        new = d / f"..2024_01_01_00_00_00.{self.version:09d}"
        new.mkdir(mode=0o755)  # 1. a fresh timestamped directory with the payload
        (new / "config.yaml").write_text(text)
        old = os.readlink(d / "..data") if (d / "..data").is_symlink() else None
        if not (d / "config.yaml").is_symlink():  # 2. user-visible links (first time only)
            os.symlink("..data/config.yaml", d / "config.yaml")
        os.symlink(new.name, d / "..data_tmp")  # 3. ..data_tmp -> new directory
        os.rename(d / "..data_tmp", d / "..data")  # 4. the atomic swap
        if old is not None:
            shutil.rmtree(d / old)  # 5. the old version goes


async def test_in_place_write(tmp_path: Path, make_tree: Callable[..., asyncio.Future[Tree]]
                              ) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(rooted(1))
    tree = await make_tree(file)
    assert tree.app.config == AppModel(level=1)
    for level in (2, 3):
        write_in_place(file, rooted(level))
        await tree.level_becomes(level)
    assert len(tree.updates()) == 2


async def test_atomic_rename(tmp_path: Path, make_tree: Callable[..., asyncio.Future[Tree]]
                             ) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(rooted(1))
    tree = await make_tree(file)
    for level in (2, 3):
        write_by_rename(file, rooted(level))
        await tree.level_becomes(level)
    assert len(tree.updates()) == 2


async def test_kubernetes_configmap_symlink_swap(
    tmp_path: Path, make_tree: Callable[..., asyncio.Future[Tree]]
) -> None:
    writer = AtomicWriter(tmp_path)
    writer.write(rooted(1))
    tree = await make_tree(tmp_path / "config.yaml")
    assert tree.app.config == AppModel(level=1)
    for level in (2, 3, 4):  # several swaps: the watch must survive each one
        writer.write(rooted(level))
        await tree.level_becomes(level)
    assert len(tree.updates()) == 3
    assert os.readlink(tmp_path / "config.yaml") == "..data/config.yaml"


async def test_symlink_into_another_directory_follows_edits_of_the_target(
    tmp_path: Path, make_tree: Callable[..., asyncio.Future[Tree]]
) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "a.yaml"
    target.write_text(rooted(1))
    link = tmp_path / "etc" / "config.yaml"
    link.symlink_to(target)
    tree = await make_tree(link)
    write_in_place(target, rooted(2))  # no event in the link's directory
    await tree.level_becomes(2)
    other = tmp_path / "real" / "b.yaml"
    other.write_text(rooted(3))
    tmp_link = link.with_name("config.yaml.new")
    tmp_link.symlink_to(other)
    os.replace(tmp_link, link)  # ln -sf, atomically
    await tree.level_becomes(3)
    write_in_place(other, rooted(4))
    await tree.level_becomes(4)


async def test_deleted_then_restored_file_keeps_config_and_logs_once(
    tmp_path: Path, make_tree: Callable[..., asyncio.Future[Tree]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(rooted(1))
    tree = await make_tree(file)
    with caplog.at_level(logging.INFO, logger="vmrunner.core.config"):
        file.unlink()
        await tree.watcher.next_check()
        write_by_rename(tmp_path / "config.yaml.bak", "unrelated")  # a second event...
        (tmp_path / "..stray").mkdir()  # ...and a relevant one while the file is gone
        await tree.watcher.next_check()
        assert tree.app.config == AppModel(level=1)
        vanished = [m for m in caplog.messages if "vanished" in m]
        assert len(vanished) == 1 and str(file) in vanished[0]
        file.write_text(rooted(1))  # back with the same content: nothing to deliver
        await tree.watcher.next_check()
        assert tree.updates() == []
        assert any("is back" in m for m in caplog.messages)
        file.unlink()
        await tree.watcher.next_check()
        write_by_rename(file, rooted(5))  # back with new content
        await tree.level_becomes(5)
    assert len([m for m in caplog.messages if "vanished" in m]) == 2
    assert len(tree.updates()) == 1


async def test_no_op_writes_are_skipped_by_content(
    tmp_path: Path, make_tree: Callable[..., asyncio.Future[Tree]]
) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(rooted(1))
    tree = await make_tree(file)
    write_in_place(file, rooted(1))  # same bytes
    await tree.watcher.next_check()
    write_in_place(file, "# a comment\n" + rooted(1))  # other bytes, same content
    await tree.watcher.next_check()
    assert tree.updates() == []
    write_in_place(file, rooted(2))
    await tree.level_becomes(2)
    assert len(tree.updates()) == 1


async def test_a_burst_of_writes_is_coalesced(
    tmp_path: Path, make_tree: Callable[..., asyncio.Future[Tree]]
) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(rooted(0))
    # A generous quiet period, so that the burst is one even on a loaded machine.
    tree = await make_tree(file, debounce_s=0.2, max_delay_s=5.0)
    checks = tree.watcher.checks
    for level in range(1, 21):  # 40 writes; the watcher sees the events between them
        write_in_place(file, rooted(level))
        await asyncio.sleep(0)
        write_by_rename(file, rooted(level))
        await asyncio.sleep(0)
    await tree.level_becomes(20)
    assert tree.watcher.checks == checks + 1
    assert tree.app.applied == [AppModel(level=0), AppModel(level=20)]
    write_in_place(file, rooted(21))  # a later change is a new burst
    await tree.level_becomes(21)
    assert [u.structured("/Root/App") for u in tree.updates()] == [{"level": 20},
                                                                   {"level": 21}]


async def test_bad_yaml_edit_is_rejected_and_last_good_config_kept(
    tmp_path: Path, make_tree: Callable[..., asyncio.Future[Tree]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(rooted(1))
    tree = await make_tree(file)
    with caplog.at_level(logging.ERROR, logger="vmrunner.core.config"):
        write_in_place(file, '"/Root":\n  "/App":\n    level: [1\n')
        rejected = await tree.recorder.wait_for(ConfigurationRejected, timeout=TIMEOUT)
    assert rejected.path == "/" and not rejected.initial
    assert rejected.errors[0].startswith(f"{file}:4: invalid YAML")
    assert rejected.errors[0] in caplog.messages
    assert tree.app.config == AppModel(level=1)
    write_in_place(file, '"/Root":\n  "/App":\n    level: high\n')  # valid YAML, bad value
    component = await tree.recorder.wait_for(
        ConfigurationRejected, lambda r: r.path == "/Root/App", TIMEOUT)
    assert component.errors == ("/Root/App/level: Input should be a valid integer, unable "
                                "to parse string as an integer",)
    assert tree.app.config == AppModel(level=1)
    write_in_place(file, rooted(2))
    await tree.level_becomes(2)


async def test_removed_node_is_delivered_as_none(
    tmp_path: Path, make_tree: Callable[..., asyncio.Future[Tree]]
) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(rooted(3) + '"/Other": {a: 1}\n')
    tree = await make_tree(file)
    write_in_place(file, '"/Other": {a: 1}\n')
    await tree.app.wait_applied(AppModel())  # a removed section counts as empty: defaults
    [update] = tree.updates()
    assert update.structured("/Other") == {"a": 1}
    assert set(update.removed) == {"/Root", "/Root/App"}


def billion_laughs() -> str:
    lines = ['"/Root":', '  "/App":', f"    l0: &l0 [{', '.join(['lol'] * 9)}]"]
    lines += [f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


async def _rejected_then_recovers(
    tree: Tree, file: Path, break_it: Callable[[], None], expected: str, level: int
) -> None:
    """``break_it`` is rejected with ``expected`` (the loop stays responsive), then a valid
    edit applies: the watch task survived."""
    kept = tree.app.config
    break_it()
    rejected = await tree.recorder.wait_for(
        ConfigurationRejected, lambda r: r.errors == (expected,), TIMEOUT)
    assert rejected.path == "/" and not rejected.initial
    await asyncio.sleep(0)  # the loop is not blocked
    assert tree.app.config == kept
    write_by_rename(file, rooted(level))  # replaces a FIFO or a symlink too
    await tree.level_becomes(level)


async def test_a_fifo_swapped_in_is_rejected_without_blocking(
    tmp_path: Path, make_tree: Callable[..., asyncio.Future[Tree]]
) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(rooted(1))
    tree = await make_tree(file)

    def swap() -> None:
        os.mkfifo(tmp_path / "f")
        os.replace(tmp_path / "f", file)

    await _rejected_then_recovers(tree, file, swap, f"{file}: not a regular file (a FIFO)", 2)


async def test_a_symlink_to_dev_zero_is_rejected(
    tmp_path: Path, make_tree: Callable[..., asyncio.Future[Tree]]
) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(rooted(1))
    tree = await make_tree(file)

    def swap() -> None:
        os.symlink("/dev/zero", tmp_path / "link")
        os.replace(tmp_path / "link", file)

    await _rejected_then_recovers(
        tree, file, swap, f"{file}: not a regular file (a character device)", 3)


async def test_deep_nesting_and_billion_laughs_edits_are_rejected(
    tmp_path: Path, make_tree: Callable[..., asyncio.Future[Tree]]
) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(rooted(1))
    tree = await make_tree(file)
    deep = '"/Root":\n  "/App":\n    level: ' + "[" * 990 + "]" * 990 + "\n"
    await _rejected_then_recovers(
        tree, file, lambda: write_in_place(file, deep),
        f"{file}:3: nested deeper than 64 levels", 4)
    await _rejected_then_recovers(
        tree, file, lambda: write_in_place(file, billion_laughs()),
        f"{file}:8: aliases expand to more than 100000 nodes", 5)


async def test_an_unexpected_error_is_rejected_once_and_watching_goes_on(
    tmp_path: Path, make_tree: Callable[..., asyncio.Future[Tree]],
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import vmrunner.core.config.watcher as watcher_module

    file = tmp_path / "config.yaml"
    file.write_text(rooted(1))
    tree = await make_tree(file)

    def broken(path: Path) -> bytes:
        raise MemoryError("boom")

    monkeypatch.setattr(watcher_module, "read_bytes", broken)
    with caplog.at_level(logging.ERROR, logger="vmrunner.core.config"):
        write_in_place(file, rooted(7))
        rejected = await tree.recorder.wait_for(ConfigurationRejected, timeout=TIMEOUT)
        write_in_place(file, rooted(8))  # the same problem again: not logged again
        await tree.watcher.next_check()
    assert rejected.errors == (f"{file}: cannot load: MemoryError: boom",)
    assert len(tree.recorder.of_type(ConfigurationRejected)) == 1
    assert caplog.messages.count(rejected.errors[0]) == 1
    assert any(r.exc_info for r in caplog.records)  # the traceback is logged
    assert tree.app.config == AppModel(level=1)
    monkeypatch.undo()
    write_in_place(file, rooted(9))
    await tree.level_becomes(9)
