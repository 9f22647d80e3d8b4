"""Swtpm against the real swtpm 0.7 (and QEMU for the --terminate hand-over)."""

from __future__ import annotations

import contextlib
import signal
import socket
import time
from pathlib import Path

import pytest
from vmrunner.swtpm import Swtpm, SwtpmError

from vmrunner.proc import is_socket, spawn
from vmrunner.protocols.qmp import QmpClient, QmpDisconnected, commands


def swtpm_argv(tmp: Path, *extra: str, sock: Path | None = None) -> list[str]:
    state = tmp / "tpm"
    state.mkdir(exist_ok=True)
    return ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
            "--ctrl", f"type=unixio,path={sock or tmp / 'swtpm.sock'}",
            "--terminate", *extra]


async def test_start_ready_and_stop(tmp_path: Path) -> None:
    sock = tmp_path / "swtpm.sock"
    t0 = time.monotonic()
    tpm = await Swtpm.start(swtpm_argv(tmp_path), sock)
    assert time.monotonic() - t0 < 5
    assert tpm.running and is_socket(sock)
    status = await tpm.stop()
    assert not tpm.running
    assert status.success or status.signal == signal.SIGTERM, status
    assert not sock.exists()


def make_stale_socket(path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays behind, as after a crash


async def test_stale_socket_is_replaced(tmp_path: Path) -> None:
    sock = tmp_path / "swtpm.sock"
    make_stale_socket(sock)
    tpm = await Swtpm.start(swtpm_argv(tmp_path), sock)
    try:
        probe = socket.socket(socket.AF_UNIX)
        probe.connect(str(sock))  # a live listener now; the stale file would refuse
        probe.close()
    finally:
        await tpm.stop()


async def test_stale_socket_is_not_taken_for_readiness(tmp_path: Path) -> None:
    # swtpm creates its socket elsewhere; a stale file sits where we wait
    sock = tmp_path / "swtpm.sock"
    make_stale_socket(sock)
    argv = swtpm_argv(tmp_path, sock=tmp_path / "elsewhere.sock")
    with pytest.raises(SwtpmError, match="did not create"):
        await Swtpm.start(argv, sock, ready_timeout=0.5)
    assert not sock.exists()


async def test_bad_argument_shows_stderr(tmp_path: Path) -> None:
    with pytest.raises(SwtpmError, match="unrecognized option '--bogus'") as err:
        await Swtpm.start(swtpm_argv(tmp_path, "--bogus"), tmp_path / "swtpm.sock")
    assert "exited with status 1" in str(err.value)


async def test_socket_never_appearing_times_out_and_kills(tmp_path: Path) -> None:
    # swtpm is told another path than the one we wait for
    argv = swtpm_argv(tmp_path, sock=tmp_path / "elsewhere.sock")
    t0 = time.monotonic()
    with pytest.raises(SwtpmError, match=r"did not create .*wrong\.sock within 0\.5 s"):
        await Swtpm.start(argv, tmp_path / "wrong.sock", ready_timeout=0.5)
    assert time.monotonic() - t0 < 3
    # the swtpm we started is gone: its socket was removed when it got SIGTERM
    assert not (tmp_path / "elsewhere.sock").exists()


async def test_missing_socket_directory(tmp_path: Path) -> None:
    with pytest.raises(SwtpmError, match="does not exist"):
        await Swtpm.start(swtpm_argv(tmp_path), tmp_path / "no" / "swtpm.sock")


async def test_missing_binary(tmp_path: Path) -> None:
    with pytest.raises(SwtpmError, match="cannot start swtpm"):
        await Swtpm.start([str(tmp_path / "swtpm")], tmp_path / "swtpm.sock")


async def test_swtpm_exits_after_qemu(tmp_path: Path) -> None:
    """The runner's order: swtpm ready → QEMU uses it → QEMU exits → swtpm ends too."""
    sock = tmp_path / "swtpm.sock"
    tpm = await Swtpm.start(swtpm_argv(tmp_path), sock)
    qmp_sock = tmp_path / "qmp.sock"
    qemu = await spawn("qemu", [
        "qemu-system-x86_64", "-S", "-nodefaults", "-display", "none", "-machine", "q35",
        "-accel", "tcg", "-qmp", f"unix:{qmp_sock},server=on,wait=off",
        "-chardev", f"socket,id=chrtpm,path={sock}", "-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
        "-device", "tpm-tis,tpmdev=tpm0"])
    client = QmpClient("tpm-test")
    try:
        await client.connect(qmp_sock, process=qemu)
        with contextlib.suppress(QmpDisconnected):  # QEMU may hang up before replying
            await client.execute(commands.Quit())
        assert (await qemu.wait()).success
        t0 = time.monotonic()
        status = await tpm.stop(grace=5)  # normally already exiting by itself
        assert status.success, status
        assert time.monotonic() - t0 < 5
    finally:
        await client.disconnect()
        await qemu.kill()
        await tpm.stop(grace=0.1)
