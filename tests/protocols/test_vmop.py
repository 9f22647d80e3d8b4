"""vmrunner.protocols.vmop: the vmop agent's line protocol (issue 14).

The matcher is pure; the client runs against a plain unix socket server standing in for
QEMU's chardev. The real guest's agent is exercised in tests/live/test_live_vmop.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from vmrunner.protocols.vmop import (
    AgentQuit,
    AgentStarted,
    Answer,
    Command,
    Informational,
    Junk,
    Reply,
    ReplyKind,
    ReplyMatcher,
    Unexpected,
    VmopClient,
    VmopConnectError,
    VmopDisconnected,
    parse_reply,
)

ALICE = Command("alice")
LOGOUT = Command(None)


def test_parse_reply() -> None:
    assert parse_reply("201 alice logged in") == Reply(201, "alice logged in")
    assert parse_reply("240") == Reply(240, "")
    assert parse_reply("504 Won't log in root").kind is ReplyKind.ERROR  # type: ignore[union-attr]
    for junk in ("", "hello", "20 x", "2011 x", "abc def", " 201 x", "201x"):
        assert parse_reply(junk) is None, junk
    kinds = {c: Reply(c, "").kind for c in (100, 199, 220, 201, 202, 240, 451, 504, 299, 300)}
    assert kinds == {100: ReplyKind.INFO, 199: ReplyKind.INFO, 220: ReplyKind.STARTED,
                     201: ReplyKind.LOGGED_IN, 202: ReplyKind.LOGGED_OUT,
                     240: ReplyKind.QUIT, 451: ReplyKind.ERROR, 504: ReplyKind.ERROR,
                     299: ReplyKind.UNKNOWN, 300: ReplyKind.UNKNOWN}


def test_commands_are_one_line() -> None:
    assert ALICE.line == "login alice" and LOGOUT.line == "logout"
    for bad in ("", "a b", "a\nlogout", "a\r", "x\x00"):
        with pytest.raises(ValueError):
            Command(bad)


def test_answers_match_their_command() -> None:
    m = ReplyMatcher()
    m.sent(ALICE)
    assert m.feed("201 alice logged in") == Answer(ALICE, Reply(201, "alice logged in"))
    assert m.in_flight is None
    m.sent(LOGOUT)
    failed = m.feed("451 cannot")
    assert failed == Answer(LOGOUT, Reply(451, "cannot")) and not failed.ok  # type: ignore[union-attr]
    with pytest.raises(RuntimeError):  # one at a time
        m.sent(ALICE)
        m.sent(LOGOUT)


def test_a_line_that_does_not_fit_never_consumes_the_command() -> None:
    """The reference runner popped its queue on any non-1xx line (contract §5, bug)."""
    m = ReplyMatcher()
    assert isinstance(m.feed("201 spontaneous"), Unexpected)  # nothing in flight
    m.sent(LOGOUT)
    for line in ("201 alice logged in", "299 what", "999 x", "hello", "", "100 working"):
        outcome = m.feed(line)
        assert not isinstance(outcome, Answer), (line, outcome)
        assert m.in_flight == LOGOUT
    assert isinstance(m.feed("100 working"), Informational)
    assert isinstance(m.feed("hello"), Junk)
    wrong = m.feed("201 alice")
    assert isinstance(wrong, Unexpected) and "'logout'" in wrong.why
    assert m.feed("202 logged out") == Answer(LOGOUT, Reply(202, "logged out"))
    assert isinstance(m.feed("overlong...", overlong=True), Junk)


def test_start_and_quit_void_the_command_in_flight() -> None:
    m = ReplyMatcher()
    m.sent(ALICE)
    assert m.feed("220 agent started") == AgentStarted(Reply(220, "agent started"), ALICE)
    assert m.in_flight is None
    assert isinstance(m.feed("201 late"), Unexpected)  # the old agent's answer: not ours
    m.sent(ALICE)
    assert m.feed("240 Quit") == AgentQuit(Reply(240, "Quit"), ALICE)
    assert m.feed("220 again") == AgentStarted(Reply(220, "again"), None)


def test_an_expired_command_takes_its_late_answer() -> None:
    m = ReplyMatcher()
    m.sent(ALICE)
    assert m.expire() == ALICE and m.expired
    assert m.feed("201 at last") == Answer(ALICE, Reply(201, "at last"), late=True)
    assert not m.expired and m.expire() is None


@pytest.fixture
async def server(tmp_path: Path) -> asyncio.AbstractServer:
    peers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer)
        while line := await reader.readline():
            if line == b"login alice\n":
                writer.write(b"201 alice logged in\r\n")
            elif line == b"flood\n":
                writer.write(b"x" * 5000 + b"\n" + b"202 after\n")
            elif line == b"bye\n":
                writer.close()
                return

    srv = await asyncio.start_unix_server(handle, str(tmp_path / "s"))
    srv.peers = peers  # type: ignore[attr-defined]
    return srv


async def test_client_round_trip_and_bounded_lines(tmp_path: Path,
                                                   server: asyncio.AbstractServer) -> None:
    client = VmopClient(line_limit=100)
    with pytest.raises(VmopDisconnected):
        client.send(ALICE)
    await client.connect(tmp_path / "s")
    client.send(ALICE)
    line = await client.read_line()
    assert (line.text, line.overlong) == ("201 alice logged in", False)
    # an overlong line is cut and reported once, the next line is intact
    assert client._writer is not None
    client._writer.write(b"flood\n")
    cut = await client.read_line()
    assert cut.overlong and cut.text == "x" * 100
    assert (await client.read_line()).text == "202 after"
    # reading can be cancelled without losing anything
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await client.read_line()
    client._writer.write(b"bye\n")
    with pytest.raises(VmopDisconnected):
        await client.read_line()
    await client.close()
    server.close()


async def test_connect_errors(tmp_path: Path) -> None:
    with pytest.raises(VmopConnectError):
        await VmopClient().connect(tmp_path / "missing")
