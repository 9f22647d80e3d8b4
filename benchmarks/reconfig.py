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

``--confirm`` measures instead how soon a balloon change is *confirmed*: the RamController's
``RamChange`` with outcome ``applied`` (what the event stream and ``vmrunner status`` show)
against the moment the guest got there. It runs the real test guest (the standard tree
in-process, the standard RamController, ``maximumRam`` 256 MiB) and alternates
``currentRam`` between 128 MiB (down) and 256 MiB (up) by rewriting the configuration file,
``--gap`` seconds (default 1.5) after the previous change was confirmed.

*The guest's own view* is observed twice, and the earlier observation counts (both come
late, so the earlier is the tighter bound on when the guest got there):

* its ``MemTotal``: a loop in the guest reads ``/proc/meminfo`` every 10 ms and prints each
  new value on the serial console; the time is the line's arrival in this process, late by
  the sampling and the console's transport (under load, 100 ms and more: the guest's vCPU
  and its serial output compete for the host's cores);
* the size the guest's balloon driver reports to QEMU after every 1 MiB it moved (having
  adjusted ``MemTotal`` first): ``query-balloon`` asked every 10 ms by an independent QMP
  client on a second monitor socket (:mod:`vmrunner.testing.observer`), late by the polling.

The change counts as reached when the value is within the controller's tolerance
(:func:`~vmrunner.config.sizes.ram_tolerance`) of the target (for ``MemTotal``: its value
at 256 MiB minus the balloon). The old behaviour (waiting for QEMU's ``BALLOON_CHANGE``, at
most one a second) is measured in the same run from the arrival of the first such event
that shows the target size.
Last line: ``confirm: balloon median <x> ms after the guest, p95 <y> ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from vmrunner.components import BUS
from vmrunner.components.ram import RamController
from vmrunner.config.sizes import MIB, ram_tolerance
from vmrunner.core import Component, Stop, handler, run
from vmrunner.daemon.builder import RunnerBuilder
from vmrunner.events import ExecuteQmp, Outcome, QmpBalloonChange, RamChange, VmContinued
from vmrunner.protocols.qmp import commands
from vmrunner.protocols.qmp.client import TRAFFIC_LOGGER
from vmrunner.testing.accel import decide_accel
from vmrunner.testing.console import GuestConsole
from vmrunner.testing.guest import build_guest, default_cache_dir
from vmrunner.testing.inproc import InProcessRunner
from vmrunner.testing.observer import BalloonObserver, observer_template
from vmrunner.testing.runnerproc import guest_config, scratch_dir, short_dir

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


Samples = list[tuple[float, int]]
"""``(perf_counter, value)`` in the order seen."""


def first_after(samples: Samples, accept: Callable[[int], bool], after: float) -> float | None:
    """When a value ``accept`` takes was first seen after ``after`` (one already there at
    ``after`` counts from ``after``)."""
    before = [v for t, v in samples if t <= after]
    if before and accept(before[-1]):
        return after
    return next((t for t, v in samples if t > after and accept(v)), None)


class Stamps(Component):
    """Notes when the runner dispatches ``RamChange`` and ``BALLOON_CHANGE`` (perf_counter)."""

    def __init__(self) -> None:
        super().__init__(BUS)
        self.reports: list[tuple[float, RamChange]] = []
        self.balloon: Samples = []
        self.changed = asyncio.Event()

    @handler(priority=sys.maxsize)
    def on_ram(self, event: RamChange) -> None:
        self.reports.append((time.perf_counter(), event))
        self.changed.set()

    @handler(priority=sys.maxsize)
    def on_balloon(self, event: QmpBalloonChange) -> None:
        self.balloon.append((time.perf_counter(), event.actual))
        self.changed.set()

    async def wait(self, found: Callable[[], float | None], timeout: float) -> float:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while (when := found()) is None:
                self.changed.clear()
                await self.changed.wait()
        return when


MEM_WATCH = ("(p=; while :; do read -r _ kb _ < /proc/meminfo; if [ \"$kb\" != \"$p\" ]; "
             "then echo \"TG-EVENT memtotal $kb\"; p=$kb; fi; usleep 10000; done) &")
"""The guest's MemTotal, printed on the console whenever it changes (sampled every 10 ms)."""
_MEM_LINE = re.compile(r"^TG-EVENT memtotal (\d+)$")


async def watch_memtotal(console: GuestConsole, out: Samples, changed: asyncio.Event) -> None:
    """Time each ``TG-EVENT memtotal`` line as it arrives (kB values into ``out``)."""
    pos = console.mark()
    while True:
        await console.wait_for(_MEM_LINE, since=pos, timeout=3600)
        now = time.perf_counter()
        lines = console.lines[pos:]
        pos += len(lines)
        out.extend((now, int(m.group(1))) for line in lines if (m := _MEM_LINE.match(line)))
        changed.set()


