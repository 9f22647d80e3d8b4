"""Run ``python -m vmrunner run`` on the test guest as a subprocess (tests, benchmark).

:func:`guest_config` writes a configuration for the tiny test guest (direct kernel boot,
serial console, no network); :class:`RunnerProcess` starts the runner, attaches to the
guest's serial console as soon as the runner serves ``console.sock`` (before QEMU runs the
guest, so nothing is missed; the runner keeps the output anyway), and offers the guest's
command channel (:class:`~vmrunner.testing.console.GuestConsole`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from vmrunner.proc.sockets import wait_for_socket
from vmrunner.testing.console import GuestConsole
from vmrunner.testing.guest import GuestImage


def short_dir(prefix: str = "vr") -> Path:
    """A fresh, short directory under /tmp (unix socket paths must stay < 108 bytes)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@contextlib.contextmanager
def scratch_dir(prefix: str = "vr", *, watched: str | None = "run") -> Iterator[Path]:
    """A short directory under /tmp (AF_UNIX path limit) for a test's VM. Afterwards any
    process still using it (or its ``watched`` subdirectory) is killed, the directory is
    removed, and an ``AssertionError`` names the leftovers: a test must not leave orphans."""
    path = short_dir(prefix)
    yield path
    leftovers = processes_using(path / watched if watched else path)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(path, ignore_errors=True)
    assert not leftovers, f"processes left behind: {leftovers}"


def guest_config(
    base: Path, image: GuestImage, *, accel: str = "tcg", knobs: tuple[str, ...] = (),
    disk: Path | None = None, powerdown_timeout: int = 30, name: str = "tg",
    runner: dict[str, Any] | None = None, **vm: Any,
) -> Path:
    """Write ``base/config.yaml`` for the test guest and return its path.

    ``vm`` entries (camelCase) override the VM defaults; ``runner`` adds ``/Runner`` keys.
    """
    vm_values: dict[str, Any] = {
        "name": name,
        "firmware": "bios",
        "accelerator": accel,
        "maximumRam": "256 MiB",
        "maximumCpus": 1,
        "powerdownTimeout": powerdown_timeout,
        "audio": False,
        "network": [],
        "kernel": {"image": str(image.kernel), "initrd": str(image.initrd),
                   "cmdline": image.cmdline(*knobs)},
    }
    if disk is not None:
        vm_values["drives"] = [{"file": str(disk)}]
    vm_values.update(vm)
    values: dict[str, Any] = {"dataDir": str(base / "data"), "runtimeDir": str(base / "run"),
                              "vm": vm_values, **(runner or {})}
    path = base / "config.yaml"
    path.write_text(yaml.safe_dump({"/Runner": values}, sort_keys=False))
    return path


