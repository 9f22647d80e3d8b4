"""Observe benchmark: the cost of one ``/metrics`` scrape, and the runner's RSS with the VM
statistics collected and scraped against without.

In one run, two runners one after the other (``vmrunner run``, this interpreter) on the tiny
test guest (TCG unless KVM really works), each with a disk and a user-mode NIC, each measured
``--settle`` s after the guest's ``TG-READY``:

* off (the baseline): ``/Runner/StatsCollector`` with ``guestStatsInterval: 0`` and
  ``interval: 3600`` (one QMP sample at the start, no guest memory statistics) and no scrape;
* on: ``interval: 1``, ``guestStatsInterval: 1`` and ``--count`` scrapes of ``GET /metrics``
  through the API socket, one after the other (each timed from connect to the last byte;
  every answer must be 200 with the guest memory statistics in it, else the benchmark fails).

RSS is the runner process's ``VmRSS`` (not QEMU's) after the scrapes.

The last line is ``observe: scrape median X ms, rss +Y MiB with guest stats on``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from vmrunner.api.client import request
from vmrunner.testing.guest import GuestImage, build_guest
from vmrunner.testing.runnerproc import RunnerProcess, guest_config, short_dir
from vmrunner.vmtypes.render import kvm_usable

BOOT = 120.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def scrape_ms(api: Path) -> float:
    started = time.perf_counter()
    code, body = await request(api, "GET", "/metrics")
    elapsed = (time.perf_counter() - started) * 1000
    if code != 200 or b'vmrunner_guest_memory_bytes{kind="total"}' not in body:
        raise RuntimeError(f"scrape: {code}, no guest memory statistics:\n{body.decode()}")
    return elapsed


async def measure(image: GuestImage, accel: str, stats: dict[str, float], *, count: int,
                  settle: float) -> tuple[float, list[float]]:
    """(runner RSS in MiB, scrape times in ms; none when ``count`` is 0) of one runner."""
    base = short_dir("vro")
    disk = base / "disk.raw"
    disk.write_bytes(bytes(2**20))
    config = guest_config(base, image, accel=accel, knobs=("tg.qga=0",), disk=disk,
                          network=[{"type": "user"}], runner={"/StatsCollector": stats})
    runner = RunnerProcess(config, log_level="INFO")
    try:
        await runner.start()
        await runner.wait_ready(BOOT)
        await asyncio.sleep(settle)
        assert runner.proc is not None
        api = runner.runtime_dir / "api.sock"
        times: list[float] = []
        if count:
            deadline = time.monotonic() + 30
            while True:  # the guest's first memory report
                try:
                    await scrape_ms(api)
                    break
                except RuntimeError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.5)
            times = [await scrape_ms(api) for _ in range(count)]
            await asyncio.sleep(settle)
        return rss_mib(runner.proc.pid), times
    finally:
        runner.signal()
        await runner.wait(60)
        await runner.close()
        shutil.rmtree(base, ignore_errors=True)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="scrapes with stats on")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds after TG-READY (and after the scrapes) before RSS")
    args = parser.parse_args()
    accel = "kvm" if kvm_usable() else "tcg"
    private = Path(tempfile.mkdtemp(prefix="vmrunner-bench-"))
    image = build_guest("cloud")
    shutil.copytree(image.directory, private / "guest")
    image = msgspec.structs.replace(image, directory=private / "guest")
    try:
        off_rss, _ = await measure(image, accel, {"interval": 3600, "guestStatsInterval": 0},
                                   count=0, settle=args.settle)
        on_rss, times = await measure(image, accel, {"interval": 1, "guestStatsInterval": 1},
                                      count=args.count, settle=args.settle)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    median = statistics.median(times)
    p95 = statistics.quantiles(times, n=20)[-1]
    print(f"scrapes ({accel}, {len(times)}): median {median:.2f} ms, p95 {p95:.2f} ms, "
          f"max {max(times):.2f} ms")
    print(f"runner rss: off {off_rss:.1f} MiB, on {on_rss:.1f} MiB "
          f"(ratio {on_rss / off_rss:.3f})")
    print(f"observe: scrape median {median:.1f} ms, rss {on_rss - off_rss:+.1f} MiB "
          "with guest stats on")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
