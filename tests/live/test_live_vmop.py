"""Auto-login through the vmop agent (issue 14) with the real runner tree, QEMU and the test
guest's agent (``/sbin/vmop-agent``, knobs ``tg.vmop_*``), under TCG.

Each change is made by rewriting the configuration file (``vm.display.loggedInUser``); the
test awaits the typed events (``UserLoggedIn``, ``UserLoggedOut``, ``LoginFailed``,
``VmopAgentConnected``/``Disconnected``) and checks the guest's side: the user the agent
recorded in ``/run/vmop-user`` and its ``TG-EVENT vmop ...`` lines on the serial console
(one per command it received).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vmrunner.components.vmop_agent import VmopAgent
from vmrunner.core import Event
from vmrunner.events import (
    LoginFailed,
    ReloadPlan,
    UserLoggedIn,
    UserLoggedOut,
    VmopAgentConnected,
    VmopAgentDisconnected,
    VmopAgentStatus,
)
from vmrunner.events.status import StatusQuery
from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.inproc import InProcessRunner
from vmrunner.testing.runnerproc import guest_config, scratch_dir

pytestmark = pytest.mark.guest

BOOT = 60.0
EVENT = 20.0
CMD = 20.0
LOGGER = "vmrunner.components.vmop_agent"


@pytest.fixture
def vmdir() -> Iterator[Path]:
    with scratch_dir("vmo") as path:
        yield path


class Vm:
    """The test's VM: write ``loggedInUser``, await events after a mark, read the guest."""

    def __init__(self, vmdir: Path, image: GuestImage, accel: AccelVerdict,
                 *knobs: str) -> None:
        self.vmdir, self.image, self.accel, self.knobs = vmdir, image, accel, knobs
        self.runner: InProcessRunner | None = None
        self.powerdown = 30

    def write(self, user: str | None, **vm: Any) -> Path:
        display = {} if user is None else {"loggedInUser": user}
        return guest_config(self.vmdir, self.image, accel=str(self.accel.accel),
                            knobs=("tg.qga=0", *self.knobs), display=display,
                            powerdown_timeout=self.powerdown, **vm)

    @property
    def vm(self) -> InProcessRunner:
        assert self.runner is not None
        return self.runner

    def mark(self) -> int:
        return len(self.vm.recorder.events)

    async def wait(self, kind: type[Any], mark: int, predicate: Any = None,
                   timeout: float = EVENT) -> Any:  # noqa: ASYNC109
        old = {id(e) for e in self.vm.recorder.events[:mark]}
        return await self.vm.recorder.wait_for(
            kind, lambda e: id(e) not in old and (predicate is None or predicate(e)), timeout)

    def since(self, mark: int, *kinds: type[Any]) -> list[Event[Any]]:
        return [e for e in self.vm.recorder.events[mark:] if isinstance(e, kinds)]

    async def guest_user(self) -> str | None:
        out = await self.vm.console.run("cat /run/vmop-user", CMD)
        return out.output[0] if out.rc == 0 and out.output else None

    def agent_lines(self, since: int = 0) -> list[str]:
        return [line.split("TG-EVENT vmop ", 1)[1] for line in self.vm.console.lines[since:]
                if line.startswith("TG-EVENT vmop ")]

    async def status(self) -> VmopAgentStatus:
        assert self.vm.runner is not None
        parts = await self.vm.runner.call_all(StatusQuery())
        return next(p for p in parts if isinstance(p, VmopAgentStatus))


