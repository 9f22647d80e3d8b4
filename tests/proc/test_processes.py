"""Child processes: no shell, output logging, terminate ladder, death with the runner,
and waiting for unix sockets. Uses real processes; the TERM-ignoring child is a labelled
fake (a python one-liner), because no real peer can be told to ignore SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmrunner.proc import (
    ExitStatus,
    ProcessExitedError,
    ProcessStartError,
    is_socket,
    remove_stale_socket,
    spawn,
    wait_for_socket,
)
from vmrunner.testing.runnerproc import wait_gone

PY = sys.executable


class LineWaiter(logging.Handler):
    """Lets a test await a child's logged output line instead of polling."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[str, str]] = []  # (logger name, message)
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.getMessage()))
        self._changed.set()

    @property
    def lines(self) -> list[str]:
        return [message for _, message in self.records]

    async def wait_line(self, child: str, pattern: str) -> str:
        """The first line logged for ``child`` that fully matches ``pattern``."""
        async with asyncio.timeout(10):
            while True:
                for name, message in self.records:
                    if name == f"vmrunner.proc.{child}" and re.fullmatch(pattern, message):
                        return message
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def waiter() -> Iterator[LineWaiter]:
    handler = LineWaiter()
    logger = logging.getLogger("vmrunner.proc")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


def process_state(pid: int) -> str | None:
    """The state letter from /proc/PID/stat, None if the process no longer exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


async def test_no_shell_metacharacters_are_literal(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    nasty = [f"$(touch {marker})", f"; touch {marker}", "*", "a b", "`id`"]
    child = await spawn("echo", [PY, "-c", "import sys; print(repr(sys.argv[1:]))", *nasty],
                        cwd=tmp_path)
    assert (await child.wait()).success
    assert child.output_lines("stdout") == [repr(nasty)]
    assert not marker.exists()


async def test_string_argv_is_refused() -> None:
    with pytest.raises(TypeError, match="no shell"):
        await spawn("x", "echo hi")
    with pytest.raises(ValueError, match="empty"):
        await spawn("x", [])


async def test_missing_binary_is_a_start_error(tmp_path: Path) -> None:
    with pytest.raises(ProcessStartError, match="no-such-binary"):
        await spawn("ghost", [str(tmp_path / "no-such-binary")])


async def test_output_is_logged_per_line_and_excerpts_are_bounded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="vmrunner.proc")
    script = textwrap.dedent("""
        import sys
        sys.stderr.write("error: the real cause\\n")
        for i in range(10):
            print(f"out {i}", flush=True)
            sys.stderr.write(f"usage {i}\\n")
        sys.stdout.buffer.write(b"bad \\xff byte\\nno newline at end")
        sys.exit(3)
    """)
    child = await spawn("talker", [PY, "-c", script], head_lines=1, tail_lines=2)
    status = await child.wait()
    assert status == ExitStatus(3) and str(status) == "exited with status 3"
    records = [(r.levelno, r.getMessage()) for r in caplog.records
               if r.name == "vmrunner.proc.talker"]
    assert (logging.INFO, "out 0") in records
    assert (logging.WARNING, "usage 9") in records
    assert (logging.INFO, "no newline at end") in records
    assert child.output_lines("stdout") == ["out 0", "bad \ufffd byte", "no newline at end"]
    # the first line (the cause) survives the flood that follows it
    assert child.stderr_excerpt() == (
        "error: the real cause\n[... 8 lines skipped ...]\nusage 8\nusage 9")
    assert len(child.output_lines()) == 6


async def test_child_has_its_own_process_group() -> None:
    child = await spawn("sleeper", ["sleep", "30"])
    try:
        assert os.getpgid(child.pid) == child.pid != os.getpgid(0)
    finally:
        assert (await child.kill()).signal == signal.SIGKILL


async def test_terminate_cooperative_child_gets_sigterm_only() -> None:
    child = await spawn("sleeper", ["sleep", "30"])
    t0 = time.monotonic()
    status = await child.terminate(grace=5)
    assert status.signal == signal.SIGTERM and str(status) == "was killed by SIGTERM"
    assert time.monotonic() - t0 < 2
    assert not child.send_signal(signal.SIGTERM)  # already reaped


async def test_terminate_ladder_kills_a_child_ignoring_sigterm(waiter: LineWaiter) -> None:
    # FAKE: a python one-liner that ignores SIGTERM (stands for a hung QEMU)
    script = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              "print('ready', flush=True); time.sleep(60)")
    child = await spawn("stubborn", [PY, "-c", script])
    await waiter.wait_line("stubborn", "ready")
    t0 = time.monotonic()
    status = await child.terminate(grace=0.5)
    elapsed = time.monotonic() - t0
    assert status.signal == signal.SIGKILL
    assert 0.5 <= elapsed < 3
    assert any("sent SIGKILL" in line for line in waiter.lines)


PARENT = textwrap.dedent("""
    import asyncio, sys
    from vmrunner.proc import spawn

    async def main():
        child = await spawn("grandchild", ["sleep", "300"])
        print(child.pid, flush=True)
        await asyncio.sleep(300)

    asyncio.run(main())
