"""Client of the test guest's serial console.

The guest prints ``TG-READY ...`` once it is set up and then serves commands:
a line ``@ID command`` is answered by ``TG-BEGIN ID``, the output and
``TG-END ID rc=N``.  Asynchronous ``TG-EVENT ...`` lines and kernel messages may
appear at any time.  Every received line is kept (``lines``), so a caller can take
a :meth:`GuestConsole.mark` before acting and wait for what comes after it.
Waits take a ``timeout`` argument on purpose: their errors carry the console's tail.

On the runner's ``console.sock`` the first line is the runner's notice
(:mod:`vmrunner.protocols.console`): it is kept as :attr:`GuestConsole.notice`, not in
``lines``; a refusal (another session is attached) ends the console with its message.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import IO

import msgspec

from vmrunner.protocols.console import MAX_NOTICE, Notice, parse_notice

READY = re.compile(r"^TG-READY (.*)$")
_KERNEL_LINE = re.compile(r"^\[\s*\d+\.\d+\]")


class ConsoleTimeout(TimeoutError):
    """An expected console line did not arrive in time."""


class ConsoleClosed(EOFError):
    """The console connection ended (QEMU exited) before the expected line came."""


class CommandResult(msgspec.Struct, frozen=True):
    """Exit code and output lines of a guest command."""

    rc: int
    output: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.output)


class GuestConsole:
    """Line-oriented client of a serial console stream (owns its reader task)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 log: Path | None = None) -> None:
        self.lines: list[str] = []
        self.closed = False
        self.notice: Notice | None = None
        """The runner's first line, when the stream comes from the runner's socket."""
        self._first = True
        self._reader, self._writer = reader, writer
        self._changed = asyncio.Condition()
        self._next_id = 0
        self._cmd_lock = asyncio.Lock()
        self._log: IO[str] | None = open(log, "a", encoding="utf-8") if log else None  # noqa: SIM115
        self._task = asyncio.create_task(self._read_loop(), name="guest-console-reader")

    async def _read_loop(self) -> None:
        buf = b""
        try:
            while data := await self._reader.read(65536):
                buf += data
                if self._first and (b"\n" in buf or len(buf) >= MAX_NOTICE):
                    self._first = False
                    line, _, rest = buf.partition(b"\n")
                    self.notice = parse_notice(line + b"\n")
                    if self.notice is not None:
                        buf = rest
                        if self.notice.busy is not None:
                            break
                *complete, buf = buf.split(b"\n")
                if not complete:
                    continue
                texts = [raw.decode(errors="replace").rstrip("\r") for raw in complete]
                if self._log:
                    self._log.write("".join(t + "\n" for t in texts))
                    self._log.flush()
                async with self._changed:
                    self.lines.extend(texts)
                    self._changed.notify_all()
        except ConnectionError:
            pass
        finally:
            async with self._changed:
                self.closed = True
                self._changed.notify_all()

    def mark(self) -> int:
        """Position after the lines received so far (pass it as ``since``)."""
        return len(self.lines)

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.lines[-n:])

    async def wait_for(self, pattern: str | re.Pattern[str], *, since: int = 0,
                       timeout: float = 30.0, count: int = 1) -> re.Match[str]:  # noqa: ASYNC109
        """The ``count``-th line at or after ``since`` matching ``pattern`` (``re.search``).

        Raises :class:`ConsoleTimeout` after ``timeout`` seconds and
        :class:`ConsoleClosed` when the console ends first.
        """
        rx = re.compile(pattern)
        pos, seen = since, 0

        def scan() -> re.Match[str] | None:
            nonlocal pos, seen
            while pos < len(self.lines):
                m = rx.search(self.lines[pos])
                pos += 1
                if m:
                    seen += 1
                    if seen == count:
                        return m
            return None

        async def wait() -> re.Match[str]:
            async with self._changed:
                while True:
                    m = scan()
                    if m:
                        return m
                    if self.closed:
                        busy = self.notice.busy if self.notice is not None else None
                        raise ConsoleClosed(f"console closed while waiting for {rx.pattern!r}"
                                            + (f" ({busy})" if busy else "")
                                            + f"; last lines:\n{self.tail()}")
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise ConsoleTimeout(f"no line matching {rx.pattern!r} within {timeout:g} s; "
                                 f"last lines:\n{self.tail()}") from None

    async def wait_ready(self, timeout: float = 60.0) -> str:  # noqa: ASYNC109
        """Wait for the guest's readiness line; return its details."""
        return (await self.wait_for(READY, timeout=timeout)).group(1)

    async def send_line(self, text: str) -> None:
        self._writer.write(text.encode() + b"\n")
        await self._writer.drain()

    async def run(self, command: str, timeout: float = 30.0) -> CommandResult:  # noqa: ASYNC109
        """Run a shell command in the guest; kernel and ``TG-EVENT`` lines are left out."""
        async with self._cmd_lock:
            self._next_id += 1
            cid = str(self._next_id)
            since = self.mark()
            await self.send_line(f"@{cid} {command}")
            end = await self.wait_for(rf"^TG-END {cid} rc=(\d+)$", since=since, timeout=timeout)
        output: list[str] = []
        inside = False
        for text in self.lines[since:]:
            if text == f"TG-BEGIN {cid}":
                inside = True
            elif text.startswith(f"TG-END {cid} "):
                break
            elif inside and not text.startswith("TG-EVENT") and not _KERNEL_LINE.match(text):
                output.append(text)
        return CommandResult(int(end.group(1)), output)

    async def check(self, command: str, timeout: float = 30.0) -> list[str]:  # noqa: ASYNC109
        """Like :meth:`run` but raise ``AssertionError`` unless the command succeeds."""
        result = await self.run(command, timeout)
        if result.rc != 0:
            raise AssertionError(f"guest command {command!r} failed (rc={result.rc}):\n"
                                 f"{result.text}")
        return result.output

    async def close(self) -> None:
        self._writer.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
        if self._log:
            self._log.close()
            self._log = None
