"""FsFreezer: ``vmrunner fsfreeze`` / ``vmrunner fsthaw`` (``POST /fsfreeze``, ``/fsthaw``).

Freezes the guest's filesystems through qemu-ga (``guest-fsfreeze-freeze``) for a consistent
backup of its disks, and thaws them (``guest-fsfreeze-thaw``); ``guest-fsfreeze-status`` is
asked after each and reported.

Invariants (never leave a guest frozen):

* Every freeze has a deadline (``timeout`` s, at most :data:`MAX_TIMEOUT`): the filesystems are
  thawed then at the latest (trigger ``deadline``), logged at WARNING; the deadline is armed
  before the agent is asked and kept unless the agent says ``thawed`` (a freeze whose answer
  timed out may still happen). An automatic thaw the agent does not answer is retried every
  :data:`THAW_RETRY` s; one due while the guest is paused waits for it to run again.
* Freeze and thaw requests while the guest is paused are ``rejected`` (its agent cannot
  answer, and a queued freeze would run at the resume).
* Stopping the runner thaws first (trigger ``stop``, ``Stop`` priority :data:`THAW_ON_STOP`,
  before the shutdown ladder: a frozen guest cannot sync its disks to power off, and qemu-ga
  refuses ``guest-shutdown`` while frozen); a guest the operator paused is resumed before
  (the PauseController's higher priority).
* The freeze is not bound to the API connection that asked: backup tools freeze in one call
  and thaw in another; the deadline is the guard.
* A second freeze while frozen is ``rejected`` (the deadline stays); a thaw when nothing is
  frozen still asks the agent (an agent restarted by the guest may have lost track) and is
  ``applied`` with 0 filesystems.
* Each freeze and thaw ends with a :class:`~vmrunner.events.day2.FsFreezeChange`, fired and
  returned; QEMU's exit forgets the frozen state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Literal

from vmrunner.components.base import BusComponent
from vmrunner.core import Channel, HandlerContext, Stop, handler
from vmrunner.core.tasks import Timer
from vmrunner.events import (
    GuestPaused,
    GuestResumed,
    Outcome,
    ProcessExited,
    ProcessRole,
    RunnerStateChanged,
    RunState,
    StopPhase,
)
from vmrunner.events.day2 import (
    MAX_FREEZE_TIMEOUT,
    FsFreezeChange,
    FsFreezeRequested,
    FsThawRequested,
)
from vmrunner.events.guest import GuestAgentAnswer, GuestAgentRequest

_log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0
"""Seconds a freeze lasts at most unless the request says otherwise."""
MAX_TIMEOUT = MAX_FREEZE_TIMEOUT
THAW_ON_STOP = StopPhase.SHUTDOWN_GUEST + 20
"""The ``Stop`` priority of the thaw: before the shutdown ladder."""
THAW_RETRY = 5.0
"""Seconds between attempts of an automatic thaw the agent did not answer."""
AGENT_TIMEOUT = 60.0
"""Seconds the agent may take to freeze or thaw (a freeze first syncs every filesystem, and
the guest's fsfreeze hook runs before it: both can be slow on a busy guest)."""

Trigger = Literal["requested", "deadline", "stop"]


class FsFreezer(BusComponent):
    """Freezes and thaws the guest's filesystems (see the module docstring)."""

    def __init__(self, channel: Channel | None = None, name: str | None = None) -> None:
        super().__init__(channel, name)
        self._state = RunState.STARTING
        self._thaw_at: float | None = None
        """Epoch seconds of the automatic thaw while frozen; None: not frozen."""
        self._timer: Timer | None = None
        self._one_at_a_time = asyncio.Lock()
        self._paused: str | None = None
        """Why the guest is paused (``GuestPaused``), None while it runs."""
        self._thaw_due = False
        """The deadline passed while the guest was paused: thaw when it runs again."""

    @handler
    def on_state(self, event: RunnerStateChanged) -> None:
        self._state = event.new

    @handler
    def on_paused(self, event: GuestPaused | GuestResumed) -> None:
        self._paused = event.reason if isinstance(event, GuestPaused) else None
        if self._paused is None and self._thaw_due:
            self._thaw_due = False
            self.spawn(self._auto_thaw(), name="fsthaw-after-resume")

    @handler
    def on_exited(self, event: ProcessExited) -> None:
        if event.name == ProcessRole.QEMU:
            self._forget()

    def _forget(self) -> None:
        self._thaw_at = None
        self._thaw_due = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _agent(self, command: str, arguments: dict[str, Any] | None = None,
                     agent_timeout: float | None = None) -> GuestAgentAnswer:
        """The agent's answer to ``command`` (``agent_timeout``: the GuestAgentRequest's)."""
        answer = await self.call(GuestAgentRequest(command=command, arguments=arguments or {},
                                                   timeout=agent_timeout))
        return answer if answer is not None else GuestAgentAnswer(error="no guest agent")

    async def _status(self) -> str:
        answer = await self._agent("guest-fsfreeze-status")
        return str(answer.value) if answer.error is None else ""

    def _report(self, action: Literal["freeze", "thaw"], outcome: Outcome, *,
                trigger: Trigger = "requested", filesystems: int = 0, status: str = "",
                detail: str = "") -> FsFreezeChange:
        level = logging.INFO if outcome is Outcome.APPLIED and trigger == "requested" \
            else logging.WARNING
        _log.log(level, "filesystem %s %s (%s): %d filesystem(s)%s%s", action, outcome.value,
                 trigger, filesystems, f", agent says {status}" if status else "",
                 f"; {detail}" if detail else "")
        change = FsFreezeChange(action=action, outcome=outcome, trigger=trigger,
                                filesystems=filesystems, status=status,
                                thaw_at=self._thaw_at, detail=detail)
        self.fire(change)
        return change

    @handler
    async def on_freeze(self, event: FsFreezeRequested) -> FsFreezeChange:
        if not self._state.vm_active:
            return self._report("freeze", Outcome.REJECTED,
                                detail=f"the VM is {self._state.value}, not running")
        if self._paused is not None:
            return self._report("freeze", Outcome.REJECTED,
                                detail=f"the guest is paused ({self._paused})")
        if not 0 < event.timeout <= MAX_TIMEOUT:
            return self._report("freeze", Outcome.REJECTED, detail=f"timeout {event.timeout:g}"
                                f" s: must be more than 0 and at most {MAX_TIMEOUT:g}")
        async with self._one_at_a_time:
            if self._thaw_at is not None:
                return self._report("freeze", Outcome.REJECTED, status="frozen",
                                    detail="already frozen; thawed in "
                                    f"{self._thaw_at - time.time():.0f} s at the latest")
            # the deadline is armed before the agent is asked: a freeze whose answer is lost
            # (timeout) may still have frozen the guest
            self._thaw_at = time.time() + event.timeout
            self._timer = self.schedule(event.timeout, self._auto_thaw)
            answer = await self._agent("guest-fsfreeze-freeze", agent_timeout=AGENT_TIMEOUT)
            status = await self._status()
            if answer.error is not None:
                if status == "thawed":
                    self._forget()
                return self._report("freeze", Outcome.FAILED, status=status,
                                    detail=f"guest agent: {answer.error}")
            count = answer.value if isinstance(answer.value, int) else 0
            return self._report("freeze", Outcome.APPLIED, filesystems=count, status=status,
                                detail=f"thawed automatically after {event.timeout:g} s")

    @handler
    async def on_thaw(self, event: FsThawRequested) -> FsFreezeChange:
        if not self._state.vm_active:
            return self._report("thaw", Outcome.REJECTED,
                                detail=f"the VM is {self._state.value}, not running")
        if self._paused is not None:
            return self._report("thaw", Outcome.REJECTED,
                                detail=f"the guest is paused ({self._paused}); it is thawed at "
                                "the deadline once it runs again")
        return await self._thaw("requested")

    async def _thaw(self, trigger: Trigger) -> FsFreezeChange:
        async with self._one_at_a_time:
            answer = await self._agent("guest-fsfreeze-thaw", agent_timeout=AGENT_TIMEOUT)
            status = await self._status()
            if answer.error is not None:
                return self._report("thaw", Outcome.FAILED, trigger=trigger, status=status,
                                    detail=f"guest agent: {answer.error}")
            self._forget()
            count = answer.value if isinstance(answer.value, int) else 0
            return self._report("thaw", Outcome.APPLIED, trigger=trigger, filesystems=count,
                                status=status)

    async def _auto_thaw(self) -> None:
        self._timer = None
        if self._thaw_at is None:
            return
        if self._paused is not None:
            _log.warning("the freeze's deadline passed while the guest is paused (%s): "
                         "thawing when it runs again", self._paused)
            self._thaw_due = True
            return
        _log.warning("the guest's filesystems were not thawed in time: thawing them now")
        change = await self._thaw("deadline")
        if change.outcome is not Outcome.APPLIED and self._thaw_at is not None:
            self._timer = self.schedule(THAW_RETRY, self._auto_thaw)

    @handler(priority=THAW_ON_STOP)
    def on_stop(self, event: Stop, ctx: HandlerContext[None]) -> None:
        """Suspends the ``Stop`` (the ladder waits) while the thaw runs on its own task."""
        if self._thaw_at is None:
            return
        resumer = ctx.suspend()
        task = self.spawn(self._thaw("stop"), name="fsthaw-on-stop")
        task.add_done_callback(lambda _t: resumer.resume())