""")


async def test_children_die_when_the_runner_is_sigkilled(waiter: LineWaiter) -> None:
    parent = await spawn("runner", [PY, "-c", PARENT])
    try:
        grandchild = int(await waiter.wait_line("runner", r"\d+"))
        os.kill(grandchild, 0)  # it runs
        parent.send_signal(signal.SIGKILL)
        assert await wait_gone(grandchild, 5)
        assert process_state(grandchild) in (None, "Z")  # gone, or a zombie nobody reaped
    finally:
        await parent.kill()


# ---- unix sockets -------------------------------------------------------------------

def bind(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    return s


async def test_wait_for_socket_sees_a_later_bind(tmp_path: Path) -> None:
    path = tmp_path / "later.sock"
    (tmp_path / "other.sock").write_text("not the one")
    made: list[socket.socket] = []
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, lambda: made.append(bind(path)))
    t0 = time.monotonic()
    async with asyncio.timeout(5):
        await wait_for_socket(path)
    assert made and is_socket(path)
    assert 0.15 < time.monotonic() - t0 < 1
    made[0].close()


async def test_wait_for_socket_returns_at_once_if_present(tmp_path: Path) -> None:
    s = bind(tmp_path / "here.sock")
    async with asyncio.timeout(1):
        await wait_for_socket(tmp_path / "here.sock")
    s.close()


async def test_wait_for_socket_ignores_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "file.sock"
    asyncio.get_running_loop().call_later(0.05, path.write_text, "x")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await wait_for_socket(path)


async def test_wait_for_socket_fails_fast_when_the_process_exits(tmp_path: Path) -> None:
    child = await spawn("quitter", [PY, "-c", "import sys; sys.exit('cannot bind: nope')"])
    t0 = time.monotonic()
    with pytest.raises(ProcessExitedError, match="cannot bind: nope") as err:
        async with asyncio.timeout(10):
            await wait_for_socket(tmp_path / "never.sock", process=child)
    assert "exited with status 1" in str(err.value)
    assert time.monotonic() - t0 < 5


def test_remove_stale_socket(tmp_path: Path) -> None:
    s = bind(tmp_path / "stale.sock")
    s.close()  # the file stays: a stale socket
    assert is_socket(tmp_path / "stale.sock")
    assert remove_stale_socket(tmp_path / "stale.sock") is True
    assert not (tmp_path / "stale.sock").exists()
    assert remove_stale_socket(tmp_path / "stale.sock") is False
    (tmp_path / "data").write_text("precious")
    with pytest.raises(FileExistsError, match="not a socket"):
        remove_stale_socket(tmp_path / "data")
    assert (tmp_path / "data").read_text() == "precious"