class RunnerProcess:
    """``python -m vmrunner run -c CONFIG`` with its log in ``base/runner.log``."""

    def __init__(self, config: Path, *, log_level: str = "DEBUG",
                 args: tuple[str, ...] = (), python: str = sys.executable,
                 cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.env = env
        """The runner's environment (default: this process's)."""
        self.python = python
        """The interpreter that runs ``-m vmrunner`` (default: this one)."""
        self.cwd = cwd
        """The runner's working directory (default: this process's; ``-m`` imports from it)."""
        self.base = config.parent
        self.log = self.base / "runner.log"
        self.log_level = log_level
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None
        self.console: GuestConsole | None = None

    @property
    def runtime_dir(self) -> Path:
        return self.base / "run"

    async def start(self, *, console: bool = True, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Start the runner; with ``console``, attach to the serial console (the runner's
        ``console.sock``: this session holds it until :meth:`close`)."""
        argv = [self.python, "-m", "vmrunner", "--log-level", self.log_level, "run",
                "-c", str(self.config), *self.args]
        with open(self.log, "ab") as log:  # noqa: ASYNC230 - tiny, local
            self.proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.cwd,
                env=self.env)
        if console:
            self.runtime_dir.mkdir(parents=True, exist_ok=True)
            socket = self.runtime_dir / "console.sock"
            waiting = asyncio.ensure_future(wait_for_socket(socket))
            ended = asyncio.ensure_future(self.proc.wait())
            try:
                await asyncio.wait({waiting, ended}, timeout=timeout,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                ended.cancel()
                waiting.cancel()
            if not waiting.done() or waiting.cancelled():
                raise RuntimeError(f"no console socket {socket}; runner log:\n{self.log_tail()}")
            reader, writer = await connect_listening(socket)
            self.console = GuestConsole(reader, writer, self.base / "console.log")

    async def wait_ready(self, timeout: float = 60.0) -> str:  # noqa: ASYNC109
        """Wait for the guest's ``TG-READY`` line."""
        assert self.console is not None
        return await self.console.wait_ready(timeout)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, timeout: float) -> int | None:  # noqa: ASYNC109
        """The runner's exit code, or None if it still runs after ``timeout``."""
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            return None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def pid_of(self, name: str) -> int | None:
        """The pid of child ``name`` (``qemu``, ``swtpm``) as logged by the runner."""
        for line in self.log_text().splitlines():
            marker = f"started {name} (pid "
            if marker in line:
                return int(line.split(marker, 1)[1].split(")", 1)[0])
        return None

    async def close(self) -> None:
        """Kill whatever still runs (test clean-up)."""
        if self.console is not None:
            await self.console.close()
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


async def term_during_start(runners: list[RunnerProcess], config: Path,
                            delay: float) -> tuple[RunnerProcess, int | None]:
    """Start a runner for ``config`` (recorded in ``runners``), SIGTERM it after ``delay`` s
    and wait for its end; (runner, exit code). If the signal ended the process before
    ``vmrunner run`` had installed its handlers, it must not have started anything (checked
    here)."""
    runner = RunnerProcess(config)
    runners.append(runner)
    await runner.start(console=False)
    await asyncio.sleep(delay)
    runner.signal(signal.SIGTERM)
    code = await runner.wait(20)
    if code == -signal.SIGTERM:
        assert "started " not in runner.log_text(), runner.log_tail()
    return runner, code


async def run_to_exit(config: Path, timeout: float = 30.0  # noqa: ASYNC109
                      ) -> tuple[int | None, str]:
    """Run ``vmrunner run -c config`` (no console) until it exits by itself within
    ``timeout`` s: (exit code or None, its log)."""
    runner = RunnerProcess(config)
    await runner.start(console=False)
    try:
        return await runner.wait(timeout), runner.log_text()
    finally:
        await runner.close()


async def boot_runner(runners: list[RunnerProcess], config: Path,
                      timeout: float = 60.0,  # noqa: ASYNC109
                      env: dict[str, str] | None = None) -> RunnerProcess:
    """Start a runner for ``config`` (in ``env``, default this process's), record it in
    ``runners`` (closed by the test's fixture) and wait for the guest's ready line."""
    runner = RunnerProcess(config, env=env)
    runners.append(runner)
    await runner.start()
    await runner.wait_ready(timeout)
    return runner


async def connect_listening(socket: Path, *, interval: float = 0.01, tries: int = 200,
                            ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to a listening socket (the runner's ``console.sock``, or QEMU's); the file
    appears a moment before the socket listens, so a refused connection is retried every
    ``interval`` s, ``tries`` times (the default 2 s was needed with 5 runners at once)."""
    for _ in range(tries):
        try:
            return await asyncio.open_unix_connection(str(socket))
        except ConnectionRefusedError:
            await asyncio.sleep(interval)
    return await asyncio.open_unix_connection(str(socket))


def process_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


async def wait_gone(pid: int, timeout: float) -> bool:  # noqa: ASYNC109
    """Wait (pidfd, no polling) until process ``pid`` has exited; False on timeout."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not gone.done():
            gone.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await asyncio.wait_for(gone, timeout)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def processes_using(path: Path) -> list[int]:
    """Pids whose command line mentions ``path`` (e.g. leftover QEMU/swtpm of a test)."""
    found = []
    needle = str(path).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in Path(f"/proc/{entry}/cmdline").read_bytes() and process_alive(
                    int(entry)):
                found.append(int(entry))
    return found
