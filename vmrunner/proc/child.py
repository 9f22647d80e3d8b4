"""Spawn and supervise one child process (QEMU, swtpm...).

* The argv is executed directly, never through a shell: a string argv is refused.
* stdout and stderr are read line by line and logged on ``vmrunner.proc.<name>``; the last
  lines are kept for error messages (:meth:`ChildProcess.output_tail`).
* The child gets its own process group (``process_group=0``), so a terminal's Ctrl-C reaches
  only the runner, which then shuts the VM down gracefully instead of QEMU quitting at once.
* The child must not outlive the runner, even when the runner is SIGKILLed: it gets
  ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` in a ``preexec_fn``. Python 3.11 has no option for
  this. The function is resolved before the fork and only calls ``prctl`` and ``getppid``
  through ctypes: no imports, no logging, no Python locks but the GIL, which CPython
  re-initialises in the child. That keeps it safe even with the waiter threads of asyncio's
  default child watcher. It then checks that the parent has not already died between fork
  and prctl (race-free, unlike an exec wrapper such as ``setpriv --pdeathsig``).
  PDEATHSIG fires when the *thread* that forked exits: spawn from the event loop's thread
  and keep that thread alive as long as the children should live (the asyncio main thread).
* The child runs with umask 077, so the sockets and files it creates (QEMU's monitor,
  console and agent sockets, swtpm's state) are 0600 whatever the runner's umask.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import msgspec

from vmrunner.proc.errors import ProcessStartError

_PR_SET_PDEATHSIG = 1
_DRAIN_TIMEOUT = 1.0
_MAX_LINE = 64 * 1024

Stream = Literal["stdout", "stderr"]


class ExitStatus(msgspec.Struct, frozen=True):
    """How a child ended: ``returncode`` as asyncio reports it (negative = killed by signal)."""

    returncode: int

    @property
    def signal(self) -> int | None:
        """The signal number that killed the child, or ``None`` if it exited."""
        return -self.returncode if self.returncode < 0 else None

    @property
    def success(self) -> bool:
        """True for exit status 0."""
        return self.returncode == 0

    def __str__(self) -> str:
        sig = self.signal
        if sig is None:
            return f"exited with status {self.returncode}"
        try:
            sig_name = signal.Signals(sig).name
        except ValueError:
            sig_name = f"signal {sig}"
        return f"was killed by {sig_name}"


def _pdeathsig_preexec() -> Callable[[], None]:
    """Build the ``preexec_fn`` (see the module docstring for why this is safe)."""
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                      ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()
    sigkill = int(signal.SIGKILL)

    def setup() -> None:
        if prctl(_PR_SET_PDEATHSIG, sigkill, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the runner died before prctl took effect
            os._exit(1)

    return setup


def _check_argv(argv: Sequence[str]) -> list[str]:
    if isinstance(argv, str | bytes):
        raise TypeError("argv must be a list of arguments, not a string (no shell is used)")
    args = list(argv)
    if not args:
        raise ValueError("argv is empty")
    for arg in args:
        if not isinstance(arg, str):
            raise TypeError(f"argv items must be str, got {type(arg).__name__}: {arg!r}")
    return args


class _Excerpt:
    """The first ``head`` and the last ``tail`` lines of a stream, with sequence numbers."""

    def __init__(self, head: int, tail: int) -> None:
        self._head_max = head
        self._head: list[tuple[int, str]] = []
        self._tail: deque[tuple[int, str]] = deque(maxlen=tail)
        self._skipped = 0

    def add(self, seq: int, line: str) -> None:
        if len(self._head) < self._head_max:
            self._head.append((seq, line))
            return
        if len(self._tail) == self._tail.maxlen:
            self._skipped += 1
        self._tail.append((seq, line))

    def items(self) -> list[tuple[int, str]]:
        return [*self._head, *self._tail]

    def text(self) -> str:
        lines = [line for _, line in self._head]
        if self._skipped:
            lines.append(f"[... {self._skipped} lines skipped ...]")
        lines += [line for _, line in self._tail]
        return "\n".join(lines)


class ChildProcess:
    """A running (or ended) child; create it with :func:`spawn`."""

    def __init__(
        self, name: str, argv: list[str], proc: asyncio.subprocess.Process,
        logger: logging.Logger, head_lines: int, tail_lines: int,
        levels: Mapping[Stream, int],
    ) -> None:
        self.name = name
        self.argv = argv
        self._proc = proc
        self.logger = logger
        # per stream, so a flood on stdout keeps stderr's error, and with the first lines
        # too: "unknown option" comes before a long usage text
        self._kept: dict[Stream, _Excerpt] = {
            "stdout": _Excerpt(head_lines, tail_lines),
            "stderr": _Excerpt(head_lines, tail_lines)}
        self._seq = 0
        self._pumps: list[asyncio.Task[None]] = []
        assert proc.stdout is not None and proc.stderr is not None
        streams: tuple[tuple[Stream, asyncio.StreamReader], ...] = (
            ("stdout", proc.stdout), ("stderr", proc.stderr))
        for stream, reader in streams:
            self._pumps.append(asyncio.create_task(
                self._pump(stream, reader, levels[stream]), name=f"{name}-{stream}"))

    @property
    def pid(self) -> int:
        """The child's process id (also its process group id)."""
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        """The asyncio return code once the child has been reaped, else ``None``."""
        return self._proc.returncode

    @property
    def running(self) -> bool:
        """True until the child has been reaped."""
        return self._proc.returncode is None

    async def _pump(self, stream: Stream, reader: asyncio.StreamReader, level: int) -> None:
        while True:
            try:
                raw = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as e:
                raw = e.partial
                if not raw:
                    return
            except asyncio.LimitOverrunError as e:
                raw = await reader.read(max(e.consumed, 1))
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            self._seq += 1
            self._kept[stream].add(self._seq, line)
            self.logger.log(level, "%s", line)

    def output_lines(self, stream: Stream | None = None) -> list[str]:
        """The kept lines (first and last) of ``stream``, or of both in arrival order."""
        streams: tuple[Stream, ...] = (stream,) if stream else ("stdout", "stderr")
        kept = sorted(item for s in streams for item in self._kept[s].items())
        return [line for _, line in kept]

    def stderr_excerpt(self) -> str:
        """stderr's first and last lines, joined, for error messages."""
        return self._kept["stderr"].text()

    async def wait(self) -> ExitStatus:
        """Wait until the child has exited and its output has been read; never raises."""
        returncode = await self._proc.wait()
        _, pending = await asyncio.wait(self._pumps, timeout=_DRAIN_TIMEOUT)
        for task in pending:  # a grandchild may hold the pipe open
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        return ExitStatus(returncode)

    async def wait_within(self, seconds: float) -> ExitStatus | None:
        """Like :meth:`wait`, but return ``None`` if still running after ``seconds``."""
        try:
            # cancelling Process.wait() is safe: asyncio skips cancelled exit waiters
            await asyncio.wait_for(self._proc.wait(), seconds)
        except TimeoutError:
            return None
        return await self.wait()

    def send_signal(self, sig: int) -> bool:
        """Send ``sig`` to the child; False if it has already been reaped."""
        if not self.running:
            return False
        try:
            self._proc.send_signal(sig)
        except ProcessLookupError:
            return False
        return True

    async def terminate(self, grace: float = 5.0, kill_timeout: float = 5.0) -> ExitStatus:
        """The ladder: SIGTERM, wait ``grace`` s, SIGKILL, reap. Returns the exit status."""
        if self.send_signal(signal.SIGTERM):
            self.logger.info("sent SIGTERM to %s (pid %d), grace %.1f s",
                             self.name, self.pid, grace)
        status = await self.wait_within(grace)
        if status is None:
            if self.send_signal(signal.SIGKILL):
                self.logger.warning("%s (pid %d) still running after %.1f s: sent SIGKILL",
                                    self.name, self.pid, grace)
            status = await self.wait_within(kill_timeout)
            if status is None:  # pragma: no cover - only a process in D state
                raise TimeoutError(f"{self.name} (pid {self.pid}) survived SIGKILL")
        self.logger.info("%s %s", self.name, status)
        return status

    async def kill(self) -> ExitStatus:
        """SIGKILL and reap."""
        self.send_signal(signal.SIGKILL)
        return await self.wait()


async def spawn(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    head_lines: int = 10,
    tail_lines: int = 40,
    stdout_level: int = logging.INFO,
    stderr_level: int = logging.WARNING,
    logger: logging.Logger | None = None,
) -> ChildProcess:
    """Execute ``argv`` (no shell) as child ``name``.

    Output goes to ``logger`` (default ``vmrunner.proc.<name>``). stdin is ``/dev/null``.
    The child is in its own process group and is SIGKILLed if the runner dies.

    :raise ProcessStartError: when the executable cannot be run.
    :raise TypeError: when ``argv`` is a string (shell syntax is never interpreted).
    """
    args = _check_argv(argv)
    log = logger or logging.getLogger(f"vmrunner.proc.{name}")
    try:
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            process_group=0,
            umask=0o077,
            preexec_fn=_pdeathsig_preexec(),  # see the module docstring
            limit=_MAX_LINE,
        )
    except OSError as e:
        raise ProcessStartError(name, args, e.strerror or str(e)) from e
    log.info("started %s (pid %d): %s", name, proc.pid, args)
    return ChildProcess(name, args, proc, log, head_lines, tail_lines,
                        {"stdout": stdout_level, "stderr": stderr_level})

