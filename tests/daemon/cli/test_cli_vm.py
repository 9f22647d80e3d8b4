"""The commands for one running VM, against a real runner (``python -m vmrunner run`` as a
subprocess) with the real test guest under TCG: ``console``, ``qmp``, ``list``, ``reset``,
``shutdown``. Each command is itself a real ``python -m vmrunner`` subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import sys
import termios
from pathlib import Path

import pytest

from vmrunner.api.client import follow
from vmrunner.proc.sockets import wait_for_socket
from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.console import GuestConsole
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.runnerproc import RunnerProcess, guest_config, scratch_dir

pytestmark = pytest.mark.guest


async def vmrunner(*args: str, timeout: float = 60) -> tuple[int, str, str]:  # noqa: ASYNC109
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vmrunner", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def attach(config: Path, sessions: list[asyncio.subprocess.Process]
                 ) -> tuple[asyncio.subprocess.Process, GuestConsole]:
    """``vmrunner console`` with pipes, its stdout read as the guest's console; recorded in
    ``sessions`` (killed by the test's clean-up)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vmrunner", "console", "-c", str(config),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    sessions.append(proc)
    assert proc.stdout is not None and proc.stdin is not None
    return proc, GuestConsole(proc.stdout, proc.stdin, config.parent / "console.log")


async def test_console_qmp_list_reset_shutdown(guest_image: GuestImage,
                                               accel: AccelVerdict) -> None:
    with scratch_dir("vrcli") as base:
        config = guest_config(base, guest_image, accel=str(accel.accel), name="clivm")
        runner = RunnerProcess(config)
        sessions: list[asyncio.subprocess.Process] = []
        try:
            runner.runtime_dir.mkdir(mode=0o700)
            await runner.start(console=False)
            await wait_for_socket(runner.runtime_dir / "console.sock")
            proc, console = await attach(config, sessions)
            assert proc.stdin is not None and proc.stderr is not None
            ready = await console.wait_ready(120)
            assert "kernel=" in ready

            # a command typed into the console runs in the guest's shell
            mark = console.mark()
            await console.send_line("@7 echo hello-$((6*7))")
            await console.wait_for(r"^TG-END 7 rc=0$", since=mark, timeout=30)
            begin = console.lines.index("TG-BEGIN 7", mark)
            assert console.lines[begin + 1] == "hello-42"

            # a second session is refused while the first is attached, naming its pid
            code, _, err = await vmrunner("console", "-c", str(config))
            assert code == 1, err
            assert f"in use by another session (pid {proc.pid})" in err

            # raw QMP: answered, and recorded as such in the log and the event stream
            code, out, err = await vmrunner(
                "qmp", '{"execute": "query-status"}', "-c", str(config))
            assert code == 0, err
            assert json.loads(out)["return"]["status"] == "running"
            assert "raw QMP command from the API: " in runner.log_text()
            code, out, err = await vmrunner("qmp", '{"execute": "no-such-cmd"}',
                                            "-c", str(config))
            assert code == 1 and "error" in json.loads(out), out
            code, out, err = await vmrunner("qmp", '{"execute": "quit", "id": 1}',
                                            "-c", str(config))
            assert code == 2 and "only the keys 'execute' and 'arguments'" in err, err
            code, out, err = await vmrunner("qmp", json.dumps({
                "execute": "set_password",
                "arguments": {"protocol": "vnc", "password": "hunter2"}}), "-c", str(config))
            assert code == 1, out  # no VNC display; the point is what was logged
            assert "hunter2" not in runner.log_text()
            assert '"password": "***"' in runner.log_text()
            records = []
            async for record in follow(runner.runtime_dir / "api.sock", since=0):
                records.append(record)
                if record["type"] == "RawQmpRequested" and \
                        record["data"]["command"] == "no-such-cmd":
                    break
            raw = [r["data"]["command"] for r in records if r["type"] == "RawQmpRequested"]
            assert raw == ["query-status", "no-such-cmd"]

            # list: the runner with its name, state, pid, RAM and vCPUs
            code, out, err = await vmrunner("list", "--json", "--dir", str(base))
            assert code == 0, err
            rows = [json.loads(line) for line in out.splitlines()]
            mine = [r for r in rows if r["runtimeDir"] == str(runner.runtime_dir.resolve())]
            assert len(mine) == 1, out
            assert mine[0]["name"] == "clivm" and mine[0]["state"] == "booted"
            assert runner.proc is not None and mine[0]["pid"] == runner.proc.pid
            assert mine[0]["cpus"] == 1 and mine[0]["ram"] == 256 * 2**20
            assert mine[0]["uptime"] > 0
            code, out, _ = await vmrunner("list", "--dir", str(base))
            assert re.search(rf"^clivm\s+booted\s+{mine[0]['pid']}\s", out, re.M), out

            # reset: QEMU resets, the guest boots again on the same console
            mark = console.mark()
            code, out, err = await vmrunner("reset", "-c", str(config))
            assert (code, out.strip()) == (0, "reset applied"), err
            await console.wait_for(r"^TG-READY ", since=mark, timeout=120)

            # detach: the session ends, the VM keeps running, the console is free again
            proc.stdin.write(b"\x1d")
            assert await asyncio.wait_for(proc.wait(), 10) == 0
            assert "detached" in (await proc.stderr.read()).decode()
            await console.close()
            proc, console = await attach(config, sessions)
            assert proc.stdin is not None
            await console.send_line("@8 echo again")
            await console.wait_for(r"^TG-END 8 rc=0$", timeout=30)
            proc.stdin.close()  # the end of stdin detaches as well
            assert await asyncio.wait_for(proc.wait(), 10) == 0
            await console.close()

            # shutdown --wait: the ladder runs, the command returns once the runner exited
            code, out, err = await vmrunner("shutdown", "--wait", "--timeout", "90",
                                            "-c", str(config), timeout=120)
            assert code == 0, err
            assert out.startswith("shutdown requested (VM clivm was booted)"), out
            assert "the runner has exited" in out
            assert await runner.wait(5) == 0, runner.log_tail()
        finally:
            for session in sessions:
                if session.returncode is None:
                    session.kill()
                    await session.wait()
            await runner.close()


async def test_console_on_a_terminal_is_raw_and_restored(guest_image: GuestImage,
                                                         accel: AccelVerdict) -> None:
    """On a terminal (a real pty), the session puts it in raw mode (no ICANON; a Ctrl-C byte
    is passed on and does not end the session); Ctrl-] detaches and the terminal's mode is
    restored."""
    with scratch_dir("vrpty") as base:
        config = guest_config(base, guest_image, accel=str(accel.accel), name="ptyvm")
        runner = RunnerProcess(config)
        master, slave = pty.openpty()
        before = termios.tcgetattr(slave)
        proc: asyncio.subprocess.Process | None = None
        try:
            await runner.start()  # the runner's own console client sees TG-READY
            await runner.wait_ready(120)
            assert runner.console is not None
            await runner.console.close()  # free QEMU's socket for the session
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "vmrunner", "console", "-c", str(config),
                stdin=slave, stdout=slave, stderr=asyncio.subprocess.PIPE)
            assert proc.stderr is not None
            assert b"Connected to the serial console" in await asyncio.wait_for(
                proc.stderr.readline(), 30)
            assert not termios.tcgetattr(slave)[3] & termios.ICANON  # raw while attached
            os.write(master, b"\x03")  # Ctrl-C: a byte for the guest, not SIGINT
            await asyncio.sleep(1)
            assert proc.returncode is None
            os.write(master, b"@5 echo pty-$((2+3))\r")
            seen = b""
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(30):
                while b"TG-END 5" not in seen:
                    seen += await loop.run_in_executor(None, os.read, master, 4096)
            assert b"pty-5" in seen
            os.write(master, b"\x1d")
            assert await asyncio.wait_for(proc.wait(), 10) == 0
            assert termios.tcgetattr(slave) == before
        finally:
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
            os.close(master)
            os.close(slave)
            await runner.close()
