"""Scale: N runners with tiny guests at once, TERMed together (issue 8).

Starts ``--vms`` ``python -m vmrunner run`` processes on the tiny test guest (TCG unless KVM
really works; 128 MiB each), waits until every guest printed ``TG-READY``, samples each
runner's RSS, sends SIGTERM to all of them at the same moment and checks each one: exit 0,
the graceful rung in its log and no forced one, no process left that mentions its runtime
directory. The last line is exactly
``scale: <n> VMs, graceful <k>/<n>, runner rss total <x> MiB``; the exit status is 0 only
when all were graceful.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from vmrunner.testing.guest import GuestImage, build_guest
from vmrunner.testing.runnerproc import RunnerProcess, guest_config, processes_using, short_dir
from vmrunner.vmtypes.render import kvm_usable

FORCED_RUNGS = ("shutdown rung terminate", "shutdown rung kill")
GRACEFUL_RUNGS = ("shutdown rung guest-agent", "shutdown rung powerdown")


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def graceful(runner: RunnerProcess, code: int | None) -> bool:
    """Exit 0, the graceful rung logged, no forced rung, nothing left behind."""
    log = runner.log_text()
    return (code == 0 and any(r in log for r in GRACEFUL_RUNGS)
            and not any(r in log for r in FORCED_RUNGS)
            and not processes_using(runner.runtime_dir))


async def _start(image: GuestImage, accel: str, base: Path, index: int,
                 boot_timeout: float) -> RunnerProcess:
    directory = base / f"vm{index}"
    directory.mkdir()
    runner = RunnerProcess(guest_config(directory, image, accel=accel, name=f"scale{index}",
                                        maximumRam="128 MiB"), log_level="INFO")
    await runner.start(timeout=boot_timeout)
    await runner.wait_ready(boot_timeout)
    return runner


async def scale(vms: int, *, boot_timeout: float = 240.0,
                verbose: bool = True) -> tuple[int, float]:
    """Run the scenario; (graceful count, total runner RSS in MiB)."""
    accel = "kvm" if kvm_usable() else "tcg"
    image = build_guest("cloud")
    base = short_dir("vc")
    runners: list[RunnerProcess] = []
    try:
        began = time.monotonic()
        starts = [asyncio.ensure_future(_start(image, accel, base, i, boot_timeout))
                  for i in range(vms)]
        try:
            runners.extend(await asyncio.gather(*starts))
        finally:
            for task in starts:
                if task.done() and not task.cancelled() and task.exception() is None:
                    if task.result() not in runners:
                        runners.append(task.result())
                else:
                    task.cancel()
        ready = time.monotonic() - began
        rss = [rss_mib(r.proc.pid) for r in runners if r.proc is not None]
        stop_began = time.monotonic()
        for runner in runners:
            runner.signal(signal.SIGTERM)
        codes = await asyncio.gather(*(r.wait(120) for r in runners))
        stopped = time.monotonic() - stop_began
        ok = [graceful(r, c) for r, c in zip(runners, codes, strict=True)]
        if verbose:
            print(f"accelerator {accel}: {vms} guests ready in {ready:.1f} s, "
                  f"all stopped {stopped:.1f} s after the TERM", flush=True)
            for index, (runner, code, good, size) in enumerate(
                    zip(runners, codes, ok, rss, strict=True)):
                print(f"vm{index}: exit {code}, {'graceful' if good else 'NOT graceful'}, "
                      f"rss {size:.1f} MiB", flush=True)
                if not good:
                    print(runner.log_tail(20), flush=True)
        return sum(ok), sum(rss)
    finally:
        for runner in runners:
            if runner.console is not None:
                await runner.console.close()
                runner.console = None
            await runner.close()
        for pid in processes_using(base):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=20)
    parser.add_argument("--boot-timeout", type=float, default=240.0)
    parser.add_argument("--quiet", action="store_true", help="only the summary line")
    args = parser.parse_args()
    good, total = asyncio.run(scale(args.vms, boot_timeout=args.boot_timeout,
                                    verbose=not args.quiet))
    print(f"scale: {args.vms} VMs, graceful {good}/{args.vms}, runner rss total "
          f"{total:.1f} MiB", flush=True)
    return 0 if good == args.vms else 1


if __name__ == "__main__":
    sys.exit(main())