async def measure_confirm(rounds: int, gap: float) -> list[dict[str, Any]]:
    """One dict per change: its direction and the times (s after the write) of the guest's
    view, QEMU's value, the runner's report and the first BALLOON_CHANGE at the target."""
    image = build_guest("cloud")
    accel = decide_accel(default_cache_dir() / "accel.json")
    results: list[dict[str, Any]] = []
    with scratch_dir("cfm") as base:
        socket = base / "obs.sock"
        template = observer_template(base, socket)
        runner_keys = {"template": template.name, "templateDirs": [str(base)]}

        def write(current_mib: int) -> None:
            guest_config(base, image, accel=str(accel.accel), runner=runner_keys,
                         currentRam=f"{current_mib} MiB")

        write(256)
        stamps = Stamps()
        async with InProcessRunner(base / "config.yaml", stamps) as vm:
            await vm.recorder.wait_for(VmContinued, timeout=60)
            await vm.console.wait_ready(60)
            memtotal: Samples = []
            watcher = asyncio.create_task(watch_memtotal(vm.console, memtotal, stamps.changed))
            try:
                await vm.console.check(MEM_WATCH)
                await stamps.wait(lambda: memtotal[0][0] if memtotal else None, 10)
                full_kb = memtotal[0][1]  # at maximumRam: nothing ballooned yet
                async with BalloonObserver(socket) as observer:
                    current = 256
                    for _ in range(rounds):
                        current = 128 if current == 256 else 256
                        results.append(await one_change(
                            current, full_kb, write, stamps, memtotal, observer))
                        await asyncio.sleep(gap)
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await watcher
    return results


async def one_change(current_mib: int, full_kb: int, write: Callable[[int], None],
                     stamps: Stamps, memtotal: Samples,
                     observer: BalloonObserver) -> dict[str, Any]:
    target = current_mib * MIB
    tolerance = ram_tolerance(target)
    target_kb = full_kb - (256 * MIB - target) // 1024

    def at_target(actual: int) -> bool:
        return abs(actual - target) <= tolerance

    def guest_there(kb: int) -> bool:
        return abs(kb - target_kb) <= tolerance // 1024

    start = time.perf_counter()
    write(current_mib)

    def report() -> float | None:
        return next((t for t, e in stamps.reports if t > start and e.requested == target
                     and e.outcome is not Outcome.PENDING), None)

    reported = await stamps.wait(report, 60)
    outcome = next(e for t, e in stamps.reports if t == reported).outcome
    guest = await stamps.wait(lambda: first_after(memtotal, guest_there, start), 30)
    qemu = await observer.wait_first(at_target, start, 30)
    event = await stamps.wait(lambda: first_after(stamps.balloon, at_target, start), 30)
    return {"mib": current_mib, "outcome": outcome, "console": guest - start,
            "guest": min(guest, qemu) - start,
            "qemu": qemu - start, "report": reported - start, "event": event - start}


def summary(label: str, values: list[float]) -> str:
    return (f"{label}: median {statistics.median(values) * 1000:.0f} ms, "
            f"p95 {percentile(values, 0.95) * 1000:.0f} ms")


def print_confirm(results: list[dict[str, Any]]) -> None:
    for n, r in enumerate(results, 1):
        print(f"round {n:2d} {'down' if r['mib'] == 128 else 'up  '} to {r['mib']} MiB "
              f"({r['outcome'].value}), ms after the write: MemTotal {r['console'] * 1000:5.0f}, "
              f"QEMU {r['qemu'] * 1000:5.0f}, report {r['report'] * 1000:5.0f}, "
              f"BALLOON_CHANGE {r['event'] * 1000:5.0f}")
    for name, mib in (("down", 128), ("up", 256)):
        some = [r for r in results if r["mib"] == mib]
        print(f"{name:4s} n={len(some)}: guest reached after "
              f"{statistics.median([r['guest'] for r in some]) * 1000:.0f} ms (median); "
              + summary("report after the guest", [r["report"] - r["guest"] for r in some])
              + "; " + summary("BALLOON_CHANGE only", [r["event"] - r["guest"] for r in some]))
    print(summary("report after the guest's MemTotal line on the console",
                  [r["report"] - r["console"] for r in results]) + "; "
          + summary("after query-balloon (independent QMP observer)",
                    [r["report"] - r["qemu"] for r in results]))
    old = [r["event"] - r["guest"] for r in results]
    new = [r["report"] - r["guest"] for r in results]
    print(summary("old behaviour, BALLOON_CHANGE only: after the guest", old)
          + f"; ratio old/new (medians) "
          f"{statistics.median(old) / max(statistics.median(new), 1e-3):.1f}")
    print(f"confirm: balloon median {statistics.median(new) * 1000:.0f} ms after the guest, "
          f"p95 {percentile(new, 0.95) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None,
                        help="changes per way of writing (default 40); with --confirm: "
                             "balloon changes, alternating down and up (default 12)")
    parser.add_argument("--gap", type=float, default=None,
                        help="seconds between changes (default 0.05; 1.5 with --confirm)")
    parser.add_argument("--confirm", action="store_true",
                        help="time the confirmation of balloon changes on the real guest")
    args = parser.parse_args()
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "ERROR"), stream=sys.stderr)
    if args.confirm:
        rounds = 12 if args.rounds is None else args.rounds
        if rounds < 2:
            parser.error("--confirm needs at least 2 rounds (one down, one up)")
        print_confirm(asyncio.run(measure_confirm(rounds, 1.5 if args.gap is None
                                                  else args.gap)))
        return
    results = asyncio.run(measure(40 if args.rounds is None else args.rounds,
                                  0.05 if args.gap is None else args.gap))
    every: list[float] = []
    for name, values in results.items():
        every += values
        print(f"{name:9s} n={len(values):3d} median {statistics.median(values):6.1f} ms, "
              f"p95 {percentile(values, 0.95):6.1f} ms, max {max(values):6.1f} ms")
    print(f"reconfig: median {statistics.median(every):.1f} ms, "
          f"p95 {percentile(every, 0.95):.1f} ms")


if __name__ == "__main__":
    main()
