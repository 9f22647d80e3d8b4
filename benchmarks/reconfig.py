"""Reconfiguration latency: from the config write to the QMP command leaving the runner.

The standard runner tree runs in this process with the real QEMU (TCG, no guest: SeaBIOS
and no disk; the vCPUs are paused with ``stop`` right after ``cont``, so the machine's two
cores stay free) and a :class:`~vmrunner.components.ram.RamController`. The configuration
directory is laid out like a Kubernetes ConfigMap volume (``config.yaml -> ..data/...``).
Each round changes ``currentRam`` by one of three ways of writing (in-place write through
the symlinks, atomic rename in the data directory, kubelet-style ``..data`` symlink swap)
and measures from just before the write starts to the moment the QMP client hands
``{"execute": "balloon", ...}`` to the socket (its outbound traffic log,
``vmrunner.protocols.qmp.traffic``). The path covered: inotify → ConfigWatcher (debounce, read,
parse) → ConfigurationUpdate → Runner (validation) → ConfigureQemu → RamController →
ExecuteQmp → QemuMonitor → QMP client.

Last line: ``reconfig: median <x> ms, p95 <y> ms`` (over all rounds of all three ways).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from vmrunner.components import BUS
from vmrunner.components.ram import MIB, RamChange, RamController
from vmrunner.core import Component, Stop, handler, run
from vmrunner.daemon.builder import RunnerBuilder
from vmrunner.events import ExecuteQmp, VmContinued
from vmrunner.protocols.qmp import commands
from vmrunner.protocols.qmp.client import TRAFFIC_LOGGER
from vmrunner.testing.runnerproc import short_dir

TIMEOUT = 10.0


class BalloonSent(logging.Handler):
    """Takes the time when the QMP client sends ``balloon`` (outbound traffic log)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.sent: asyncio.Future[float] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        now = time.perf_counter()
        message = record.getMessage()
        if " --> " in message and '"execute":"balloon"' in message:
            sent = self.sent
            if sent is not None and not sent.done():
                sent.set_result(now)


class Pauser(Component):
    """Pauses the vCPUs right after ``cont`` (QMP keeps working) and notes the moment."""

    def __init__(self) -> None:
        super().__init__(BUS)
        self.paused: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.reported: dict[int, asyncio.Future[None]] = {}

    def report_of(self, target: int) -> asyncio.Future[None]:
        """Resolved when the RamController reports on ``target`` (pending, applied, ...)."""
        return self.reported.setdefault(target, asyncio.get_running_loop().create_future())

    @handler
    def on_continued(self, event: VmContinued) -> None:
        handle = self.fire(ExecuteQmp(command=commands.Stop()))
        handle.on_completion(lambda _h: self._paused())

    def _paused(self) -> None:
        if not self.paused.done():
            self.paused.set_result(None)

    @handler
    def on_ram(self, event: RamChange) -> None:
        reported = self.report_of(event.requested)
        if not reported.done():
            reported.set_result(None)


class Volume:
    """A ConfigMap-like directory; ``write(text, how)`` changes ``config.yaml``."""

    def __init__(self, base: Path, text: str) -> None:
        self.base, self.serial = base, 0
        self.file = base / "config.yaml"
        (base / "..data").symlink_to(self._new_dir(text).name)
        self.file.symlink_to("..data/config.yaml")

    def _new_dir(self, text: str) -> Path:
        self.serial += 1
        data = self.base / f"..v{self.serial:04d}"
        data.mkdir()
        (data / "config.yaml").write_text(text)
        return data

    def in_place(self, text: str) -> None:
        with open(self.file, "w") as stream:
            stream.write(text)

    def rename(self, text: str) -> None:
        data = (self.base / "..data").resolve()
        (data / ".tmp").write_text(text)
        os.replace(data / ".tmp", data / "config.yaml")

    def swap(self, text: str) -> None:
        old = (self.base / "..data").resolve()
        new = self._new_dir(text)
        (self.base / "..data_tmp").symlink_to(new.name)
        os.replace(self.base / "..data_tmp", self.base / "..data")
        shutil.rmtree(old)


def config_text(base: Path, current_mib: int) -> str:
    values: dict[str, Any] = {
        "dataDir": str(base / "data"), "runtimeDir": str(base / "run"),
        "vm": {"name": "reconfig", "firmware": "bios", "accelerator": "tcg",
               "maximumRam": "256 MiB", "currentRam": f"{current_mib} MiB",
               "maximumCpus": 1, "powerdownTimeout": 0, "network": [], "audio": False,
               "guestAgent": False},
    }
    return yaml.safe_dump({"/Runner": values}, sort_keys=False)


def single(builder: RunnerBuilder) -> None:
    """One component per name (ours replaces a standard one)."""
    names = [c.name for c in builder.components]
    for name in {n for n in names if names.count(n) > 1}:
        builder.remove(name)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def measure(rounds: int, gap: float) -> dict[str, list[float]]:
    base = short_dir("rcf")
    traffic = logging.getLogger(TRAFFIC_LOGGER)
    probe = BalloonSent()
    traffic.addHandler(probe)
    traffic.setLevel(logging.DEBUG)
    traffic.propagate = False
    task: asyncio.Task[int] | None = None
    try:
        volume = Volume(base, config_text(base, 256))
        pauser = Pauser()
        builder = RunnerBuilder(volume.file).add(RamController()).add(pauser)
        single(builder)
        runner = builder.build()
        task = asyncio.create_task(run(runner))
        first: set[asyncio.Future[Any]] = {task, pauser.paused}
        await asyncio.wait(first, timeout=60,
                           return_when=asyncio.FIRST_COMPLETED)
        if not pauser.paused.done():
            raise RuntimeError(f"the runner did not get to run the VM (exit {task.result()})"
                               if task.done() else "the VM did not start within 60 s")
        ways: dict[str, Callable[[str], None]] = {
            "in-place": volume.in_place, "rename": volume.rename, "swap": volume.swap}
        results: dict[str, list[float]] = {name: [] for name in ways}
        current = 256
        for index in range(rounds * len(ways)):
            name = list(ways)[index % len(ways)]
            current = 200 + (index % 50) if current != 200 + (index % 50) else 199
            text = config_text(base, current)
            probe.sent = asyncio.get_running_loop().create_future()
            pauser.reported.pop(current * MIB, None)
            reported = pauser.report_of(current * MIB)
            started = time.perf_counter()
            ways[name](text)
            sent = await asyncio.wait_for(probe.sent, TIMEOUT)
            results[name].append((sent - started) * 1000)
            await asyncio.wait_for(reported, TIMEOUT)  # the controller's report, then a gap
            await asyncio.sleep(gap)
        runner.fire(Stop())
        await asyncio.wait_for(task, 30)
        return results
    finally:
        traffic.removeHandler(probe)
        if task is not None and not task.done():
            task.cancel()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="changes per way of writing")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between changes")
    args = parser.parse_args()
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "ERROR"), stream=sys.stderr)
    results = asyncio.run(measure(args.rounds, args.gap))
    every: list[float] = []
    for name, values in results.items():
        every += values
        print(f"{name:9s} n={len(values):3d} median {statistics.median(values):6.1f} ms, "
              f"p95 {percentile(values, 0.95):6.1f} ms, max {max(values):6.1f} ms")
    print(f"reconfig: median {statistics.median(every):.1f} ms, "
          f"p95 {percentile(every, 0.95):.1f} ms")


if __name__ == "__main__":
    main()
