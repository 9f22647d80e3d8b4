"""Lifecycle benchmark: what the runner costs on top of launching QEMU by hand.

In one run, on the tiny test guest (TCG unless KVM really works), median of ``--rounds``:

* start overhead: ``python -m vmrunner run`` exec → ``cont`` done, minus the same for a bare
  launcher in this process (QEMU ``-S`` with the same argv, wait for the QMP socket,
  negotiate, ``cont``);
* RSS of the runner process while the VM runs (after the guest's ``TG-READY``);
* stop overhead: SIGTERM → runner exit, minus the guest's own power-off time (bare:
  ``system_powerdown`` → QEMU exit). Both use the ACPI button (the guest agent is off), so
  the difference is the runner's own shutdown work.

The last line is ``lifecycle: start overhead <ms> ms, rss <MiB> MiB, stop overhead <ms> ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

from vmrunner.config.validate import load_config
from vmrunner.proc.sockets import wait_for_socket
from vmrunner.testing.console import GuestConsole
from vmrunner.testing.guest import GuestImage, build_guest
from vmrunner.testing.runnerproc import RunnerProcess, guest_config, short_dir
from vmrunner.vmtypes.prepare import plan_start
from vmrunner.vmtypes.render import kvm_usable

KNOBS = ("tg.qga=0",)
BOOT = 90.0


def _log_time(log: str, needle: str) -> float:
    """Epoch time of the first log line containing ``needle`` (asctime, local, ms)."""
    for line in log.splitlines():
        if needle in line:
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            return stamp.timestamp()
    raise RuntimeError(f"no log line with {needle!r}")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def _qmp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               command: str) -> None:
    writer.write(json.dumps({"execute": command}).encode() + b"\n")
    await writer.drain()
    while True:
        reply = json.loads(await reader.readline())
        if "return" in reply or "error" in reply:
            return


async def bare_round(image: GuestImage, accel: str) -> tuple[float, float]:
    """(exec → cont done, system_powerdown → QEMU exit) for a bare launcher, seconds."""
    base = short_dir("vb")
    try:
        validation = load_config(guest_config(base, image, accel=accel, knobs=KNOBS))
        assert validation.config is not None, validation.problems
        plan = plan_start(validation.config, create=True)
        argv = plan.render().qemu.argv
        paths = plan.inputs.paths
        started = time.time()
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        try:
            await asyncio.wait_for(wait_for_socket(paths.monitor_socket), 30)
            reader, writer = await asyncio.open_unix_connection(str(paths.monitor_socket))
            await reader.readline()  # greeting
            await _qmp(reader, writer, "qmp_capabilities")
            con_r, con_w = await asyncio.open_unix_connection(str(paths.console_socket))
            await _qmp(reader, writer, "cont")
            start = time.time() - started
            console = GuestConsole(con_r, con_w)
            await console.wait_ready(BOOT)
            t0 = time.monotonic()
            await _qmp(reader, writer, "system_powerdown")
            await asyncio.wait_for(proc.wait(), 60)
            stop = time.monotonic() - t0
            await console.close()
            writer.close()
            return start, stop
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def runner_round(image: GuestImage, accel: str) -> tuple[float, float, float]:
    """(exec → cont done, RSS MiB while running, SIGTERM → runner exit) for vmrunner."""
    base = short_dir("vr")
    runner = RunnerProcess(guest_config(base, image, accel=accel, knobs=KNOBS),
                           log_level="INFO")
    try:
        started = time.time()
        await runner.start()
        await runner.wait_ready(BOOT)
        assert runner.proc is not None
        rss = _rss_mib(runner.proc.pid)
        t0 = time.monotonic()
        runner.signal(signal.SIGTERM)
        code = await runner.wait(60)
        stop = time.monotonic() - t0
        if code != 0:
            raise RuntimeError(f"runner exited with {code}:\n{runner.log_tail()}")
        start = _log_time(runner.log_text(), "state starting → booting") - started
        return start, rss, stop
    finally:
        await runner.close()
        shutil.rmtree(base, ignore_errors=True)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    accel = "kvm" if kvm_usable() else "tcg"
    image = build_guest("cloud")
    bare_start, bare_stop, run_start, run_rss, run_stop = [], [], [], [], []
    for index in range(args.rounds):
        b_start, b_stop = await bare_round(image, accel)
        r_start, rss, r_stop = await runner_round(image, accel)
        bare_start.append(b_start)
        bare_stop.append(b_stop)
        run_start.append(r_start)
        run_rss.append(rss)
        run_stop.append(r_stop)
        print(f"round {index + 1}: start bare {b_start * 1000:.0f} ms / runner "
              f"{r_start * 1000:.0f} ms; stop bare {b_stop * 1000:.0f} ms / runner "
              f"{r_stop * 1000:.0f} ms; rss {rss:.1f} MiB", flush=True)
    start_overhead = (statistics.median(run_start) - statistics.median(bare_start)) * 1000
    stop_overhead = (statistics.median(run_stop) - statistics.median(bare_stop)) * 1000
    print(f"accelerator {accel}, {args.rounds} rounds, medians; python {sys.version.split()[0]}"
          f", pid {os.getpid()}")
    print(f"lifecycle: start overhead {start_overhead:.0f} ms, rss "
          f"{statistics.median(run_rss):.1f} MiB, stop overhead {stop_overhead:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
