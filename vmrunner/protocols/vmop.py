"""Client for the vmop agent: VM-Operator's auto-login line protocol over virtio-serial.

The agent in the guest reads the port ``org.jdrupes.vmop_agent.0``; the runner reaches it
through QEMU's chardev socket ``runtimeDir/org.jdrupes.vmop_agent.0``. One line each way:

* runner → guest: ``login <user>`` or ``logout``;
* guest → runner: a 3-digit code, a space, text. ``220`` the agent started, ``201`` logged in
  (also "already logged in"), ``202`` logged out, ``1xx`` informational, ``4xx``/``5xx`` the
  command failed (``451 ...``, ``504 Won't log in root``), ``240 Quit`` the agent exits.

Two parts:

* :class:`ReplyMatcher` (no I/O) matches each line to the **one** command in flight. Unlike
  the reference runner it never consumes a command with a line that does not answer it: a
  ``201`` while ``logout`` waits, a code nobody asked for, a line without a code are each
  reported (:class:`Unexpected`, :class:`Junk`) and the command keeps waiting. ``220``/``240``
  void the command in flight (the new agent will not answer it). A command that timed out
  (:meth:`ReplyMatcher.expire`) still takes its late answer.
* :class:`VmopClient` is the socket: bounded lines (an overlong line is cut, the rest up to
  its newline dropped, and reported), a connect timeout, commands that cannot carry a
  second line.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import re

import msgspec

TRAFFIC_LOGGER = "vmrunner.protocols.vmop.traffic"
LINE_LIMIT = 1024
"""Longest line taken from the agent (bytes, without the newline); longer ones are cut."""
_CODE = re.compile(r"([0-9]{3})(?:[ \t](.*))?")


class VmopError(Exception):
    """Base class of the vmop client's errors."""


class VmopConnectError(VmopError):
    """The agent's host socket could not be opened."""


class VmopDisconnected(VmopError):
    """Not connected, or QEMU closed the socket."""


class ReplyKind(enum.Enum):
    """What a reply code means (contract §5)."""

    INFO = "info"
    """``1xx``: informational, answers nothing."""
    STARTED = "started"
    """``220``: the agent (re)started."""
    LOGGED_IN = "logged-in"
    """``201``: logged in (also: was already)."""
    LOGGED_OUT = "logged-out"
    """``202``: logged out."""
    QUIT = "quit"
    """``240``: the agent exits."""
    ERROR = "error"
    """``4xx``/``5xx``: the command failed."""
    UNKNOWN = "unknown"
    """Any other code."""


class Reply(msgspec.Struct, frozen=True):
    """One line from the agent with its code."""

    code: int
    text: str

    @property
    def kind(self) -> ReplyKind:
        code = self.code
        if 100 <= code < 200:
            return ReplyKind.INFO
        if 400 <= code < 600:
            return ReplyKind.ERROR
        return {220: ReplyKind.STARTED, 201: ReplyKind.LOGGED_IN, 202: ReplyKind.LOGGED_OUT,
                240: ReplyKind.QUIT}.get(code, ReplyKind.UNKNOWN)

    def __str__(self) -> str:
        return f"{self.code} {self.text}".rstrip()


def parse_reply(line: str) -> Reply | None:
    """``NNN text`` → :class:`Reply`; ``None`` for a line without a leading 3-digit code."""
    match = _CODE.fullmatch(line)
    if match is None:
        return None
    return Reply(int(match[1]), match[2] or "")


class Command(msgspec.Struct, frozen=True):
    """``login <user>`` (``user`` set) or ``logout`` (``user`` is ``None``)."""

    user: str | None

    def __post_init__(self) -> None:
        if self.user is not None and (not self.user or any(
                c.isspace() or not c.isprintable() for c in self.user)):
            raise ValueError(f"not a user name for the line protocol: {self.user!r}")

    @property
    def line(self) -> str:
        return "logout" if self.user is None else f"login {self.user}"

    def answered_by(self, reply: Reply) -> bool:
        """Whether ``reply`` is an answer to this command (success or failure)."""
        kind = reply.kind
        if kind is ReplyKind.ERROR:
            return True
        return kind is (ReplyKind.LOGGED_OUT if self.user is None else ReplyKind.LOGGED_IN)

    def __str__(self) -> str:
        return self.line


# -- what a line meant (ReplyMatcher.feed) ----------------------------------------------------

class Answer(msgspec.Struct, frozen=True):
    """``reply`` answers ``command``; ``late``: after the command had timed out."""

    command: Command
    reply: Reply
    late: bool = False

    @property
    def ok(self) -> bool:
        return self.reply.kind is not ReplyKind.ERROR


class AgentStarted(msgspec.Struct, frozen=True):
    """``220``: the agent (re)started; ``voided`` was in flight and will not be answered."""

    reply: Reply
    voided: Command | None = None


class AgentQuit(msgspec.Struct, frozen=True):
    """``240``: the agent exits; ``voided`` was in flight and will not be answered."""

    reply: Reply
    voided: Command | None = None


class Informational(msgspec.Struct, frozen=True):
    """``1xx``: nothing to do."""

    reply: Reply


class Unexpected(msgspec.Struct, frozen=True):
    """A reply that answers nothing in flight (``why``); the command in flight keeps waiting."""

    reply: Reply
    why: str


