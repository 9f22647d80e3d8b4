"""VmopAgent against a labelled FAKE agent on a unix socket (QEMU's chardev stand-in): the
sending rules, which the real guest can show only with timing luck (issue 14). The same
behaviour with real QEMU and the test guest's agent is in tests/live/test_live_vmop.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from vmrunner.components.base import BusComponent
from vmrunner.components.vmop_agent import VmopAgent
from vmrunner.config.model import RunnerConfig
from vmrunner.core import Start
from vmrunner.core.recorder import EventRecorder
from vmrunner.events import (
    ConfigureQemu,
    LoginFailed,
    QmpVserportChange,
    RunState,
    UserLoggedIn,
    UserLoggedOut,
    VmopAgentConnected,
    VmopAgentDisconnected,
    VmopAgentStatus,
    VmPrepared,
)
from vmrunner.events.status import StatusQuery
from vmrunner.vmtypes.state import VmPaths

PORT = "channel1"


def config(user: str | None) -> RunnerConfig:
    display = {} if user is None else {"loggedInUser": user}
    return RunnerConfig.model_validate({"vm": {"name": "t", "display": display}})


class FakeAgent:
    """FAKE vmop agent: answers each command after ``delay`` s, records them."""

    def __init__(self, socket: Path, *, delay: float = 0.0) -> None:
        self.socket = socket
        self.delay = delay
        self.received: list[str] = []
        self.user: str | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.server: asyncio.AbstractServer | None = None
        self.silent = False

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(self._handle, str(self.socket))

    def say(self, line: str) -> None:
        assert self.writer is not None
        self.writer.write(line.encode() + b"\n")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.say("220 fake agent started")
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await self._serve(reader)

    async def _serve(self, reader: asyncio.StreamReader) -> None:
        while line := (await reader.readline()).decode().rstrip("\n"):
            self.received.append(line)
            if self.silent:
                continue
            await asyncio.sleep(self.delay)
            if line.startswith("login "):
                user = line.split(" ", 1)[1]
                if user == "root":
                    self.say("504 Won't log in root")
                else:
                    self.say(f"201 {user} logged in")
                    self.user = user
            elif line == "logout":
                self.say("202 logged out")
                self.user = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.server is not None:
            self.server.close()


async def tree(tmp_path: Path, user: str | None, *, port: str | None = PORT,
               timeout: float = 5.0,  # noqa: ASYNC109 - the component's reply timeout
               ) -> tuple[BusComponent, VmopAgent, EventRecorder]:
    root = BusComponent(name="Root")
    agent = root.attach(VmopAgent(reply_timeout=timeout))
    recorder = root.attach(EventRecorder())
    await root.fire(Start())
    plan: Any = SimpleNamespace(  # FAKE: the fields the component reads
        config=config(user), paths=VmPaths(data_dir=tmp_path, runtime_dir=tmp_path),
        vmop_agent_channel=port)
    await root.fire(VmPrepared(plan=plan))
    return root, agent, recorder


def vserport(port: str, open: bool) -> QmpVserportChange:
    return QmpVserportChange(id=port, open=open, timestamp=0.0)


def configure(root: BusComponent, user: str | None) -> None:
    root.fire(ConfigureQemu(config=config(user), state=RunState.BOOTED, initial=False))


async def status(root: BusComponent) -> VmopAgentStatus:
    parts = await root.call_all(StatusQuery())
    return next(p for p in parts if isinstance(p, VmopAgentStatus))


async def test_login_on_start_then_changes(tmp_path: Path) -> None:
    fake = FakeAgent(tmp_path / "org.jdrupes.vmop_agent.0")
    await fake.start()
    root, _agent, rec = await tree(tmp_path, "alice")
    root.fire(vserport("channel0", True))  # qemu-ga's port: not ours
    root.fire(vserport(PORT, True))
    await rec.wait_for(VmopAgentConnected, timeout=5)
    assert (await rec.wait_for(UserLoggedIn, timeout=5)).user == "alice"
    assert await status(root) == VmopAgentStatus(connected=True, logged_in_user="alice",
                                                 wanted_user="alice")
    configure(root, "alice")  # unchanged: nothing sent
    configure(root, "bob")
    await rec.wait_for(UserLoggedIn, lambda e: e.user == "bob", 5)
    configure(root, None)
    await rec.wait_for(UserLoggedOut, timeout=5)
    assert fake.received == ["login alice", "login bob", "logout"]
    root.fire(vserport(PORT, False))
    await rec.wait_for(VmopAgentDisconnected, timeout=5)
    assert (await status(root)).connected is False
    await fake.close()


async def test_a_storm_sends_only_what_is_still_wanted(tmp_path: Path) -> None:
    fake = FakeAgent(tmp_path / "org.jdrupes.vmop_agent.0", delay=0.05)
    await fake.start()
    root, agent, rec = await tree(tmp_path, None)
    root.fire(vserport(PORT, True))
    await rec.wait_for(UserLoggedOut, timeout=5)
    users = [f"u{i % 7}" if i % 3 else None for i in range(100)] + ["last"]
    for user in users:
        configure(root, user)
        await asyncio.sleep(0.005)
    await rec.wait_for(UserLoggedIn, lambda e: e.user == "last", 10)
    await asyncio.sleep(0.2)
    assert fake.user == "last" and fake.received[-1] == "login last"
    assert len(fake.received) < 30, fake.received  # one per answer, not one per change
    assert agent.logged_in_user == "last"
    await fake.close()


async def test_refusals_junk_and_replies_that_fit_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="vmrunner.components.vmop_agent")
    fake = FakeAgent(tmp_path / "org.jdrupes.vmop_agent.0")
    await fake.start()
    root, _agent, rec = await tree(tmp_path, "root")
    root.fire(vserport(PORT, True))
    failed = await rec.wait_for(LoginFailed, timeout=5)
    assert (failed.code, failed.text, failed.user) == (504, "Won't log in root", "root")
    assert "refused 'login root': 504 Won't log in root" in caplog.text
    assert (await status(root)).last_error == "login root: 504 Won't log in root"
    # not retried: the same wish again sends nothing
    configure(root, "root")
    fake.say("201 someone logged in")   # answers nothing in flight
    fake.say("this is no reply")        # no code
    fake.say("199 still working")       # informational
    fake.say("x" * 3000)                # overlong
    fake.say("301 what")                # not a code of the protocol
    for _ in range(100):  # (without ids, a reply arriving while a command waits is its answer)
        if "301" in caplog.text:
            break
        await asyncio.sleep(0.02)
    configure(root, "carol")
    assert (await rec.wait_for(UserLoggedIn, timeout=5)).user == "carol"
    assert fake.received == ["login root", "login carol"]
    assert "unexpected reply 201 'someone logged in' (no command is waiting" in caplog.text
    assert "unexpected line 'this is no reply' (no 3-digit code)" in caplog.text
    assert "a line longer than 1024 bytes" in caplog.text
    assert "unexpected reply 301 'what' (not a code of the protocol)" in caplog.text
    assert not [r for r in caplog.records if "199" in r.getMessage()]  # not the line numbers
    assert (await status(root)).last_error is None
    await fake.close()


async def test_timeout_then_late_answer_and_restart(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="vmrunner.components.vmop_agent")
    fake = FakeAgent(tmp_path / "org.jdrupes.vmop_agent.0")
    fake.silent = True
    await fake.start()
    root, _agent, rec = await tree(tmp_path, "alice", timeout=0.2)
    root.fire(vserport(PORT, True))
    await rec.wait_for(VmopAgentConnected, timeout=5)
    await asyncio.sleep(0.4)
    assert "no answer to 'login alice' within 0.2 s" in caplog.text
    assert (await status(root)).last_error == "login alice: no answer within 0.2 s"
    configure(root, "bob")  # nothing more is sent to a silent agent
    await asyncio.sleep(0.1)
    assert fake.received == ["login alice"]
    fake.say("201 alice logged in")  # the late answer still counts, then bob is sent
    assert (await rec.wait_for(UserLoggedIn, timeout=5)).user == "alice"
    assert "(late)" in caplog.text
    await asyncio.sleep(0.1)
    assert fake.received == ["login alice", "login bob"]
    # the agent restarts: the unanswered command is void, the wish is sent again
    fake.silent = False
    fake.say("220 agent restarted")
    assert (await rec.wait_for(UserLoggedIn, lambda e: e.user == "bob", 5)).user == "bob"
    assert fake.received == ["login alice", "login bob", "login bob"]
    assert len(rec.of_type(VmopAgentConnected)) == 2
    fake.say("240 Quit")
    disconnected = await rec.wait_for(VmopAgentDisconnected, timeout=5)
    assert "quit" in disconnected.reason
    await fake.close()


async def test_no_port_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="vmrunner.components.vmop_agent")
    root, _agent, _rec = await tree(tmp_path, "alice", port=None)
    for user in ("bob", None, "carol"):
        configure(root, user)
    await asyncio.sleep(0.05)
    assert caplog.text.count("no virtio-serial port named org.jdrupes.vmop_agent.0") == 1
    _root2, _, _ = await tree(tmp_path, None, port=None)  # no login wanted: no warning
    assert caplog.text.count("org.jdrupes.vmop_agent.0") == 1
