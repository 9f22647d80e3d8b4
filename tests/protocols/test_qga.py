"""vmrunner.protocols.qga.GuestAgent.

The protocol edge cases (stale bytes, silence, error replies, hang-ups) run against a
labelled FAKE agent, because a real qemu-ga cannot be made to produce them on demand.
The real guest's qemu-ga is tested at the end (marker ``guest``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from vmrunner.api.serialize import event_record
from vmrunner.events.guest_facts import (
    GuestFacts,
    GuestFactsUpdated,
    GuestFilesystem,
    GuestUser,
    IpAddress,
    NetworkInterface,
)
from vmrunner.protocols.qga import (
    GuestAgent,
    QgaConnectError,
    QgaDisconnected,
    QgaExecuteError,
    QgaTimeout,
)
from vmrunner.protocols.qga_facts import (
    gather,
    parse_filesystems,
    parse_interfaces,
    parse_users,
)
from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.qemu import GuestSpec, GuestVM, wait_event

OSINFO = {"id": "fake", "name": "Fake", "pretty-name": "Fake OS 1", "version": "1",
          "version-id": "1", "kernel-release": "6.1", "kernel-version": "#1",
          "machine": "x86_64"}


class FakeAgent:
    """FAKE qemu-ga on a unix socket, speaking its line protocol including the 0xFF
    parser reset, with knobs for behaviour a real agent shows only by accident."""

    def __init__(self, *, stale: bytes = b"", ignore: frozenset[str] = frozenset(),
                 shutdown: str = "silent", answers: dict[str, Any] | None = None,
                 delays: dict[str, float] | None = None) -> None:
        self.stale = stale              # written to every new connection first
        self.ignore = ignore            # commands never answered
        self.delays = delays or {}      # seconds before answering these commands
        self.answers = answers or {}    # more commands and their "return" values
        self.shutdown = shutdown        # silent | refuse | hangup
        self.received: list[str] = []
        self._writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        writer.write(self.stale)
        while line := await reader.readline():
            if line.startswith(b"\xff"):  # like qemu-ga: the reset byte yields an error line
                writer.write(b'{"error": {"class": "GenericError", "desc": "stray"}}\n')
                line = line[1:]
            msg = json.loads(line)
            command = msg["execute"]
            self.received.append(command)
            if command in self.ignore:
                continue
            if command in self.delays:
                await asyncio.sleep(self.delays[command])
            if command == "guest-sync-delimited":
                writer.write(b"\xff" + json.dumps({"return": msg["arguments"]["id"]}).encode()
                             + b"\n")
            elif command == "guest-shutdown":
                if self.shutdown == "refuse":
                    self._reply(writer, msg, error={"class": "GenericError",
                                                    "desc": "shutdown disabled"})
                elif self.shutdown == "hangup":
                    writer.close()
                    return
            elif command == "guest-ping":
                self._reply(writer, msg, result={})
            elif command == "guest-info":
                self._reply(writer, msg, result={"version": "fake", "supported_commands": []})
            elif command == "guest-get-osinfo":
                self._reply(writer, msg, result=OSINFO)
            elif command in self.answers:
                self._reply(writer, msg, result=self.answers[command])
            else:
                self._reply(writer, msg, error={"class": "CommandNotFound",
                                                "desc": f"The command {command} has not "
                                                        "been found"})
            await writer.drain()

    @staticmethod
    def _reply(writer: asyncio.StreamWriter, msg: dict[str, Any], *, result: Any = None,
               error: dict[str, str] | None = None) -> None:
        reply: dict[str, Any] = {"error": error} if error else {"return": result}
        if "id" in msg:
            reply["id"] = msg["id"]
        writer.write(json.dumps(reply).encode() + b"\n")

    def hang_up(self) -> None:
        for writer in self._writers:
            writer.close()


async def serve(agent: FakeAgent, path: Path) -> AsyncIterator[None]:
    server = await asyncio.start_unix_server(agent.handle, str(path))
    async with server:
        yield
        agent.hang_up()


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[tuple[FakeAgent, Path]]:
    agent = FakeAgent()
    path = tmp_path / "qga.sock"
    async for _ in serve(agent, path):
        yield agent, path


@pytest.fixture
async def client() -> AsyncIterator[GuestAgent]:
    qga = GuestAgent("t", timeout=2, sync_timeout=2)
    yield qga
    await qga.close()


async def test_commands_and_typed_osinfo(fake: tuple[FakeAgent, Path],
                                         client: GuestAgent) -> None:
    agent, path = fake
    await client.connect(path)
    await client.ping()
    assert (await client.info())["version"] == "fake"
    info = await client.get_osinfo()
    assert (info.id, info.pretty_name, info.kernel_release) == ("fake", "Fake OS 1", "6.1")
    assert info.raw == OSINFO
    # one sync, then plain commands while the channel stays in step
    assert agent.received == ["guest-sync-delimited", "guest-ping", "guest-info",
                              "guest-get-osinfo"]


async def test_stale_bytes_are_discarded(tmp_path: Path, client: GuestAgent) -> None:
    # an earlier session left a reply, a reply carrying an id and half a line behind
    agent = FakeAgent(stale=b'{"return": 4711}\n{"return": {"x": 1}, "id": "t-1"}\n{"retu')
    async for _ in serve(agent, tmp_path / "qga.sock"):
        await client.connect(tmp_path / "qga.sock")
        assert (await client.get_osinfo()).id == "fake"


async def test_error_reply_is_typed_and_keeps_sync(fake: tuple[FakeAgent, Path],
                                                   client: GuestAgent) -> None:
    agent, path = fake
    await client.connect(path)
    with pytest.raises(QgaExecuteError) as err:
        await client.execute("guest-frobnicate")
    assert (err.value.command, err.value.error_class) == ("guest-frobnicate", "CommandNotFound")
    assert client.synced
    await client.ping()
    assert agent.received.count("guest-sync-delimited") == 1


async def test_silent_agent_times_out(tmp_path: Path) -> None:
    agent = FakeAgent(ignore=frozenset({"guest-sync-delimited"}))
    client = GuestAgent(sync_timeout=0.3)
    async for _ in serve(agent, tmp_path / "qga.sock"):
        await client.connect(tmp_path / "qga.sock")
        t0 = time.monotonic()
        with pytest.raises(QgaTimeout, match="agent not running"):
            await client.ping()
        assert 0.25 < time.monotonic() - t0 < 2
        assert not client.synced and agent.received == ["guest-sync-delimited"]
        await client.close()


async def test_command_timeout_forces_a_resync(tmp_path: Path) -> None:
    agent = FakeAgent(ignore=frozenset({"guest-info"}))
    client = GuestAgent(timeout=0.3)
    async for _ in serve(agent, tmp_path / "qga.sock"):
        await client.connect(tmp_path / "qga.sock")
        with pytest.raises(QgaTimeout, match="guest-info"):
            await client.info()
        assert not client.synced
        await client.ping()
        assert agent.received == ["guest-sync-delimited", "guest-info",
                                  "guest-sync-delimited", "guest-ping"]
        await client.close()


async def test_cancellation_forces_a_resync(tmp_path: Path) -> None:
    agent = FakeAgent(ignore=frozenset({"guest-info"}))
    client = GuestAgent(timeout=30)
    async for _ in serve(agent, tmp_path / "qga.sock"):
        await client.connect(tmp_path / "qga.sock")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await client.info()
        assert not client.synced
        await client.ping()
        await client.close()


@pytest.mark.parametrize(("mode", "quick"), [("silent", False), ("hangup", True)])
async def test_shutdown_without_reply_counts_as_accepted(
    tmp_path: Path, mode: str, quick: bool
) -> None:
    agent = FakeAgent(shutdown=mode)
    client = GuestAgent()
    async for _ in serve(agent, tmp_path / "qga.sock"):
        await client.connect(tmp_path / "qga.sock")
        await client.sync()
        t0 = time.monotonic()
        await client.shutdown(reply_grace=0.5)
        elapsed = time.monotonic() - t0
        assert agent.received[-1] == "guest-shutdown"
        assert elapsed < 0.4 if quick else 0.45 < elapsed < 2
        await client.close()


async def test_refused_shutdown_raises(tmp_path: Path) -> None:
    agent = FakeAgent(shutdown="refuse")
    client = GuestAgent()
    async for _ in serve(agent, tmp_path / "qga.sock"):
        await client.connect(tmp_path / "qga.sock")
        with pytest.raises(QgaExecuteError, match="shutdown disabled"):
            await client.shutdown(reply_grace=2)
        await client.close()


async def test_hangup_and_reconnect(fake: tuple[FakeAgent, Path], client: GuestAgent) -> None:
    agent, path = fake
    await client.connect(path)
    await client.ping()
    agent.hang_up()
    with pytest.raises(QgaDisconnected):
        await client.ping()
    await client.connect(path)  # the same object reconnects and re-syncs
    await client.ping()
    assert agent.received.count("guest-sync-delimited") == 2


async def test_connect_and_use_errors(tmp_path: Path) -> None:
    client = GuestAgent()
    with pytest.raises(QgaConnectError, match=r"missing\.sock"):
        await client.connect(tmp_path / "missing.sock")
    with pytest.raises(QgaDisconnected, match="not connected"):
        await client.ping()
    await client.close()


# ---- the real qemu-ga in the test guest ----------------------------------------------

@pytest.mark.guest
async def test_real_agent_in_guest(guest_image: GuestImage, accel: AccelVerdict,
                                   tmp_path: Path) -> None:
    async with GuestVM(GuestSpec(guest_image, accel, qga=True), tmp_path) as vm:
        await vm.start(wait_ready=False)
        agent = GuestAgent("tg", timeout=30, sync_timeout=0.3)
        await agent.connect(vm.qga_socket)
        # qemu-ga is not running yet: the sync stays unanswered in the channel and is
        # answered later, when the agent starts (unless the boot is unusually fast)
        with contextlib.suppress(QgaTimeout):
            await agent.sync()
        assert vm.console is not None
        await vm.console.wait_ready(90)
        agent.sync_timeout = 30
        await agent.ping()  # re-syncs; a late answer to the early sync is discarded
        info = await agent.info()
        assert any(c["name"] == "guest-shutdown" for c in info["supported_commands"])
        osinfo = await agent.get_osinfo()
        assert osinfo.id == "vmrunner-tg" and osinfo.kernel_release, osinfo
        await agent.close()
        await agent.connect(vm.qga_socket)  # a new session on the same port
        await agent.ping()

        with vm.events("SHUTDOWN") as shutdowns:
            await agent.shutdown()  # qemu-ga does not reply on success
            assert await vm.wait_exit(60) == 0, "the guest did not power off"
            event = await wait_event(shutdowns, None, 10)
        assert event is not None, "no SHUTDOWN event"
        data = event["data"]
        assert isinstance(data, dict) and data["guest"] is True, event


# -- guest facts (vmrunner.protocols.qga_facts) ------------------------------------------------

#: qemu-ga 7.2's answers in the test guest (recorded), plus malformed entries to be dropped.
INTERFACES = [
    {"name": "lo", "hardware-address": "00:00:00:00:00:00"},
    {"name": "eth0", "hardware-address": "52:54:00:ab:cd:01", "statistics": {"rx-bytes": 1},
     "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "10.0.2.15", "prefix": 24},
                      {"ip-address-type": "ipv6", "ip-address": "fe80::1", "prefix": 64},
                      {"ip-address-type": "ipv4"}]},
    {"hardware-address": "no name"}, "junk"]
USERS = [{"login-time": 1796334435, "user": "alice"}, {"login-time": 1.5}]
FSINFO = [{"name": "vda", "total-bytes": 24116224, "mountpoint": "/mnt/data", "disk": [],
           "used-bytes": 8402944, "type": "ext4"},
          {"name": "sr0", "mountpoint": "/mnt/cd", "type": "iso9660", "disk": []}]


def test_the_parsers_take_what_qemu_ga_says() -> None:
    lo, eth0 = parse_interfaces(INTERFACES)
    assert (lo.name, lo.mac, lo.addresses) == ("lo", "00:00:00:00:00:00", ())
    assert eth0 == NetworkInterface(name="eth0", mac="52:54:00:ab:cd:01", addresses=(
        IpAddress(address="10.0.2.15", prefix=24, family="ipv4"),
        IpAddress(address="fe80::1", prefix=64, family="ipv6")))
    assert parse_users(USERS) == (GuestUser(name="alice", login_time=1796334435.0),)
    assert parse_filesystems(FSINFO) == (
        GuestFilesystem(mountpoint="/mnt/cd", type="iso9660", name="sr0"),
        GuestFilesystem(mountpoint="/mnt/data", type="ext4", name="vda",
                        total_bytes=24116224, used_bytes=8402944))
    assert parse_interfaces({"not": "a list"}) == () == parse_users(None)


async def test_gather_reports_unsupported_and_failed_commands(tmp_path: Path) -> None:
    """CommandNotFound (the fake's answer to users) is "unsupported" and skipped next time;
    a command left unanswered is an error, and the previous answer is kept."""
    agent = FakeAgent(answers={"guest-network-get-interfaces": INTERFACES,
                               "guest-get-fsinfo": FSINFO})
    qga = GuestAgent("t", timeout=2, sync_timeout=2)
    async for _ in serve(agent, tmp_path / "qga.sock"):
        await qga.connect(tmp_path / "qga.sock")
        first = await gather(qga, command_timeout=1)
        assert first.unsupported == ("guest-get-users",) and first.users is None
        assert first.errors == () and first.filesystems is not None
        assert [i.name for i in first.interfaces or ()] == ["lo", "eth0"]
        agent.ignore = frozenset({"guest-get-fsinfo"})
        agent.received.clear()
        second = await gather(qga, skip=first.unsupported, previous=first,
                              command_timeout=0.3)
        assert "guest-get-users" not in agent.received
        assert second.unsupported == ("guest-get-users",)
        assert second.errors == (
            "guest-get-fsinfo: t: no reply to guest-get-fsinfo within 0.3 s",)
        assert second.filesystems == first.filesystems  # stale beats nothing
        assert second.same_as(first) is False
        assert first.same_as(msgspec.structs.replace(first, time=0.0))
        agent.ignore = frozenset()
        assert (await gather(qga, skip=first.unsupported)).errors == ()  # in step again
    await qga.close()


async def test_a_timed_command_is_bounded_as_a_whole(tmp_path: Path) -> None:
    """``timeout`` covers the resync and the reply: an agent that hangs costs that long, not
    the client's sync and command timeouts (2 s each here)."""
    agent = FakeAgent(ignore=frozenset({"guest-ping"}))
    qga = GuestAgent("t", timeout=2, sync_timeout=2)
    async for _ in serve(agent, tmp_path / "qga.sock"):
        await qga.connect(tmp_path / "qga.sock")
        for _ in range(2):  # the second one has to resync first
            start = time.monotonic()
            with pytest.raises(QgaTimeout, match=r"guest-ping within 0\.3 s"):
                await qga.ping(timeout=0.3)
            assert time.monotonic() - start < 0.6
            assert not qga.synced
        agent.ignore = frozenset()
        await qga.ping(timeout=0.3)
    await qga.close()


async def test_a_timed_command_may_take_longer_than_the_default(tmp_path: Path) -> None:
    """A command known to be slow (a freeze syncs every filesystem first) gets its own
    ``timeout`` for the reply, not the client's (0.3 s here)."""
    agent = FakeAgent(answers={"guest-fsfreeze-freeze": 1}, delays={"guest-fsfreeze-freeze": 0.8})
    qga = GuestAgent("t", timeout=0.3, sync_timeout=2)
    async for _ in serve(agent, tmp_path / "qga.sock"):
        await qga.connect(tmp_path / "qga.sock")
        with pytest.raises(QgaTimeout, match=r"guest-fsfreeze-freeze within 0\.3 s"):
            await qga.execute("guest-fsfreeze-freeze")
        await asyncio.sleep(1)  # the late answer arrives and is dropped by the resync
        assert await qga.execute("guest-fsfreeze-freeze", timeout=5) == 1
    await qga.close()


def test_the_unsupported_error_classes() -> None:
    assert QgaExecuteError("x", "CommandNotFound", "has been disabled").unsupported
    assert not QgaExecuteError("x", "GenericError", "failed").unsupported


def test_facts_in_the_event_stream_are_camel_case() -> None:
    facts = GuestFacts(time=1.0, interfaces=parse_interfaces(INTERFACES),
                       users=parse_users(USERS), filesystems=parse_filesystems(FSINFO))
    record = event_record(1, 2.0, GuestFactsUpdated(facts=facts))
    data = record["data"]["facts"]
    assert data["interfaces"][1]["addresses"][0] == {"address": "10.0.2.15", "prefix": 24,
                                                    "family": "ipv4"}
    assert data["users"] == [{"name": "alice", "loginTime": 1796334435.0, "domain": None}]
    assert data["filesystems"][1]["usedBytes"] == 8402944
    assert msgspec.to_builtins(facts)["filesystems"][0] == {
        "mountpoint": "/mnt/cd", "type": "iso9660", "name": "sr0"}  # unknown values left out