async def test_login_switch_logout_refusals_and_junk(
        vmdir: Path, guest_image: GuestImage, accel: AccelVerdict,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    t = Vm(vmdir, guest_image, accel)
    async with InProcessRunner(t.write("alice")) as vm:
        t.runner = vm
        # login at the agent's start (the user was configured before the VM started)
        await t.wait(VmopAgentConnected, 0, timeout=BOOT)
        assert (await t.wait(UserLoggedIn, 0)).user == "alice"
        await vm.console.wait_for(r"TG-EVENT vmop login alice$", timeout=CMD)
        assert await t.guest_user() == "alice"
        assert await t.status() == VmopAgentStatus(connected=True, logged_in_user="alice",
                                                   wanted_user="alice")

        # the same user again (another key changed): nothing is sent
        mark, console = t.mark(), vm.console.mark()
        t.powerdown = 31
        t.write("alice")
        await t.wait(ReloadPlan, mark)
        await asyncio.sleep(0.5)
        assert t.since(mark, UserLoggedIn, UserLoggedOut, LoginFailed) == []
        assert t.agent_lines(console) == []

        # switch user, log out, log the same user in again
        for user in ("bob", None, "bob"):
            mark = t.mark()
            t.write(user)
            if user is None:
                await t.wait(UserLoggedOut, mark)
            else:
                assert (await t.wait(UserLoggedIn, mark)).user == user
            assert await t.guest_user() == user
        await vm.console.wait_for(r"TG-EVENT vmop login bob$", timeout=CMD, count=2)
        assert t.agent_lines() == ["started", "login alice", "login bob", "logout", "login bob"]

        # refusals: root is always refused (504); tg.vmop_fail=451 refuses everyone
        mark = t.mark()
        t.write("root")
        failed = await t.wait(LoginFailed, mark)
        assert (failed.code, failed.text, failed.user) == (504, "Won't log in root", "root")
        assert "vmop agent refused 'login root': 504 Won't log in root" in caplog.text
        assert (await t.status()).last_error == "login root: 504 Won't log in root"
        assert await t.guest_user() == "bob"  # the session stays
        await vm.console.check("tg set vmop_fail=451", CMD)
        mark = t.mark()
        t.write("carol")
        failed = await t.wait(LoginFailed, mark)
        assert (failed.code, failed.text) == (451, "Login of carol failed")
        assert "refused 'login carol': 451 Login of carol failed" in caplog.text

        # junk lines before the answer: warnings, no crash, the answer still counts
        await vm.console.check("tg set vmop_fail= vmop_junk=1", CMD)
        mark = t.mark()
        t.write("dave")
        assert (await t.wait(UserLoggedIn, mark)).user == "dave"
        assert "unexpected line 'this line has no code' (no 3-digit code)" in caplog.text
        assert "unexpected reply 299 'a code nobody knows'" in caplog.text
        assert "a line longer than 1024 bytes" in caplog.text
        assert "thinking" not in caplog.text  # 1xx: informational, not a warning
        assert await t.guest_user() == "dave"
        assert await t.status() == VmopAgentStatus(connected=True, logged_in_user="dave",
                                                   wanted_user="dave")
        assert t.since(0, VmopAgentDisconnected) == []  # one agent session throughout
        assert await vm.stop() == 0


async def test_storm_of_changes_converges_on_the_last(
        vmdir: Path, guest_image: GuestImage, accel: AccelVerdict) -> None:
    """100 flips of loggedInUser in 5 s against an agent that answers 0.1 s late: the runner
    sends only what is still wanted (one command per answer) and ends on the last value."""
    t = Vm(vmdir, guest_image, accel, "tg.vmop_delay=0.1")
    async with InProcessRunner(t.write(None)) as vm:
        t.runner = vm
        await t.wait(UserLoggedOut, 0, timeout=BOOT)
        mark, console = t.mark(), vm.console.mark()
        users = [None if i % 2 else f"user{i % 10}" for i in range(99)] + ["final"]
        start = time.monotonic()
        for i, user in enumerate(users):
            t.write(user)
            await asyncio.sleep(max(0.0, start + (i + 1) * 0.05 - time.monotonic()))
        elapsed = time.monotonic() - start
        await t.wait(UserLoggedIn, mark, lambda e: e.user == "final")
        await asyncio.sleep(1.0)  # nothing may follow
        last = t.since(mark, UserLoggedIn, UserLoggedOut, LoginFailed)[-1]
        assert isinstance(last, UserLoggedIn) and last.user == "final"
        assert await t.guest_user() == "final"
        sent = t.agent_lines(console)
        await vm.console.wait_for(r"TG-EVENT vmop login final$", since=console, timeout=CMD)
        sent = t.agent_lines(console)
        assert sent[-1] == "login final"
        assert len(sent) < 60, sent  # far fewer commands than changes
        status = await t.status()
        assert (status.logged_in_user, status.wanted_user) == ("final", "final")
        print(f"storm: 100 changes in {elapsed:.1f} s, {len(sent)} commands reached the agent")
        assert await vm.stop() == 0


async def test_agent_that_starts_after_the_change(
        vmdir: Path, guest_image: GuestImage, accel: AccelVerdict) -> None:
    """The wish changes before the agent runs: the agent only ever hears the last one."""
    t = Vm(vmdir, guest_image, accel, "tg.vmop_start=6")
    async with InProcessRunner(t.write("alice")) as vm:
        t.runner = vm
        await vm.console.wait_ready(BOOT)
        assert t.since(0, VmopAgentConnected) == []
        mark = t.mark()
        t.write("bob")
        await t.wait(ReloadPlan, mark)
        assert (await t.status()).wanted_user == "bob"
        await t.wait(VmopAgentConnected, mark)
        assert (await t.wait(UserLoggedIn, mark)).user == "bob"
        await vm.console.wait_for(r"TG-EVENT vmop login bob$", timeout=CMD)
        assert t.agent_lines() == ["starting in 6 s", "started", "login bob"]
        assert await t.guest_user() == "bob"
        assert await vm.stop() == 0


async def test_agent_that_dies_and_restarts(
        vmdir: Path, guest_image: GuestImage, accel: AccelVerdict,
        caplog: pytest.LogCaptureFixture) -> None:
    """tg.vmop_die=2: the agent dies at its 2nd command without answering; it is restarted,
    and the runner tells the new agent the wish again (the same user: "already")."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    t = Vm(vmdir, guest_image, accel, "tg.vmop_die=2")
    async with InProcessRunner(t.write("alice"), VmopAgent(reply_timeout=5)) as vm:
        t.runner = vm
        assert (await t.wait(UserLoggedIn, 0, timeout=BOOT)).user == "alice"
        mark = t.mark()
        t.write("bob")  # the agent's 2nd command: it dies
        await t.wait(VmopAgentDisconnected, mark)
        await t.wait(VmopAgentConnected, mark)
        assert (await t.wait(UserLoggedIn, mark)).user == "bob"
        assert "'login bob' was not answered" in caplog.text
        assert await t.guest_user() == "bob"
        # a restart while bob is logged in: "201 bob is already logged in"
        await vm.console.check("tg set vmop_die=0", CMD)
        mark = t.mark()
        await vm.console.check("kill $(cat /run/vmop-agent.pid)", CMD)  # says "240 Quit"
        gone = await t.wait(VmopAgentDisconnected, mark)
        assert gone.reason == "the agent quit (240 Quit)"
        assert (await t.wait(UserLoggedIn, mark)).user == "bob"
        await vm.console.wait_for(r"TG-EVENT vmop login bob already$", timeout=CMD)
        assert t.agent_lines()[-2:] == ["started", "login bob already"]
        assert "bob is already logged in" in caplog.text
        assert len(t.since(0, VmopAgentConnected)) == 3
        assert await vm.stop() == 0
