"""Latency of live configuration changes: from the file write to the update handler.

A tree with a :class:`~vmrunner.core.config.ConfigWatcher` (default settings, real inotify)
and a component handling ``ConfigurationUpdate``. For each way of changing the file
(in-place write, atomic rename, Kubernetes ConfigMap ``..data`` symlink swap) ``--changes``
changes are made one after the other; each is timed from just before the write starts to
the moment the handler runs.

Last line: ``config-watch: median <x> ms, p95 <y> ms`` (over all changes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from vmrunner.core import Component, Started, Stop, handler, run
from vmrunner.core.config import ConfigurationUpdate, ConfigWatcher, InitialConfiguration


class Probe(Component):
    """Notes when each (non-initial) update reaches its handler."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: asyncio.Future[float] | None = None
        self.started = asyncio.get_running_loop().create_future()

    @handler
    def on_update(self, event: ConfigurationUpdate) -> None:
        now = time.perf_counter()
        arrived = self.arrived
        if not isinstance(event, InitialConfiguration) and arrived and not arrived.done():
            arrived.set_result(now)

    @handler
    def on_started(self, event: Started) -> None:
        if not self.started.done():
            self.started.set_result(None)


def content(n: int) -> str:
    return f'"/Probe":\n  generation: {n}\n  padding: "{"x" * 200}"\n'


def in_place(file: Path) -> Callable[[str], None]:
    def write(text: str) -> None:
        with open(file, "w") as stream:
            stream.write(text)
    return write


def by_rename(file: Path) -> Callable[[str], None]:
    tmp = file.with_name(f".{file.name}.tmp")

    def write(text: str) -> None:
        tmp.write_text(text)
        os.replace(tmp, file)
    return write


def by_symlink_swap(directory: Path) -> Callable[[str], None]:
    """kubelet's AtomicWriter: new timestamped dir, ``..data_tmp``, rename, remove old."""
    version = [0]

    def write(text: str) -> None:
        version[0] += 1
        new = directory / f"..2024_01_01_00_00_00.{version[0]:09d}"
        new.mkdir()
        (new / "config.yaml").write_text(text)
        data = directory / "..data"
        old = os.readlink(data) if data.is_symlink() else None
        if not (directory / "config.yaml").is_symlink():
            os.symlink("..data/config.yaml", directory / "config.yaml")
        os.symlink(new.name, directory / "..data_tmp")
        os.rename(directory / "..data_tmp", data)
        if old is not None:
            shutil.rmtree(directory / old)
    return write


async def measure(name: str, directory: Path, changes: int) -> list[float]:
    """Milliseconds from write to handler for ``changes`` changes made one way."""
    file = directory / "config.yaml"
    if name == "symlink-swap":
        write = by_symlink_swap(directory)
    else:
        write = in_place(file) if name == "in-place" else by_rename(file)
    generation = 0
    write(content(generation))
    root = Component(name="Bench")
    probe = root.attach(Probe())
    root.attach(ConfigWatcher(file))
    runner = asyncio.create_task(run(root))
    await asyncio.wait_for(probe.started, 10)  # (a change racing the watch is re-checked)
    samples = []
    for _ in range(changes):
        generation += 1
        probe.arrived = asyncio.get_running_loop().create_future()
        start = time.perf_counter()
        write(content(generation))
        arrived = await asyncio.wait_for(probe.arrived, 10)
        samples.append((arrived - start) * 1000)
    root.fire(Stop())
    await asyncio.wait_for(runner, 10)
    return samples


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[94]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=200, help="changes per method")
    args = parser.parse_args()
    everything: list[float] = []
    for name in ("in-place", "rename", "symlink-swap"):
        with tempfile.TemporaryDirectory(prefix="config-watch-") as tmp:
            samples = await measure(name, Path(tmp), args.changes)
        everything += samples
        print(f"{name:>13}: {len(samples)} changes, median {statistics.median(samples):.2f} ms, "
              f"p95 {p95(samples):.2f} ms, max {max(samples):.2f} ms")
    print(f"config-watch: median {statistics.median(everything):.2f} ms, "
          f"p95 {p95(everything):.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
