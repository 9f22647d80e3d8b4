"""The serial console the runner keeps, with the real test guest under TCG and a real
``python -m vmrunner run``: nobody attached during the boot, yet the kernel's first lines and
``TG-READY`` are in ``dataDir/console.log``, the ring buffer (``vmrunner console --tail``)
and, with ``forwardToLog``, the runner's log; ``vmrunner console`` attaching afterwards gets
the replay, runs a command, keeps the console to itself; the log rotates at a tiny size."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
from pathlib import Path

import pytest
import yaml

from vmrunner.protocols.console import parse_notice
from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.console import ConsoleClosed, GuestConsole
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.logwait import wait_log
from vmrunner.testing.runnerproc import RunnerProcess, guest_config, scratch_dir

pytestmark = pytest.mark.guest

LOG_SIZE = 4096
LOG_FILES = 2


async def vmrunner(*args: str, timeout: float = 60) -> tuple[int, bytes, str]:  # noqa: ASYNC109
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vmrunner", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out, err.decode()


async def attach(config: Path, sessions: list[asyncio.subprocess.Process], *args: str
                 ) -> tuple[asyncio.subprocess.Process, GuestConsole]:
    """``vmrunner console`` with pipes, its stdout read as the guest's console."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vmrunner", "console", "-c", str(config), *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    sessions.append(proc)
    assert proc.stdout is not None and proc.stdin is not None
    return proc, GuestConsole(proc.stdout, proc.stdin)


async def tail_of(config: Path, size: int) -> bytes:
    """``vmrunner console --tail SIZE``: the last bytes the runner keeps."""
    code, out, err = await vmrunner("console", "--tail", str(size), "-c", str(config))
    assert code == 0, err
    return out


def log_files(data: Path) -> list[Path]:
    """``console.log`` and its rotated files, oldest first."""
    return sorted(data.glob("console.log*"), key=lambda p: -int(p.suffix[1:])
                  if p.suffix[1:].isdigit() else 0)


