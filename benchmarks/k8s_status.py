"""From a runner state change to the VirtualMachine status seen through a watch (issue 13).

    python benchmarks/k8s_status.py [--cycles N]   # needs scripts/k8s-apiserver.sh's binaries

The real API server (``vmrunner.testing.apiserver``), the real runner (``vmrunner run
--kubeconfig``) on the test guest, and a watch on the VirtualMachine, all on this host.
Each cycle boots the guest, makes six balloon changes, and sends TERM. For every change the
runner reports on its own event stream (``GET /events``: ``RunnerStateChanged`` to booting,
booted, terminating and stopped; ``RamChange`` applied), the sample is the time from that
event to the first watch event showing it in the status (``Running``/``Booted`` conditions,
``ram``). Both clocks are this host's ``time.time()``. A RAM sample whose size the status
already showed before the runner's ``RamChange`` was recorded counts as 0 ms (the writer
wrote it from the balloon's own event, a moment earlier).

The memory figure is the runner's RSS (``VmRSS``, 5 s after the guest's ready line) in
Kubernetes mode against the same runner stand-alone, measured in the same run.

The last line is exactly
``k8s-status: state→status median X ms, p95 Y ms, rss +Z MiB`` (targets: median ≤ 100 ms,
rss ≤ +8 MiB).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vmrunner.api.client import follow
from vmrunner.kube.quantity import quantity
from vmrunner.testing.apiserver import KubeApiServer, find_binaries
from vmrunner.testing.guest import GuestImage, build_guest
from vmrunner.testing.runnerproc import RunnerProcess, guest_config, scratch_dir

VM = "tg"
RAM_STEPS = ("192 MiB", "224 MiB", "160 MiB", "256 MiB", "200 MiB", "240 MiB")
SETTLE = 5.0
Status = dict[str, Any]


def _condition(status: Status, kind: str) -> tuple[str | None, str | None]:
    found = next((c for c in status.get("conditions") or () if c.get("type") == kind), {})
    return found.get("status"), found.get("reason")


class StatusWatch:
    """Every status the watch delivered for the VM, with its arrival (``time.time()``)."""

    def __init__(self, api: KubeApiServer) -> None:
        self.api = api
        self.seen: list[tuple[float, Status]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._offset = time.time() - time.monotonic()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        with self.api.watch_vms(timeout=3600) as watch:
            while not self._stop.is_set():
                try:
                    event = watch.next(0.2)
                except TimeoutError:
                    continue
                if event.object.get("metadata", {}).get("name") == VM:
                    with self._lock:
                        self.seen.append((event.received + self._offset,
                                          event.object.get("status") or {}))

    def last_before(self, until: float) -> Status:
        """The last status that arrived before ``until`` (``{}``: none)."""
        with self._lock:
            return next((s for t, s in reversed(self.seen) if t < until), {})

    def first_after(self, since: float, shows: Callable[[Status], bool]) -> float | None:
        """Arrival of the first status after ``since`` that ``shows`` the change."""
        with self._lock:
            return next((t for t, s in self.seen if t >= since and shows(s)), None)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _shows(record: dict[str, Any]) -> Callable[[Status], bool] | None:
    """How the status shows the runner event ``record`` (None: not a sampled event)."""
    kind, data = record["type"], record["data"]
    if kind == "RunnerStateChanged":
        wanted = {"booting": ("Running", "True", "VmStarted"),
                  "booted": ("Booted", "True", "VmBooted"),
                  "terminating": ("Running", "True", "VmTerminating"),
                  "stopped": ("Running", "False", "VmStopped")}.get(data.get("new", ""))
        if wanted is None:
            return None
        condition, value, reason = wanted
        return lambda s: _condition(s, condition) == (value, reason)
    if kind == "RamChange" and data.get("outcome") == "applied" and data.get("actual"):
        wanted = quantity(int(data["actual"]))
        return lambda s: s.get("ram") == wanted
    return None


async def _cycle(image: GuestImage, api: KubeApiServer, watch: StatusWatch,
                 samples: list[float]) -> float:
    """One boot → RAM changes → TERM with the status writer; returns the runner's RSS."""
    with scratch_dir("k8b") as base:
        def write(ram: str) -> None:
            guest_config(base, image, accel="tcg", name=VM, maximumRam="256 MiB",
                         currentRam=ram)

        write("256 MiB")
        runner = RunnerProcess(base / "config.yaml", log_level="INFO",
                               args=("--kubeconfig", str(api.kubeconfig),
                                     "--kube-namespace", "default"))
        records: list[dict[str, Any]] = []

        async def collect() -> None:
            async for record in follow(runner.runtime_dir / "api.sock", since=0):
                records.append(record)

        try:
            await runner.start()
            collector = asyncio.ensure_future(collect())
            await runner.wait_ready(90)
            await asyncio.sleep(SETTLE)
            assert runner.proc is not None
            rss = _rss_mib(runner.proc.pid)
            for ram in RAM_STEPS:
                write(ram)
                await asyncio.sleep(2.5)
            runner.signal()
            code = await runner.wait(60)
            if code != 0:
                raise RuntimeError(f"runner exit {code}\n{runner.log_tail()}")
            await asyncio.sleep(1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(collector, 5)
        finally:
            await runner.close()
    for record in records:
        shows = _shows(record)
        if shows is None:
            continue
        if shows(watch.last_before(record["time"])):
            # the status was there before this event was recorded: the balloon's own
            # BALLOON_CHANGE reached the target and the writer wrote it at once
            samples.append(0.0)
            continue
        seen = watch.first_after(record["time"], shows)
        if seen is None:
            print(f"  never seen: {record['type']} {record['data']}", flush=True)
            continue
        samples.append((seen - record["time"]) * 1000)
        if samples[-1] > 100:
            print(f"  slow: {samples[-1]:.0f} ms for {record['type']} {record['data']}",
                  flush=True)
    return rss


async def _standalone_rss(image: GuestImage) -> float:
    with scratch_dir("k8s") as base:
        config = guest_config(base, image, accel="tcg", name=VM, maximumRam="256 MiB")
        runner = RunnerProcess(config, log_level="INFO")
        try:
            await runner.start()
            await runner.wait_ready(90)
            await asyncio.sleep(SETTLE)
            assert runner.proc is not None
            rss = _rss_mib(runner.proc.pid)
            runner.signal()
            await runner.wait(60)
            return rss
        finally:
            await runner.close()


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def _main(api: KubeApiServer, cycles: int) -> str:
    image = build_guest("cloud")
    api.create_vm(VM)
    watch = StatusWatch(api)
    samples: list[float] = []
    kube_rss: list[float] = []
    alone_rss: list[float] = []
    try:
        for index in range(cycles):
            alone_rss.append(await _standalone_rss(image))
            before = len(samples)
            kube_rss.append(await _cycle(image, api, watch, samples))
            print(f"cycle {index + 1}/{cycles}: {len(samples) - before} samples, rss "
                  f"{kube_rss[-1]:.1f} MiB (stand-alone {alone_rss[-1]:.1f} MiB)", flush=True)
    finally:
        watch.close()
    if len(samples) < 2:
        raise RuntimeError("too few samples")
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(f"{len(samples)} samples, min {ordered[0]:.1f} ms, max {ordered[-1]:.1f} ms")
    delta = statistics.median(kube_rss) - statistics.median(alone_rss)
    return (f"k8s-status: state→status median {statistics.median(samples):.0f} ms, "
            f"p95 {p95:.0f} ms, rss {delta:+.1f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=3)
    args = parser.parse_args()
    binaries = find_binaries()
    if binaries is None:
        print("no API server binaries: run bash scripts/k8s-apiserver.sh", file=sys.stderr)
        return 2
    with KubeApiServer(binaries, Path(tempfile.mkdtemp(prefix="k8s-status-"))) as api:
        line = asyncio.run(_main(api, args.cycles))
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