class Junk(msgspec.Struct, frozen=True):
    """A line without a 3-digit code, or an overlong one (cut to :data:`LINE_LIMIT`)."""

    line: str
    overlong: bool = False


Outcome = Answer | AgentStarted | AgentQuit | Informational | Unexpected | Junk


class ReplyMatcher:
    """Matches the agent's lines to the one command in flight (see the module docs)."""

    def __init__(self) -> None:
        self.in_flight: Command | None = None
        """The command sent and not answered yet (also after it timed out)."""
        self.expired = False
        """Whether :attr:`in_flight` has timed out (its late answer is still taken)."""

    def sent(self, command: Command) -> None:
        """``command`` was written; one at a time."""
        if self.in_flight is not None:
            raise RuntimeError(f"{command}: {self.in_flight} is still in flight")
        self.in_flight, self.expired = command, False

    def expire(self) -> Command | None:
        """The command in flight timed out: it stays in flight for a late answer."""
        if self.in_flight is not None:
            self.expired = True
        return self.in_flight

    def reset(self) -> Command | None:
        """The connection is gone: forget the command in flight (returned)."""
        command, self.in_flight, self.expired = self.in_flight, None, False
        return command

    def feed(self, line: str, *, overlong: bool = False) -> Outcome:
        """What ``line`` (without its newline) means."""
        reply = None if overlong else parse_reply(line)
        if reply is None:
            return Junk(line, overlong)
        kind = reply.kind
        if kind is ReplyKind.INFO:
            return Informational(reply)
        if kind is ReplyKind.STARTED:
            return AgentStarted(reply, self.reset())
        if kind is ReplyKind.QUIT:
            return AgentQuit(reply, self.reset())
        command = self.in_flight
        if kind is ReplyKind.UNKNOWN:
            return Unexpected(reply, "not a code of the protocol")
        if command is None:
            return Unexpected(reply, "no command is waiting for an answer")
        if not command.answered_by(reply):
            return Unexpected(reply, f"does not answer {command.line!r}, which keeps waiting")
        late = self.expired
        self.in_flight, self.expired = None, False
        return Answer(command, reply, late)


class Line(msgspec.Struct, frozen=True):
    """A line read from the agent, without its newline; ``overlong`` if it was cut."""

    text: str
    overlong: bool = False


class VmopClient:
    """One connection to the agent's host socket; ``connect`` again after ``close``."""

    def __init__(self, name: str = "vmop", *, line_limit: int = LINE_LIMIT,
                 connect_timeout: float = 5.0) -> None:
        self.name = name
        self.line_limit = line_limit
        self.connect_timeout = connect_timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._buffer = bytearray()
        self._discarding = False
        self._traffic = logging.getLogger(TRAFFIC_LOGGER)

    @property
    def connected(self) -> bool:
        """True while the socket is open (says nothing about the agent inside)."""
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self, path: str | os.PathLike[str]) -> None:
        """Open the agent's host socket.

        :raise VmopConnectError: missing, refused or no answer within ``connect_timeout``.
        """
        await self.close()
        try:
            async with asyncio.timeout(self.connect_timeout):
                self._reader, self._writer = await asyncio.open_unix_connection(
                    os.fspath(path))
        except (OSError, TimeoutError) as e:
            raise VmopConnectError(
                f"{self.name}: cannot connect to {os.fspath(path)}: {e or 'timeout'}") from e
        self._buffer.clear()
        self._discarding = False

    async def close(self) -> None:
        """Close the socket; harmless when not connected."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def send(self, command: Command) -> None:
        """Write ``command``'s line (a few bytes: no need to wait for the buffer to drain).

        :raise VmopDisconnected: not connected.
        """
        if self._writer is None or self._writer.is_closing():
            raise VmopDisconnected(f"{self.name}: not connected")
        self._traffic.debug("%s --> %s", self.name, command.line)
        try:
            self._writer.write(command.line.encode() + b"\n")
        except OSError as e:
            raise VmopDisconnected(f"{self.name}: socket closed: {e}") from e

    async def read_line(self) -> Line:
        """The next line from the agent (``\\r`` dropped, undecodable bytes replaced). A
        line longer than ``line_limit`` comes back cut, with ``overlong``; the rest of it
        is skipped. Safe to cancel: nothing read is lost.

        :raise VmopDisconnected: not connected or the socket closed.
        """
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                raw = bytes(self._buffer[:end])
                del self._buffer[:end + 1]
                if self._discarding:
                    self._discarding = False
                    continue
                return self._line(raw, overlong=len(raw) > self.line_limit)
            if len(self._buffer) > self.line_limit:
                if self._discarding:
                    self._buffer.clear()
                else:
                    raw = bytes(self._buffer)
                    self._buffer.clear()
                    self._discarding = True
                    return self._line(raw, overlong=True)
            if self._reader is None:
                raise VmopDisconnected(f"{self.name}: not connected")
            try:
                chunk = await self._reader.read(4096)
            except OSError as e:
                raise VmopDisconnected(f"{self.name}: socket error: {e}") from e
            if not chunk:
                raise VmopDisconnected(f"{self.name}: the socket was closed (QEMU gone?)")
            self._buffer += chunk

    def _line(self, raw: bytes, *, overlong: bool) -> Line:
        if overlong:
            raw = raw[:self.line_limit]
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        self._traffic.debug("%s <-- %r%s", self.name, text, " (cut)" if overlong else "")
        return Line(text, overlong)