async def test_console_kept_while_nobody_attached_then_served(
        guest_image: GuestImage, accel: AccelVerdict) -> None:
    with scratch_dir("vrser") as base:
        config = guest_config(
            base, guest_image, accel=str(accel.accel), name="servm",
            knobs=("loglevel=6",),  # the kernel's notices too: "Linux version ..." first
            runner={"/SerialConsole": {"forwardToLog": True, "logSize": LOG_SIZE,
                                       "logFiles": LOG_FILES}})
        runner = RunnerProcess(config)
        data = base / "data"
        sessions: list[asyncio.subprocess.Process] = []
        try:
            await runner.start(console=False)  # nobody attaches during the boot
            await wait_log(runner.log, "vmrunner.guest.console: TG-READY ", timeout=120)

            # the runner's log: the kernel's first line and TG-READY, one record per line
            text = runner.log_text()
            first = text.index("vmrunner.guest.console: ")
            assert "Linux version" in text[first:text.index("\n", first)], text[first:][:300]
            assert re.search(r"vmrunner\.guest\.console: TG-READY uptime=\S+ kernel=", text)

            # the ring buffer: everything so far, from the kernel's first line on
            code, tail, err = await vmrunner("console", "--tail", "-c", str(config))
            assert code == 0, err
            assert b"Linux version" in tail and b"\nTG-READY " in tail
            code, short, err = await vmrunner("console", "--tail", "100", "-c", str(config))
            assert code == 0 and 0 < len(short) <= 100 and tail.endswith(short), err

            # the log file: the same bytes (rotated once the boot output passed 4 KiB)
            kept = b"".join(p.read_bytes() for p in log_files(data))
            assert kept and tail.endswith(kept), [p.name for p in log_files(data)]

            # status: bytes seen, the log file, nobody attached
            code, out, err = await vmrunner("status", "-c", str(config))
            assert code == 0, err
            assert re.search(rf"serial: +{len(tail)} bytes, nobody attached, log "
                             rf"{re.escape(str(data / 'console.log'))}", out.decode()), out

            # the socket itself: the notice, then the replay (the end of the buffer, from a
            # line start, at most 4 KiB), then live output
            reader, writer = await asyncio.open_unix_connection(
                str(runner.runtime_dir / "console.sock"))
            notice = parse_notice(await asyncio.wait_for(reader.readline(), 10))
            assert notice is not None and notice.vm == "servm" and notice.busy is None
            replay = await asyncio.wait_for(reader.readexactly(notice.replay), 10)
            assert 0 < len(replay) <= 4096 and tail.endswith(replay)
            assert b"TG-READY " in replay
            if len(tail) <= 4096:
                assert replay == tail
            writer.close()
            await writer.wait_closed()

            # vmrunner console after the boot: the replay, then live; typed lines run
            proc, console = await attach(config, sessions)
            assert proc.stdin is not None and proc.stderr is not None
            await console.wait_for(r"^TG-READY ", timeout=30)
            assert not console.lines[0].startswith("[vmrunner:")  # the notice is not shown
            mark = console.mark()
            await console.send_line("@7 echo hello-$((6*7))")
            await console.wait_for(r"^TG-END 7 rc=0$", since=mark, timeout=30)
            assert console.lines[console.lines.index("TG-BEGIN 7", mark) + 1] == "hello-42"

            # one session at a time: vmrunner console and a raw client are refused
            code, _, err = await vmrunner("console", "-c", str(config))
            assert code == 1 and f"in use by another session (pid {proc.pid})" in err, err
            reader, writer = await asyncio.open_unix_connection(
                str(runner.runtime_dir / "console.sock"))
            refused = await asyncio.wait_for(reader.read(), 10)  # the notice, then the end
            writer.close()
            busy = parse_notice(refused)
            assert busy is not None and busy.busy is not None, refused
            assert f"(pid {proc.pid})" in busy.busy
            reader, writer = await asyncio.open_unix_connection(
                str(runner.runtime_dir / "console.sock"))
            second = GuestConsole(reader, writer)  # the test helper says why it ended
            with pytest.raises(ConsoleClosed, match=rf"another session \(pid {proc.pid}\)"):
                await second.wait_ready(10)
            assert second.lines == []
            await second.close()
            code, out, err = await vmrunner("status", "-c", str(config))
            assert f"pid {proc.pid} attached" in out.decode(), out

            # much output: the log rotates at 4 KiB, 2 old files, nothing lost or reordered
            mark = console.mark()
            await console.send_line("@8 seq 1 3000")
            await console.wait_for(r"^TG-END 8 rc=0$", since=mark, timeout=120)
            seq = [line for line in console.lines[mark:] if line.isdigit()]
            assert seq == [str(n) for n in range(1, 3001)]  # the session saw all of it
            files = log_files(data)
            assert [p.name for p in files] == ["console.log.2", "console.log.1",
                                               "console.log"], files
            assert all(p.stat().st_size <= LOG_SIZE for p in files)
            assert files[0].stat().st_size == files[1].stat().st_size == LOG_SIZE
            code, tail, err = await vmrunner("console", "--tail", "-c", str(config))
            kept = b"".join(p.read_bytes() for p in files)
            assert tail.endswith(kept) and b"\n2999\r\n3000\r\n" in kept

            # detach; attach again without the replay: only new output
            proc.stdin.write(b"\x1d")
            assert await asyncio.wait_for(proc.wait(), 10) == 0
            await console.close()
            proc, console = await attach(config, sessions, "--no-replay")
            assert proc.stdin is not None
            await console.send_line("@9 echo again")
            await console.wait_for(r"^TG-END 9 rc=0$", timeout=30)
            assert not any(line.isdigit() for line in console.lines), console.lines[:5]

            # live: forwardToLog off; the next lines are kept and shown, not logged
            document = yaml.safe_load(config.read_text())
            document["/Runner"]["/SerialConsole"]["forwardToLog"] = False
            config.write_text(yaml.safe_dump(document, sort_keys=False))
            await wait_log(runner.log, "configuration changed", timeout=30)
            mark = console.mark()
            await console.send_line("@10 echo not-$((1+1))-forwarded")
            await console.wait_for(r"^TG-END 10 rc=0$", since=mark, timeout=30)
            assert "not-2-forwarded" in console.lines[mark:]
            assert b"not-2-forwarded" in await tail_of(config, 500)
            assert "not-2-forwarded" not in runner.log_text()

            # the VM stops: the session ends with it, the socket goes
            runner.signal(signal.SIGTERM)
            assert await runner.wait(60) == 0, runner.log_tail()
            assert await asyncio.wait_for(proc.wait(), 10) == 1
            assert not (runner.runtime_dir / "console.sock").exists()
            await console.close()
        finally:
            for session in sessions:
                if session.returncode is None:
                    session.kill()
                    await session.wait()
            await runner.close()


