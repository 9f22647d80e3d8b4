"""PauseController: ``vmrunner pause`` / ``vmrunner resume`` (``POST /pause``, ``/resume``).

Invariants:

* A pause is QMP ``stop`` while the VM is active (booting or booted) and not already paused;
  a resume is ``cont`` while it is paused, by the operator or by QEMU itself (an I/O error:
  ``cont`` retries the failed request). Anything else is ``rejected`` and nothing is sent.
* The PauseWatcher reports a requested pause with the reason ``requested``
  (:data:`~vmrunner.events.day2.PAUSE_REASON`): ``GET /status`` shows it, ``/ready`` is 503.
* After a resume the guest's clock, which stood still while the vCPUs did, is set through
  the guest agent (``guest-set-time``): with the host's time in ns when the RTC runs in UTC
  (``rtcBase: utc``, the default), else without a time (the guest reads its RTC, which QEMU
  keeps on the host's clock). No agent: the resume still counts, ``clock`` says so.
* Stopping the runner resumes a guest the operator paused before the shutdown ladder runs
  (priority :data:`RESUME_BEFORE_SHUTDOWN`): a paused guest cannot see the power button, and
  the operator asked to pause it, not to have it killed.
* Every request ends with a :class:`~vmrunner.events.day2.PauseChange`, fired and returned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal

from vmrunner.components.base import BusComponent
from vmrunner.core import Channel, HandlerContext, Stop, handler
from vmrunner.events import (
    ExecuteQmp,
    GuestPaused,
    GuestResumed,
    Outcome,
    ProcessExited,
    ProcessRole,
    QmpReply,
    QmpResume,
    RunnerStateChanged,
    RunState,
    StopPhase,
    VmPrepared,
)
from vmrunner.events.day2 import PAUSE_REASON, PauseChange, PauseRequested, ResumeRequested
from vmrunner.events.guest import GuestAgentRequest
from vmrunner.protocols.qmp import commands

_log = logging.getLogger(__name__)

RESUME_BEFORE_SHUTDOWN = StopPhase.SHUTDOWN_GUEST + 30
"""The ``Stop`` priority at which a requested pause is ended (before the ladder, and before
the FsFreezer's thaw, which needs a running guest)."""
RESUME_CONFIRM = 5.0
"""Seconds the shutdown waits for the PauseWatcher's ``GuestResumed`` after ``cont``."""


class PauseController(BusComponent):
    """Pauses and resumes the guest on request (see the module docstring)."""

    def __init__(self, channel: Channel | None = None, name: str | None = None) -> None:
        super().__init__(channel, name)
        self._state = RunState.STARTING
        self._requested = False
        """The operator paused the guest and it has not run since."""
        self._qemu_paused: str | None = None
        """QEMU's reason while it keeps the guest paused (``GuestPaused``)."""
        self._announced = False
        """The PauseWatcher announced the requested pause (a ``GuestResumed`` will follow)."""
        self._resumed = asyncio.Event()
        self._host_utc = True
        """``rtcBase: utc``: the host's time is the guest's RTC time."""

    @handler
    def on_state(self, event: RunnerStateChanged) -> None:
        self._state = event.new

    @handler
    def on_prepared(self, event: VmPrepared) -> None:
        self._host_utc = event.plan.config.vm.rtc_base == "utc"

    @handler(priority=-10)  # after the PowerdownHandler has seen it
    def on_paused(self, event: GuestPaused | GuestResumed) -> None:
        if isinstance(event, GuestResumed):
            self._qemu_paused = None
            self._announced = False
            self._resumed.set()
        elif event.reason == PAUSE_REASON:
            self._announced = True
        else:
            self._qemu_paused = event.reason

    @handler(priority=-10)
    def on_resume_event(self, event: QmpResume) -> None:
        self._requested = False
        if not self._announced:  # no GuestResumed will follow
            self._resumed.set()

    @handler
    def on_exited(self, event: ProcessExited) -> None:
        if event.name == ProcessRole.QEMU:
            self._requested = False
            self._announced = False
            self._qemu_paused = None
            self._resumed.set()

    def _report(self, action: Literal["pause", "resume"], outcome: Outcome, detail: str = "",
                clock: str = "") -> PauseChange:
        level = logging.INFO if outcome is Outcome.APPLIED else logging.WARNING
        _log.log(level, "%s %s%s%s", action, outcome.value, f": {detail}" if detail else "",
                 f" (guest clock: {clock})" if clock else "")
        change = PauseChange(action=action, outcome=outcome, detail=detail, clock=clock)
        self.fire(change)
        return change

    async def _qmp(self, command: commands.QmpCommand) -> str | None:
        """Run ``command`` on a fresh pipeline; the error text, or None when it succeeded."""
        reply: QmpReply | None = await self.call(ExecuteQmp(command=command))
        if reply is None:
            return "no QMP monitor answered"
        return None if reply.error is None else str(reply.error)

    @handler
    async def on_pause(self, event: PauseRequested) -> PauseChange:
        if not self._state.vm_active:
            return self._report("pause", Outcome.REJECTED,
                                f"the VM is {self._state.value}, not running")
        if self._requested or self._qemu_paused is not None:
            by = "the operator" if self._requested else f"QEMU ({self._qemu_paused})"
            return self._report("pause", Outcome.REJECTED, f"the guest is already paused by {by}")
        self._requested = True
        error = await self._qmp(commands.Stop())
        if error is not None:
            self._requested = False
            return self._report("pause", Outcome.FAILED, f"QEMU: {error}")
        return self._report("pause", Outcome.APPLIED, "paused by the operator")

    @handler
    async def on_resume(self, event: ResumeRequested) -> PauseChange:
        if not self._state.vm_active:
            return self._report("resume", Outcome.REJECTED,
                                f"the VM is {self._state.value}, not running")
        if not self._requested and self._qemu_paused is None:
            return self._report("resume", Outcome.REJECTED, "the guest is not paused")
        was = "paused by the operator" if self._requested else f"paused by QEMU " \
            f"({self._qemu_paused})"
        error = await self._qmp(commands.Cont())
        if error is not None:
            return self._report("resume", Outcome.FAILED, f"QEMU: {error}")
        return self._report("resume", Outcome.APPLIED, f"was {was}", await self._sync_clock())

    async def _sync_clock(self) -> str:
        """``guest-set-time`` (see the module docstring); how it went, in a few words."""
        arguments = {"time": time.time_ns()} if self._host_utc else {}
        answer = await self.call(GuestAgentRequest(command="guest-set-time",
                                                   arguments=arguments))
        if answer is None:
            return "no guest agent component"
        if answer.error is not None:
            return f"not synced: {answer.error}"
        return "synced to the host's time" if arguments else "synced from the RTC"

    @handler(priority=RESUME_BEFORE_SHUTDOWN)
    def on_stop(self, event: Stop, ctx: HandlerContext[None]) -> None:
        """Suspends the ``Stop`` (later Stop handlers wait) while QEMU's ``RESUME``, which
        comes on the pipeline the ``Stop`` may be on, is handled."""
        if not self._requested:
            return
        resumer = ctx.suspend()
        task = self.spawn(self._resume_for_shutdown(), name="resume-for-shutdown")
        task.add_done_callback(lambda _t: resumer.resume())

    async def _resume_for_shutdown(self) -> None:
        _log.info("the operator paused the guest: resuming it so that it can shut down")
        self._resumed.clear()
        error = await self._qmp(commands.Cont())
        if error is not None:
            _log.warning("cannot resume the paused guest (QEMU: %s): the shutdown ladder will "
                         "terminate QEMU", error)
            return
        try:  # the PowerdownHandler must have seen GuestResumed before its ladder starts
            async with asyncio.timeout(RESUME_CONFIRM):
                await self._resumed.wait()
        except TimeoutError:
            _log.warning("no RESUME from QEMU %g s after cont", RESUME_CONFIRM)

__all__ = ["PAUSE_REASON", "PauseController"]
