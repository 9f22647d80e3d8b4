"""QmpClient against a real QEMU 7.2 (paused, no guest)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from vmrunner.events import qmp as qmp_events
from vmrunner.proc import ChildProcess
from vmrunner.protocols.qmp import (
    TRAFFIC_LOGGER,
    QmpClient,
    QmpConnectError,
    QmpDisconnected,
    QmpExecuteError,
    commands,
)

Qmp = tuple[QmpClient, ChildProcess]
StartQemu = Callable[..., Coroutine[Any, Any, tuple[ChildProcess, Path]]]


async def next_event(client: QmpClient) -> qmp_events.QmpEvent:
    async with asyncio.timeout(10):
        return await anext(aiter(client.events()))


async def test_greeting_status_cont_stop(qmp: Qmp) -> None:
    client, _ = qmp
    assert client.connected
    assert client.qemu_version is not None and client.qemu_version >= (7, 0, 0)
    status = await client.execute(commands.QueryStatus())
    assert status["status"] == "prelaunch" and status["running"] is False

    assert await client.execute(commands.Cont()) == {}
    resume = await next_event(client)
    assert isinstance(resume, qmp_events.QmpResume)
    assert abs(resume.timestamp - time.time()) < 60
    assert (await client.execute(commands.QueryStatus()))["running"] is True

    await client.execute(commands.Stop())
    assert isinstance(await next_event(client), qmp_events.QmpStop)
    assert (await client.execute(commands.QueryStatus()))["status"] == "paused"


async def test_execute_errors_are_typed(qmp: Qmp) -> None:
    client, _ = qmp
    with pytest.raises(QmpExecuteError) as err:
        await client.execute(commands.RawCommand(command="no-such-command"))
    assert err.value.command == "no-such-command"
    assert err.value.error_class == "CommandNotFound"

    with pytest.raises(QmpExecuteError) as err:
        await client.execute(commands.DeviceDel(id="nope"))
    assert err.value.error_class == "DeviceNotFound"
    assert "nope" in err.value.desc
    assert client.connected  # an error reply leaves the session usable
    await client.execute(commands.QueryStatus())


async def test_quit_gives_shutdown_event_then_clean_disconnect(qmp: Qmp) -> None:
    client, proc = qmp
    with contextlib.suppress(QmpDisconnected):  # QEMU may hang up before its reply
        await client.execute(commands.Quit())
    seen = [ev async for ev in client.events()]  # ends when the connection ends
    shutdowns = [ev for ev in seen if isinstance(ev, qmp_events.QmpShutdown)]
    assert shutdowns and shutdowns[0].guest is False
    assert shutdowns[0].reason == "host-qmp-quit"
    assert (await proc.wait()).returncode == 0
    await client.wait_disconnected()
    assert not client.connected
    with pytest.raises(QmpDisconnected):
        await client.execute(commands.QueryStatus())
    await client.disconnect()  # the EOFError qemu.qmp re-raises here is absorbed
    await client.disconnect()  # and twice is harmless


async def test_qemu_death_is_noticed(qmp: Qmp) -> None:
    client, proc = qmp
    proc.send_signal(signal.SIGKILL)
    async with asyncio.timeout(5):
        await client.wait_disconnected()
        assert [ev async for ev in client.events()] == []
    with pytest.raises(QmpDisconnected):
        await client.execute(commands.QueryStatus())
    await client.disconnect()


@pytest.mark.parametrize("cd", [
    ("-device", "virtio-scsi-pci,id=scsi0", "-device", "scsi-cd,bus=scsi0.0,id=cd0"),
    ("-device", "ide-cd,bus=ide.0,id=cd0"),
], ids=["scsi-cd", "ide-cd"])
async def test_tray_moves_on_empty_cd_drive(start_qemu: StartQemu, cd: tuple[str, ...]) -> None:
    proc, sock = await start_qemu(*cd)
    client = QmpClient("tray")
    await client.connect(sock, process=proc)
    try:
        events = aiter(client.events())
        await client.execute(commands.BlockdevOpenTray(id="cd0"))
        async with asyncio.timeout(10):
            opened = await anext(events)
        assert opened == qmp_events.QmpDeviceTrayMoved(
            timestamp=opened.timestamp, id="cd0", device="", tray_open=True)
        blocks = await client.execute(commands.QueryBlock())
        assert [b["tray_open"] for b in blocks if b.get("qdev", "").endswith("cd0")] == [True]
        await client.execute(commands.BlockdevCloseTray(id="cd0"))
        async with asyncio.timeout(10):
            closed = await anext(events)
        assert isinstance(closed, qmp_events.QmpDeviceTrayMoved) and closed.tray_open is False
    finally:
        await client.disconnect()


async def test_connect_times_out_without_socket(tmp_path: Path) -> None:
    client = QmpClient("none", connect_timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(QmpConnectError, match=r"within 0\.3 s"):
        await client.connect(tmp_path / "missing.sock")
    assert 0.25 < time.monotonic() - t0 < 2


async def test_connect_fails_fast_when_qemu_exits(start_qemu: StartQemu) -> None:
    proc, sock = await start_qemu("-device", "no-such-device")
    client = QmpClient("bad", connect_timeout=30)
    t0 = time.monotonic()
    with pytest.raises(QmpConnectError, match="no-such-device"):
        await client.connect(sock, process=proc)
    assert time.monotonic() - t0 < 10


async def test_reconnect_after_disconnect(qmp: Qmp, start_qemu: StartQemu) -> None:
    client, proc = qmp
    await client.disconnect()
    assert not client.connected
    path = next(Path(a.split(",")[0][5:]) for a in proc.argv if a.startswith("unix:"))
    await client.connect(path, process=proc)
    assert (await client.execute(commands.QueryStatus()))["status"] == "prelaunch"


async def test_traffic_is_logged_with_passwords_masked(
    qmp: Qmp, caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = qmp
    caplog.set_level(logging.DEBUG, logger=TRAFFIC_LOGGER)
    with pytest.raises(QmpExecuteError):  # no SPICE/VNC display here
        await client.execute(commands.SetPassword(protocol="vnc", password="s3cret-pw"))
    await client.execute(commands.QueryStatus())
    traffic = [r.getMessage() for r in caplog.records if r.name == TRAFFIC_LOGGER]
    assert any('"execute":"set_password"' in m and '"password":"***"' in m for m in traffic)
    assert any("<--" in m and "prelaunch" in m for m in traffic)
    assert not any("s3cret-pw" in r.getMessage() for r in caplog.records)