async def test_a_client_that_does_not_read_is_dropped_not_the_guest(
        guest_image: GuestImage, accel: AccelVerdict) -> None:
    """A session that never reads: once 1 MiB is queued for it the runner drops it (a
    WARNING); the guest's output goes on into the buffer and the file meanwhile."""
    with scratch_dir("vrslow") as base:
        config = guest_config(base, guest_image, accel=str(accel.accel), name="slowvm",
                              runner={"/SerialConsole": {"logSize": "8 MiB"}})
        runner = RunnerProcess(config)
        try:
            await runner.start(console=False)
            await wait_log(runner.log, "state booting → booted", timeout=120)
            stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.connect(str(runner.runtime_dir / "console.sock"))
            line = "0123456789" * 7
            stalled.sendall(f"@1 yes {line} | head -c 2000000; echo\n".encode())
            await wait_log(runner.log, "does not read its output", timeout=120)
            assert f"serial console: the session of pid {os.getpid()} does not read" in \
                runner.log_text()
            async with asyncio.timeout(300):  # the guest goes on: the command ends
                while not (await tail_of(config, 200)).endswith(b"TG-END 1 rc=0\r\n"):  # noqa: ASYNC110 - asks the runner
                    await asyncio.sleep(0.5)
            assert (base / "data" / "console.log").stat().st_size > 2_000_000
            stalled.setblocking(False)
            ended = b""
            with contextlib.suppress(BlockingIOError, ConnectionResetError):
                while chunk := stalled.recv(1 << 20):
                    ended += chunk
            stalled.close()
            assert len(ended) < 2_000_000  # it got a part, then the runner let it go
            _, out, _ = await vmrunner("status", "-c", str(config))
            assert "nobody attached" in out.decode(), out
            runner.signal(signal.SIGTERM)
            assert await runner.wait(60) == 0, runner.log_tail()
        finally:
            await runner.close()


async def test_a_vm_type_whose_qemu_serves_console_sock_keeps_working(
        guest_image: GuestImage, accel: AccelVerdict) -> None:
    """A VM type from before the runner kept the console (QEMU listening on
    ``consoleSocket``): the runner leaves the socket to QEMU, ``vmrunner console`` works
    without a notice or replay, ``--tail`` says there is nothing kept."""
    with scratch_dir("vrold") as base:
        templates = base / "tpl"
        templates.mkdir()
        standard = (Path(__file__).parents[2] / "templates" / "Standard-VM.yaml.mako")
        old = standard.read_text().replace('"path": serialSocket', '"path": consoleSocket')
        assert old != standard.read_text()
        (templates / "Old-VM.yaml.mako").write_text(old)
        config = guest_config(base, guest_image, accel=str(accel.accel), name="oldvm",
                              runner={"template": "Old-VM.yaml.mako",
                                      "templateDirs": [str(templates)]})
        runner = RunnerProcess(config)
        sessions: list[asyncio.subprocess.Process] = []
        try:
            await runner.start(console=False)
            await wait_log(runner.log, "state booting → booted", timeout=120)
            code, _, err = await vmrunner("console", "--tail", "-c", str(config))
            assert code == 1 and "keeps no serial console" in err, err
            proc, console = await attach(config, sessions)
            assert proc.stdin is not None
            await console.send_line("@3 echo old-$((1+2))")
            await console.wait_for(r"^TG-END 3 rc=0$", timeout=30)
            assert "old-3" in console.lines and not any(
                line.startswith(("[vmrunner:", "TG-READY")) for line in console.lines)
            assert not (base / "data" / "console.log").exists()
            proc.stdin.write(b"\x1d")
            assert await asyncio.wait_for(proc.wait(), 10) == 0
            await console.close()
            runner.signal(signal.SIGTERM)
            assert await runner.wait(60) == 0, runner.log_tail()
        finally:
            for session in sessions:
                if session.returncode is None:
                    session.kill()
                    await session.wait()
            await runner.close()
