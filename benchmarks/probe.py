"""Probe benchmark: CPU seconds per pod probe, the chart's curl probe against the old one.

In one run, against one runner on the tiny test guest (TCG unless KVM really works), after
the guest's ``TG-READY``:

* old: ``vmrunner probe ready -c config.yaml`` (what the chart ran before: a Python
  interpreter that loads and validates the configuration, then asks ``GET /ready``), on the
  interpreter of an installed venv (``lifecycle.installed_python``, as in the image);
* new: ``curl -fsS --unix-socket RUNTIME/api.sock http://localhost/ready`` (the chart's exec
  probe now, deploy/helm/vmrunner/templates/_helpers.tpl).

Each probe is run ``--count`` times one after the other; its CPU time is the child's user +
system time from ``wait4`` (so only the probe process, not the runner that answers it). Every
probe must exit 0, else the benchmark fails. Also printed: the RSS of the runner and of QEMU
while the guest runs (the overhead the chart's memory request adds to the guest RAM,
docs/guide/kubernetes.md).

The last line is ``probe: cpu X ms per probe (old Y ms, ratio R)`` (R = new / old).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import msgspec

from vmrunner.testing.guest import build_guest
from vmrunner.testing.runnerproc import RunnerProcess, guest_config, short_dir
from vmrunner.vmtypes.render import kvm_usable

sys.path.insert(0, str(Path(__file__).parent))
from lifecycle import installed_python

BOOT = 120.0


def cpu_ms(argv: list[str]) -> float:
    """User + system CPU milliseconds of one run of ``argv``; it must exit 0."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        assert proc.stderr is not None
        raise RuntimeError(f"{argv} exited {proc.returncode}: {proc.stderr.read().decode()}")
    assert proc.stderr is not None
    proc.stderr.close()
    return (usage.ru_utime + usage.ru_stime) * 1000


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--ram-mib", type=int, default=256, help="the guest's maximumRam")
    parser.add_argument("--python", help="interpreter of the old probe (default: installed venv)")
    args = parser.parse_args()
    python = args.python or installed_python()
    curl = shutil.which("curl")
    if curl is None:
        raise SystemExit("curl is not installed")
    accel = "kvm" if kvm_usable() else "tcg"
    private = Path(tempfile.mkdtemp(prefix="vmrunner-bench-"))
    image = build_guest("cloud")
    shutil.copytree(image.directory, private / "guest")
    image = msgspec.structs.replace(image, directory=private / "guest")
    base = short_dir("vrp")
    config = guest_config(base, image, accel=accel, knobs=("tg.qga=0",),
                          maximumRam=f"{args.ram_mib} MiB")
    runner = RunnerProcess(config, log_level="INFO", python=python)
    try:
        await runner.start()
        await runner.wait_ready(BOOT)
        await asyncio.sleep(2.0)
        assert runner.proc is not None
        qemu = runner.pid_of("qemu")
        assert qemu is not None, runner.log_tail()
        print(f"memory ({accel}, guest RAM {args.ram_mib} MiB): runner rss "
              f"{rss_mib(runner.proc.pid):.1f} MiB, qemu rss {rss_mib(qemu):.1f} MiB",
              flush=True)
        old_argv = [python, "-m", "vmrunner", "probe", "ready", "-c", str(config)]
        new_argv = [curl, "-fsS", "--max-time", "4", "--unix-socket",
                    str(runner.runtime_dir / "api.sock"), "http://localhost/ready"]
        old = [cpu_ms(old_argv) for _ in range(args.count)]
        new = [cpu_ms(new_argv) for _ in range(args.count)]
        old_ms, new_ms = statistics.mean(old), statistics.mean(new)
        print(f"old: {' '.join(old_argv)}\n  mean {old_ms:.1f} ms, median "
              f"{statistics.median(old):.1f} ms, max {max(old):.1f} ms")
        print(f"new: {' '.join(new_argv)}\n  mean {new_ms:.1f} ms, median "
              f"{statistics.median(new):.1f} ms, max {max(new):.1f} ms")
        print(f"probe: cpu {new_ms:.1f} ms per probe (old {old_ms:.1f} ms, "
              f"ratio {new_ms / old_ms:.3f})")
        return 0
    finally:
        runner.signal()
        await runner.wait(60)
        await runner.close()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
