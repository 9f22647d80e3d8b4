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

With ``--churn`` (issue 15), each cycle also makes 3 to 8 random live edits while the guest
runs (RAM, vCPUs, the CD's medium, a reset, the SPICE password:
:class:`vmrunner.testing.churn.Churn`, seeded by ``--seed``), waits for a reset guest to be
back, then writes the marker and sends TERM. A cycle in which QEMU exited on its own (exit 4,
or before the TERM) is a *crash*. The last line is then exactly
``soak: <k>/<n> graceful, <f> forced, <l> lost, <c> crashes, churn <e> edits``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import random
import shutil
import signal
import socket
import sys
import time
import uuid
from pathlib import Path

from vmrunner.testing.churn import Churn
from vmrunner.testing.console import READY
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
    crashed: bool = False
    edits: tuple[str, ...] = ()


def _first_sector(disk: Path) -> bytes:
    with open(disk, "rb") as image:
        return image.read(512).rstrip(b"\0")


async def _churn(runner: RunnerProcess, churn: Churn) -> tuple[str, ...]:
    """3 to 8 random live edits; returns them once the guest answers again (after a reset:
    once it is back up). A QEMU that exits meanwhile ends it early."""
    assert runner.console is not None and runner.proc is not None
    done: list[str] = []
    reset_mark: int | None = None
    for _ in range(churn.rng.randint(3, 8)):
        mark = runner.console.mark()
        what = churn.edit()
        done.append(what)
        if what == "reset":
            reset_mark = mark
        await asyncio.sleep(churn.rng.uniform(0.2, 1.5))
        if runner.proc.returncode is not None:
            return tuple(done)
    await asyncio.sleep(1.0)  # the last edit applied
    if reset_mark is not None and runner.proc.returncode is None:
        await runner.console.wait_for(READY, since=reset_mark, timeout=BOOT)
    return tuple(done)


async def run_cycle(image: GuestImage, accel: str, base: Path, disk: Path,
                    churn: Churn | None = None) -> Cycle:
    """One boot → (churn →) marker → TERM → verify cycle on ``disk`` (kept between
    cycles)."""
    marker = f"soak-{uuid.uuid4().hex}"
    config = churn.config if churn is not None else guest_config(base, image, accel=accel,
                                                                 disk=disk)
    runner = RunnerProcess(config, log_level="INFO")
    runner.log.unlink(missing_ok=True)
    began = time.monotonic()
    edits: tuple[str, ...] = ()
    try:
        await runner.start()
        await runner.wait_ready(BOOT)
        assert runner.console is not None and runner.proc is not None
        if churn is not None:
            edits = await _churn(runner, churn)
            if runner.proc.returncode is not None:
                code = runner.proc.returncode
                return Cycle(code, False, False, False, processes_using(runner.runtime_dir),
                             time.monotonic() - began,
                             f"QEMU ended during the edits {edits}: exit {code}\n"
                             f"{runner.log_tail(25)}", crashed=True, edits=edits)
        await runner.console.check(f"tg disk-mark {marker}", 30)
        runner.signal(signal.SIGTERM)
        code = await runner.wait(STOP)
    except (RuntimeError, AssertionError, TimeoutError) as error:
        await runner.close()
        crashed = runner.proc is not None and runner.proc.returncode == 4
        return Cycle(None, False, False, True, processes_using(runner.runtime_dir),
                     time.monotonic() - began, f"{error}\nedits {edits}\n{runner.log_tail()}",
                     crashed=crashed, edits=edits)
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
    detail = "" if graceful else (f"exit {code}, edits {edits}, disk {stored[:60]!r}\n"
                                  f"{runner.log_tail(25)}")
    return Cycle(code, graceful, forced, lost, orphans, seconds, detail, crashed=code == 4,
                 edits=edits)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def soak(cycles: int, *, verbose: bool = True, churn_seed: int | None = None,
               ) -> list[Cycle]:
    """Run ``cycles`` cycles in one fresh directory and return their outcomes; with
    ``churn_seed``, each with random live edits (see the module docstring)."""
    accel = "kvm" if kvm_usable() else "tcg"
    image = build_guest("cloud")
    base = short_dir("vs")
    results: list[Cycle] = []
    try:
        disk = raw_disk(base / "disk.img")
        churn = None if churn_seed is None else Churn(
            base, image, accel, disk, rng=random.Random(churn_seed), spice_port=_free_port())
        for index in range(cycles):
            cycle = await run_cycle(image, accel, base, disk, churn)
            results.append(cycle)
            if verbose:
                state = "graceful" if cycle.graceful else (
                    "forced" if cycle.forced else "lost" if cycle.lost else "failed")
                print(f"cycle {index + 1}/{cycles}: {state}, exit {cycle.code}, "
                      f"{cycle.seconds:.1f} s"
                      + (f", edits: {' '.join(cycle.edits)}" if cycle.edits else ""),
                      flush=True)
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


def summary(results: list[Cycle], *, churn: bool = False) -> str:
    """The final line: ``soak: <k>/<n> graceful, <f> forced, <l> lost``, with ``churn``
    followed by ``, <c> crashes, churn <e> edits``."""
    graceful = sum(c.graceful for c in results)
    forced = sum(c.forced for c in results)
    lost = sum(c.lost for c in results)
    line = f"soak: {graceful}/{len(results)} graceful, {forced} forced, {lost} lost"
    if churn:
        crashes = sum(c.crashed for c in results)
        line += f", {crashes} crashes, churn {sum(len(c.edits) for c in results)} edits"
    return line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--quiet", action="store_true", help="only the summary line")
    parser.add_argument("--churn", action="store_true",
                        help="random live edits in every cycle (RAM, vCPUs, CD, reset, password)")
    parser.add_argument("--seed", type=int, default=None,
                        help="the churn's random seed (default: a new one, printed)")
    args = parser.parse_args()
    seed = None
    if args.churn:
        seed = args.seed if args.seed is not None else random.randrange(1 << 32)
        print(f"churn seed {seed}", flush=True)
    started = time.monotonic()
    results = asyncio.run(soak(args.cycles, verbose=not args.quiet, churn_seed=seed))
    if not args.quiet:
        print(f"{len(results)} cycles in {time.monotonic() - started:.1f} s")
    print(summary(results, churn=args.churn), flush=True)
    return 0 if results and all(c.graceful for c in results) else 1


if __name__ == "__main__":
    sys.exit(main())
