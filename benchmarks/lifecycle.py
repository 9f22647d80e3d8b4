"""Lifecycle benchmark: what the runner costs on top of launching QEMU by hand.

In one run, on the tiny test guest (TCG unless KVM really works), median of ``--rounds``:

* start overhead: ``python -m vmrunner run`` exec → ``cont`` done, minus the same for the
  bare launcher ``bare_launcher.py``, exec'd with the same interpreter (QEMU ``-S`` with the
  same argv, wait for the QMP socket, negotiate, ``cont``; standard library only). Both pay
  the interpreter's start; the difference is what vmrunner adds (configuration, template,
  components, bus). For comparison a line also gives the overhead against the same steps
  run inside this already started process (no interpreter start at all);
* memory of the runner process while the VM runs (after the guest's ``TG-READY``): RSS
  (``VmRSS``), PSS (``Pss`` of ``/proc/<pid>/smaps_rollup``: shared pages divided among the
  processes mapping them) and USS (``Private_Clean + Private_Dirty``: what ending the runner
  would give back);
* runner CPU: user + system CPU time of the runner process only (not QEMU, not swtpm: those
  are its children and, still running, are not counted in its times) from exec until one
  second after the guest's ready line, read from ``/proc/<pid>/stat`` (``utime + stime``, in
  clock ticks) at that moment; the bare launcher's, measured the same way, is printed too
  (what the interpreter, asyncio and QMP cost on the machine);
* the floor under those CPU numbers: the CPU (``wait4`` rusage) of the installed interpreter
  running only imports and then ``os._exit`` (as the runner ends: no teardown counted), in
  steps: the interpreter alone, ``import asyncio`` (what any asyncio launcher pays before its
  first line) and asyncio plus the configuration stack (PyYAML, pydantic and vmrunner's
  configuration model, which builds its validators at import);
* stop overhead: SIGTERM → runner exit, minus the guest's own power-off time (bare:
  ``system_powerdown`` → QEMU exit). Both use the ACPI button (the guest agent is off), so
  the difference is the runner's own shutdown work.

Both the runner and the bare launcher run on the interpreter of a virtual environment where
vmrunner is installed as users install it (``pip install .``: a regular, byte-compiled install
with its runtime dependencies only), made once in ``.cache/bench-venv`` and remade when
``pyproject.toml`` or the package's sources change. The development environment differs in
ways no user's does: an editable-install finder, the test extras (pytest pulls in pygments,
which Mako then imports: ~6 MiB and ~30 ms) and this sandbox's ``.pth`` hooks in the base
interpreter. ``--python`` measures another interpreter instead (e.g. ``--python
"$(command -v python3)"`` for the development environment).

The last line is ``lifecycle: start overhead <ms> ms, rss <MiB> MiB, pss <MiB> MiB, uss <MiB>
MiB, cpu <ms> ms, stop overhead <ms> ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import msgspec

from vmrunner.config.validate import load_config
from vmrunner.proc.sockets import wait_for_socket
from vmrunner.testing.console import GuestConsole
from vmrunner.testing.guest import GuestImage, build_guest
from vmrunner.testing.runnerproc import (
    RunnerProcess,
    connect_listening,
    guest_config,
    short_dir,
)
from vmrunner.vmtypes.prepare import plan_start
from vmrunner.vmtypes.render import kvm_usable
from vmrunner.vmtypes.state import VmPaths

KNOBS = ("tg.qga=0",)
BOOT = 90.0
BARE_LAUNCHER = Path(__file__).with_name("bare_launcher.py")
REPO = Path(__file__).resolve().parents[1]


def installed_python() -> str:
    """The interpreter of ``.cache/bench-venv``, with vmrunner installed from this tree (made
    or remade when the inputs changed)."""
    digest = hashlib.sha256()
    for path in sorted([REPO / "pyproject.toml", *(REPO / "vmrunner").rglob("*.py"),
                        *(REPO / "templates").rglob("*")]):
        if path.is_file():
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    venv = REPO / ".cache" / "bench-venv"
    stamp = venv / "vmrunner-inputs.sha256"
    python = venv / "bin" / "python"
    if python.exists() and stamp.exists() and stamp.read_text() == digest.hexdigest():
        return str(python)
    shutil.rmtree(venv, ignore_errors=True)
    print("installing vmrunner into .cache/bench-venv (pip install .) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    build = Path(tempfile.mkdtemp(prefix="vmrunner-bench-build-"))
    try:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        str(REPO)], check=True, env={**os.environ, "TMPDIR": str(build)})
    finally:
        shutil.rmtree(build, ignore_errors=True)
    stamp.write_text(digest.hexdigest())
    return str(python)


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


def _pss_uss_mib(pid: int) -> tuple[float, float]:
    """(PSS, USS) of ``pid`` in MiB from ``/proc/<pid>/smaps_rollup``."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        fields[name] = int(rest.split()[0])
    return fields["Pss"] / 1024, (fields["Private_Clean"] + fields["Private_Dirty"]) / 1024


