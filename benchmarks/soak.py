"""Graceful-stop soak: boot, write a marker, TERM, check nothing was lost (issue 8).

Each cycle runs ``python -m vmrunner run`` on the tiny test guest (TCG unless KVM really
works) with one persistent raw disk, waits for ``TG-READY``, has the guest write a unique
marker into the disk's first sector and sync it (``tg disk-mark``), sends SIGTERM and checks:

* the runner exits 0;
* the runner log shows the graceful path (``shutdown rung guest-agent`` or ``powerdown``)
  and no forced rung (``terminate``/``kill``);
* the marker is in the disk image afterwards;
* no process mentioning the VM's runtime directory is left.

A cycle is *graceful* when all of that holds, *forced* when the runner escalated (exit 3 or
a forced rung), *lost* when the marker is missing. The last line is exactly
``soak: <k>/<n> graceful, <f> forced, <l> lost``; the exit status is 0 only when every
cycle was graceful.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import sys
import time
import uuid
from pathlib import Path

from vmrunner.testing.guest import GuestImage, build_guest
from vmrunner.testing.qemu import raw_disk
from vmrunner.testing.runnerproc import RunnerProcess, guest_config, processes_using, short_dir
from vmrunner.vmtypes.render import kvm_usable

BOOT = 90.0
STOP = 60.0
FORCED_RUNGS = ("shutdown rung terminate", "shutdown rung kill")
GRACEFUL_RUNGS = ("shutdown rung guest-agent", "shutdown rung powerdown")


@dataclasses.dataclass
class Cycle:
    """The outcome of one cycle."""

    code: int | None
    graceful: bool
    forced: bool
    lost: bool
    orphans: list[int]
    seconds: float
    detail: str = ""


def _first_sector(disk: Path) -> bytes:
    with open(disk, "rb") as image:
        return image.read(512).rstrip(b"\0")


async def run_cycle(image: GuestImage, accel: str, base: Path, disk: Path) -> Cycle:
    """One boot → marker → TERM → verify cycle on ``disk`` (kept between cycles)."""
    marker = f"soak-{uuid.uuid4().hex}"
    config = guest_config(base, image, accel=accel, disk=disk)
    runner = RunnerProcess(config, log_level="INFO")
    runner.log.unlink(missing_ok=True)
    began = time.monotonic()
    try:
        await runner.start()
        await runner.wait_ready(BOOT)
        assert runner.console is not None
        await runner.console.check(f"tg disk-mark {marker}", 30)
        runner.signal(signal.SIGTERM)
        code = await runner.wait(STOP)
    except (RuntimeError, AssertionError, TimeoutError) as error:
        await runner.close()
        return Cycle(None, False, False, True, processes_using(runner.runtime_dir),
                     time.monotonic() - began, f"{error}\n{runner.log_tail()}")
    finally:
        if runner.console is not None:
            await runner.console.close()
            runner.console = None
    seconds = time.monotonic() - began
    if code is None:
        await runner.close()
    log = runner.log_text()
    forced = code == 3 or any(rung in log for rung in FORCED_RUNGS)
    stored = _first_sector(disk)
    lost = stored != f"{marker}\n".encode()
    orphans = processes_using(runner.runtime_dir)
    graceful = (code == 0 and not forced and not lost and not orphans
                and any(rung in log for rung in GRACEFUL_RUNGS))
    detail = "" if graceful else f"exit {code}, disk {stored[:60]!r}\n{runner.log_tail(25)}"
    return Cycle(code, graceful, forced, lost, orphans, seconds, detail)


async def soak(cycles: int, *, verbose: bool = True) -> list[Cycle]:
    """Run ``cycles`` cycles in one fresh directory and return their outcomes."""
    accel = "kvm" if kvm_usable() else "tcg"
    image = build_guest("cloud")
    base = short_dir("vs")
    results: list[Cycle] = []
    try:
        disk = raw_disk(base / "disk.img")
        for index in range(cycles):
            cycle = await run_cycle(image, accel, base, disk)
            results.append(cycle)
            if verbose:
                state = "graceful" if cycle.graceful else (
                    "forced" if cycle.forced else "lost" if cycle.lost else "failed")
                print(f"cycle {index + 1}/{cycles}: {state}, exit {cycle.code}, "
                      f"{cycle.seconds:.1f} s", flush=True)
                if cycle.detail:
                    print(cycle.detail, flush=True)
                if cycle.orphans:
                    print(f"  processes left behind: {cycle.orphans}", flush=True)
    finally:
        for pid in processes_using(base):
            print(f"killing leftover process {pid}", flush=True)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)
    return results


def summary(results: list[Cycle]) -> str:
    """The final line: ``soak: <k>/<n> graceful, <f> forced, <l> lost``."""
    graceful = sum(c.graceful for c in results)
    forced = sum(c.forced for c in results)
    lost = sum(c.lost for c in results)
    return f"soak: {graceful}/{len(results)} graceful, {forced} forced, {lost} lost"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--quiet", action="store_true", help="only the summary line")
    args = parser.parse_args()
    started = time.monotonic()
    results = asyncio.run(soak(args.cycles, verbose=not args.quiet))
    if not args.quiet:
        print(f"{len(results)} cycles in {time.monotonic() - started:.1f} s")
    print(summary(results), flush=True)
    return 0 if results and all(c.graceful for c in results) else 1


if __name__ == "__main__":
    sys.exit(main())
