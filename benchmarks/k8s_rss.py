"""RSS of ``vmrunner run`` on the test guest, stand-alone vs. writing its VirtualMachine status
to the real API server (``--kubeconfig``): the Kubernetes mode's memory cost (budget: 8 MiB).

    python benchmarks/k8s_rss.py [ROUNDS]      # needs scripts/k8s-apiserver.sh's binaries

Each round runs both, alternating; RSS (``VmRSS``) is read 8 s after the guest's ready line.
The last line is ``k8s-rss: stand-alone X MiB, kubernetes Y MiB, +Z MiB`` (medians).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

from vmrunner.testing.apiserver import KubeApiServer, find_binaries
from vmrunner.testing.guest import build_guest
from vmrunner.testing.guest.builder import GuestImage
from vmrunner.testing.runnerproc import RunnerProcess, guest_config, scratch_dir

SETTLE = 8.0


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def _one(image: GuestImage, api: KubeApiServer, kube: bool) -> float:
    with scratch_dir("rss") as base:
        config = guest_config(base, image, accel="tcg", name="tg")
        args = (("--kubeconfig", str(api.kubeconfig), "--kube-namespace", "default")
                if kube else ())
        runner = RunnerProcess(config, log_level="INFO", args=args)
        try:
            await runner.start()
            await runner.wait_ready(90)
            await asyncio.sleep(SETTLE)
            assert runner.proc is not None
            rss = _rss_mib(runner.proc.pid)
            runner.signal()
            await runner.wait(60)
            if kube and "Kubernetes: writing the status" not in runner.log_text():
                raise RuntimeError(f"no status written:\n{runner.log_tail()}")
            return rss
        finally:
            await runner.close()


async def _main(api: KubeApiServer, rounds: int) -> None:
    image = build_guest("cloud")
    api.create_vm("tg")
    results: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for kube in (False, True):
            results[kube].append(await _one(image, api, kube))
            print(f"{'kubernetes ' if kube else 'stand-alone'} {results[kube][-1]:.1f} MiB",
                  flush=True)
    alone, kube = statistics.median(results[False]), statistics.median(results[True])
    print(f"k8s-rss: stand-alone {alone:.1f} MiB, kubernetes {kube:.1f} MiB, "
          f"+{kube - alone:.1f} MiB")


def main() -> None:
    binaries = find_binaries()
    if binaries is None:
        sys.exit("no API server binaries: run bash scripts/k8s-apiserver.sh")
    with KubeApiServer(binaries, Path(tempfile.mkdtemp(prefix="k8s-rss-"))) as api:
        asyncio.run(_main(api, int(sys.argv[1]) if len(sys.argv) > 1 else 3))


if __name__ == "__main__":
    main()