def _cpu_ms(pid: int) -> float:
    """User + system CPU time of ``pid`` itself (``/proc/<pid>/stat`` utime + stime), ms."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) * 1000 / os.sysconf("SC_CLK_TCK")


IMPORT_STEPS = (
    ("interpreter", ""),
    ("asyncio", "import asyncio"),
    ("asyncio + configuration stack", "import asyncio, yaml, pydantic, vmrunner.config.validate"),
)
"""The import-only programs of the CPU floor: (label, imports)."""


def _import_cpu_ms(python: str, imports: str) -> float:
    """User + system CPU of ``python -c`` running ``imports`` from exec to the end of the
    imports (``wait4`` rusage; it then ends with ``os._exit``, as the runner does, so the
    interpreter's teardown is not counted), ms."""
    code = f"{imports}\nimport os\nos._exit(0)"
    proc = subprocess.Popen([python, "-c", code], stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{python} -c {code!r} exited with {proc.returncode}")
    return (usage.ru_utime + usage.ru_stime) * 1000


def _prepared(base: Path, image: GuestImage, accel: str) -> tuple[list[str], VmPaths]:
    """The test guest's VM prepared in ``base`` as the runner would: QEMU's argv, its paths."""
    validation = load_config(guest_config(base, image, accel=accel, knobs=KNOBS))
    assert validation.config is not None, validation.problems
    plan = plan_start(validation.config, create=True)
    return plan.render().qemu.argv, plan.inputs.paths


async def _open(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to one of QEMU's sockets, retrying every 1 ms (the baseline must not wait)."""
    return await connect_listening(path, interval=0.001, tries=5000)


async def _qmp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               command: str) -> None:
    writer.write(json.dumps({"execute": command}).encode() + b"\n")
    await writer.drain()
    while True:
        reply = json.loads(await reader.readline())
        if "return" in reply or "error" in reply:
            return


async def launcher_round(image: GuestImage, accel: str, python: str
                         ) -> tuple[float, float, float]:
    """(exec → cont done, system_powerdown → QEMU exit) for ``bare_launcher.py``, seconds,
    and its CPU time (ms) until the guest's ready line + 1 s, as for the runner."""
    base = short_dir("vl")
    try:
        argv, paths = _prepared(base, image, accel)
        argv_file = base / "argv.json"
        argv_file.write_text(json.dumps(argv))
        started = time.time()
        proc = await asyncio.create_subprocess_exec(
            python, str(BARE_LAUNCHER), str(argv_file), str(paths.monitor_socket),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).split()
            if line[:1] != [b"cont"]:
                raise RuntimeError(f"bare launcher failed: {line!r}")
            start = float(line[1]) - started
            con_r, con_w = await _open(paths.serial_socket)
            console = GuestConsole(con_r, con_w)
            await console.wait_ready(BOOT)
            await asyncio.sleep(1.0)
            cpu = _cpu_ms(proc.pid)
            proc.stdin.write(b"powerdown\n")
            await proc.stdin.drain()
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).split()
            if line[:1] != [b"exited"]:
                raise RuntimeError(f"bare launcher failed: {line!r}")
            await console.close()
            await asyncio.wait_for(proc.wait(), 10)
            return start, float(line[1]), cpu
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def inprocess_round(image: GuestImage, accel: str) -> tuple[float, float]:
    """(spawn → cont done, system_powerdown → QEMU exit) with the launcher's steps run in this
    process (no interpreter start), seconds."""
    base = short_dir("vb")
    try:
        argv, paths = _prepared(base, image, accel)
        started = time.time()
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        try:
            await asyncio.wait_for(wait_for_socket(paths.monitor_socket), 30)
            reader, writer = await _open(paths.monitor_socket)
            await reader.readline()  # greeting
            await _qmp(reader, writer, "qmp_capabilities")
            con_r, con_w = await _open(paths.serial_socket)
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


class RunnerRound(NamedTuple):
    """One runner round: seconds, MiB, CPU ms."""

    start: float
    rss: float
    pss: float
    uss: float
    cpu: float
    stop: float


async def runner_round(image: GuestImage, accel: str, python: str) -> RunnerRound:
    """Exec → cont done, memory while running, CPU until ready + 1 s, SIGTERM → exit."""
    base = short_dir("vr")
    runner = RunnerProcess(guest_config(base, image, accel=accel, knobs=KNOBS),
                           log_level="INFO", python=python)
    try:
        started = time.time()
        await runner.start()
        await runner.wait_ready(BOOT)
        assert runner.proc is not None
        rss = _rss_mib(runner.proc.pid)
        pss, uss = _pss_uss_mib(runner.proc.pid)
        await asyncio.sleep(1.0)
        cpu = _cpu_ms(runner.proc.pid)
        t0 = time.monotonic()
        runner.signal(signal.SIGTERM)
        code = await runner.wait(60)
        stop = time.monotonic() - t0
        if code != 0:
            raise RuntimeError(f"runner exited with {code}:\n{runner.log_tail()}")
        start = _log_time(runner.log_text(), "state starting → booting") - started
        return RunnerRound(start, rss, pss, uss, cpu, stop)
    finally:
        await runner.close()
        shutil.rmtree(base, ignore_errors=True)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--python", help="interpreter to measure (default: an installed venv)")
    args = parser.parse_args()
    python = args.python or installed_python()
    accel = "kvm" if kvm_usable() else "tcg"
    # A private copy: other programs sharing the cache may replace its images meanwhile.
    private = Path(tempfile.mkdtemp(prefix="vmrunner-bench-"))
    image = build_guest("cloud")
    shutil.copytree(image.directory, private / "guest")
    image = msgspec.structs.replace(image, directory=private / "guest")
    try:
        bare_start, bare_stop, bare_cpu, inproc_start = [], [], [], []
        import_cpu: dict[str, list[float]] = {label: [] for label, _ in IMPORT_STEPS}
        rounds: list[RunnerRound] = []
        for index in range(args.rounds):
            b_start, b_stop, b_cpu = await launcher_round(image, accel, python)
            i_start, _ = await inprocess_round(image, accel)
            r = await runner_round(image, accel, python)
            for label, imports in IMPORT_STEPS:
                import_cpu[label].append(_import_cpu_ms(python, imports))
            bare_start.append(b_start)
            bare_stop.append(b_stop)
            bare_cpu.append(b_cpu)
            inproc_start.append(i_start)
            rounds.append(r)
            print(f"round {index + 1}: start bare launcher {b_start * 1000:.0f} ms / in-process "
                  f"{i_start * 1000:.0f} ms / runner {r.start * 1000:.0f} ms; stop bare "
                  f"{b_stop * 1000:.0f} ms / runner {r.stop * 1000:.0f} ms; rss {r.rss:.1f} MiB, "
                  f"pss {r.pss:.1f} MiB, uss {r.uss:.1f} MiB; cpu bare {b_cpu:.0f} ms / runner "
                  f"{r.cpu:.0f} ms", flush=True)

        def median(field: str) -> float:
            return float(statistics.median(getattr(r, field) for r in rounds))

        start_overhead = (median("start") - statistics.median(bare_start)) * 1000
        stop_overhead = (median("stop") - statistics.median(bare_stop)) * 1000
        inproc_overhead = (median("start") - statistics.median(inproc_start)) * 1000
        print(f"accelerator {accel}, {args.rounds} rounds, medians; interpreter {python}")
        print(f"start overhead against the launcher's steps inside this process (no interpreter "
              f"start): {inproc_overhead:.0f} ms")
        print(f"cpu of the bare launcher until ready + 1 s (interpreter, asyncio, QMP): "
              f"{statistics.median(bare_cpu):.0f} ms")
        print("cpu of imports alone, exec to the end of the imports: " + ", ".join(
            f"{label} {statistics.median(values):.0f} ms" for label, values in import_cpu.items()))
        print(f"lifecycle: start overhead {start_overhead:.0f} ms, rss {median('rss'):.1f} MiB, "
              f"pss {median('pss'):.1f} MiB, uss {median('uss'):.1f} MiB, cpu {median('cpu'):.0f} "
              f"ms, stop overhead {stop_overhead:.0f} ms")
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
