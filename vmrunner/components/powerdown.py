"""PowerdownHandler: turns ``Stop`` into a graceful guest shutdown with escalation.

The ladder (each rung is a ``ShutdownRung`` event and a log line):

1. ``guest-agent``: ``guest-shutdown`` through qemu-ga, if it is connected, responsive and
   allowed (also when the agent only comes up, or answers again, while the button is being
   pressed). A hung agent (``GuestAgentUnresponsive``, or no answer to the GuestAgent's
   timed ping before ``guest-shutdown``) is skipped: the ACPI button follows at once;
2. ``powerdown``: ``system_powerdown`` (ACPI power button), repeated every
   ``repeat_interval`` s while waiting (a booting guest misses the first press). The rung
   is published as the first press is sent, not when QEMU answers it; a QEMU that does not
   answer within ``UNANSWERED_WARNING`` s gets a WARNING naming the time left (frozen QEMU);
3. ``terminate``: at the deadline (Stop + ``powerdownTimeout``; moved when the value changes
   while waiting) SIGTERM to QEMU, exit code ``FORCED_STOP``;
4. ``kill``: SIGKILL ``kill_grace`` s later (done by the ProcessManager's ladder);
5. ``cleanup``: QEMU is gone; swtpm and the other children are stopped by later Stop handlers.

A VM that never ran (``cont`` not sent yet) goes straight to ``terminate``, exit code
unchanged. A guest paused by QEMU (``GuestPaused``: a disk error with the ``stop`` action, a
panic) cannot power off: the ladder skips to ``terminate`` at once (exit ``FORCED_STOP``),
also when the pause comes while it waits. A guest the operator paused (reason ``requested``)
is resumed before the ladder starts, by the PauseController's higher-priority ``Stop`` handler.

Its own node ``/Runner/PowerdownHandler`` may set ``useGuestAgent`` (default true),
``repeatInterval`` (s, default 5) and ``killGrace`` (s, default 5); keys given there
override the constructor's arguments, also while a shutdown runs.

Every ``Stop`` fired while the ladder runs is held until QEMU is gone, so nothing
downstream (the ProcessManager's final kill) can skip the graceful wait.
"""

from __future__ import annotations

import asyncio
import logging
import time

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from vmrunner.components.base import BusComponent
from vmrunner.components.exit_codes import ExitCode
from vmrunner.core import (
    Channel,
    Configurable,
    HandlerContext,
    Resumer,
    Stop,
    handler,
)
from vmrunner.core.waiting import first_of
from vmrunner.events import (
    ConfigureQemu,
    EscalateShutdown,
    GuestAgentConnected,
    GuestAgentDisconnected,
    GuestPaused,
    GuestResumed,
    GuestShutdown,
    ProcessExited,
    ProcessRole,
    ProcessStarted,
    QmpReply,
    Rung,
    ShutdownRung,
    TerminateProcess,
    VmContinued,
    VmPrepared,
)
from vmrunner.events.guest_facts import GuestAgentResponsive, GuestAgentUnresponsive
from vmrunner.events.lifecycle import StopPhase
from vmrunner.events.status import ShutdownStatus, StatusQuery
from vmrunner.protocols.qmp import commands

_log = logging.getLogger(__name__)

UNANSWERED_WARNING = 2.0
"""Seconds without QEMU's answer to ``system_powerdown`` before a WARNING says so."""


class PowerdownConfig(BaseModel):
    """``/Runner/PowerdownHandler``: how the shutdown ladder climbs."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True,
                              extra="ignore")

    use_guest_agent: bool = True
    """Ask qemu-ga (``guest-shutdown``) first when it is connected."""
    repeat_interval: float = Field(5.0, gt=0)
    """Seconds between ``system_powerdown`` presses while waiting."""
    kill_grace: float = Field(5.0, ge=0)
    """Seconds between SIGTERM and SIGKILL to QEMU after the deadline."""


class PowerdownHandler(Configurable[PowerdownConfig], BusComponent):
    """The shutdown ladder (see the module docstring)."""

    config_model = PowerdownConfig

    def __init__(self, channel: Channel | None = None, name: str | None = None, *,
                 use_guest_agent: bool = True, repeat_interval: float = 5.0,
                 kill_grace: float = 5.0) -> None:
        super().__init__(channel, name)
        self.use_guest_agent = use_guest_agent
        self.repeat_interval = repeat_interval
        self.kill_grace = kill_grace
        self.timeout = 900.0
        self._qemu_running = False
        self._continued = False
        self._paused: str | None = None
        """QEMU's reason while it keeps the guest paused (``GuestPaused``)."""
        self._agent = False
        self._agent_hung = False
        """qemu-ga's port is open but it does not answer (``GuestAgentUnresponsive``)."""
        self._started_at: float | None = None
        self._escalated = False
        self._agent_asked = False
        self._wake = asyncio.Event()
        self._gone = asyncio.Event()
        self._resumers: list[Resumer] = []
        self._ladder: asyncio.Task[None] | None = None
        self.rungs: tuple[Rung, ...] = ()
        """The rungs this ladder has reached, in order."""
        self._rung_detail = ""

    def on_config(self, config: PowerdownConfig, initial: bool) -> None:
        """Keys given in the file override the constructor's arguments."""
        for name in config.model_fields_set:
            setattr(self, name, getattr(config, name))
        self._wake.set()

    # -- what the ladder needs to know ------------------------------------------------------

    @handler
    def on_prepared(self, event: VmPrepared) -> None:
        self.timeout = float(event.plan.config.vm.powerdown_timeout)

    @handler
    def on_configure(self, event: ConfigureQemu) -> None:
        new = float(event.config.vm.powerdown_timeout)
        if new == self.timeout:
            return
        self.timeout = new
        if self._started_at is not None and not self._gone.is_set():
            _log.info("powerdownTimeout changed to %g s: forced stop now due in %.1f s",
                      new, max(0.0, self.remaining or 0.0))
            self._wake.set()

    @handler
    def on_process_started(self, event: ProcessStarted) -> None:
        if event.name == ProcessRole.QEMU:
            self._qemu_running = True
            self._gone.clear()

    @handler
    def on_process_exited(self, event: ProcessExited) -> None:
        if event.name == ProcessRole.QEMU:
            self._qemu_running = False
            self._gone.set()

    @handler
    def on_continued(self, event: VmContinued) -> None:
        self._continued = True

    @handler
    def on_paused(self, event: GuestPaused | GuestResumed) -> None:
        self._paused = event.reason if isinstance(event, GuestPaused) else None
        if self._paused is not None and self.in_progress:
            self._wake.set()

    @handler
    def on_agent(self, event: GuestAgentConnected | GuestAgentDisconnected
                 | GuestAgentResponsive | GuestAgentUnresponsive) -> None:
        self._agent = isinstance(event, GuestAgentConnected | GuestAgentResponsive)
        self._agent_hung = isinstance(event, GuestAgentUnresponsive)
        if self._agent and self.in_progress:
            self._wake.set()

    @property
    def deadline(self) -> float | None:
        """``time.monotonic()`` at which the graceful phase ends (while shutting down)."""
        return None if self._started_at is None else self._started_at + self.timeout

    @property
    def remaining(self) -> float | None:
        """Seconds left in the graceful phase (while shutting down)."""
        deadline = self.deadline
        return None if deadline is None else deadline - time.monotonic()

    @property
    def in_progress(self) -> bool:
        """Whether the ladder runs."""
        return self._ladder is not None and not self._ladder.done()

    # -- the ladder ----------------------------------------------------------------------

    @handler(priority=StopPhase.SHUTDOWN_GUEST)
    def on_stop(self, event: Stop, ctx: HandlerContext[None]) -> None:
        if self.in_progress:
            self._resumers.append(ctx.suspend())
            return
        if not self._qemu_running:
            return
        self._resumers.append(ctx.suspend())
        self._started_at = time.monotonic()
        self._ladder = self.spawn(self._run_ladder(), name="shutdown-ladder")
        self._ladder.add_done_callback(lambda _t: self._resume_all())

    @handler
    def on_escalate(self, event: EscalateShutdown) -> None:
        if self.in_progress and not self._escalated:
            _log.warning("escalating the shutdown: %s", event.reason)
            self._escalated = True
            self._wake.set()

    def _resume_all(self) -> None:
        resumers, self._resumers = self._resumers, []
        for resumer in resumers:
            resumer.resume()

    def _rung(self, rung: Rung, detail: str) -> None:
        remaining = self.remaining
        left = "" if remaining is None else f" ({max(0.0, remaining):.1f} s to the deadline)"
        _log.info("shutdown rung %s: %s%s", rung.value, detail, left)
        self.rungs = (*self.rungs, rung)
        self._rung_detail = detail
        self.fire(ShutdownRung(rung=rung, deadline=self.deadline, detail=detail))

    async def _run_ladder(self) -> None:
        if self._continued:
            await self._graceful()
        else:
            self._rung(Rung.TERMINATE, "the VM has not run yet: SIGTERM to QEMU")
        if not self._gone.is_set():
            if self._continued:
                self.set_exit_code(ExitCode.FORCED_STOP)
                self._rung(Rung.TERMINATE, "the guest did not power off: SIGTERM to QEMU"
                           if self._paused is None else
                           f"QEMU has paused the guest ({self._paused}), it cannot power "
                           "off: SIGTERM to QEMU")
            self.schedule(self.kill_grace, self._kill_rung)
            await self.fire(TerminateProcess(name=ProcessRole.QEMU, grace=self.kill_grace))
        await self._gone.wait()
        self._rung(Rung.CLEANUP, "QEMU has exited; stopping the other processes")

    def _kill_rung(self) -> None:
        if not self._gone.is_set():
            self._rung(Rung.KILL, f"QEMU still running {self.kill_grace:g} s after SIGTERM")

    async def _ask_agent(self) -> bool:
        """``guest-shutdown`` through qemu-ga; True if the agent took it."""
        self._agent_asked = True
        self._rung(Rung.GUEST_AGENT, "guest-shutdown to qemu-ga")
        request = self.fire(GuestShutdown())
        await first_of(request.wait(), self._gone.wait())
        return request.done and request.results() == [True]

    async def _answered(self, command: commands.QmpCommand, deadline: float) -> QmpReply | None:
        """Run ``command`` and return its reply; ``None`` when ``deadline``, QEMU's exit or a
        wake-up (escalation) came first: a hanging QEMU must not stop the ladder. Without an
        answer after ``UNANSWERED_WARNING`` s, a WARNING says so (and the status detail)."""
        sent = time.monotonic()
        answer = asyncio.ensure_future(self.execute(command))
        warn_at = sent + UNANSWERED_WARNING
        try:
            done = await first_of(asyncio.shield(answer), self._gone.wait(), self._wake.wait(),
                                  timeout=min(deadline, warn_at) - sent)
        except asyncio.CancelledError:
            answer.cancel()
            raise
        if answer.done():
            return answer.result()
        if done or warn_at >= deadline:
            await first_of(answer, timeout=0)  # cancels it and waits for its end
            return None
        waited = time.monotonic() - sent
        _log.warning("QEMU has not answered %s for %.0f s (frozen or overloaded?); the forced "
                     "stop follows in %.1f s", command.name, waited, deadline - time.monotonic())
        self._rung_detail = (f"{command.name} sent; QEMU has not answered for {waited:.0f} s "
                             "(forced stop at the deadline)")
        done = await first_of(answer, self._gone.wait(), self._wake.wait(),
                              timeout=deadline - time.monotonic())
        return answer.result() if answer in done else None

    async def _graceful(self) -> None:
        presses = 0
        next_press = time.monotonic()
        while not self._gone.is_set() and not self._escalated and self._paused is None:
            self._wake.clear()
            if self.use_guest_agent and self._agent and not self._agent_asked:
                # also when the agent comes up while the button is being pressed (booting)
                if await self._ask_agent():
                    next_press = max(next_press, time.monotonic() + self.repeat_interval)
                continue
            now = time.monotonic()
            deadline = self.deadline
            assert deadline is not None
            if now >= deadline:
                return
            if now >= next_press:
                presses += 1
                if presses == 1:  # at once: the operator sees why the runner waits
                    hung = ("qemu-ga does not answer, not asked; " if self._agent_hung
                            and self.use_guest_agent else "")
                    self._rung(Rung.POWERDOWN, f"{hung}system_powerdown (ACPI power button) "
                               "sent; QEMU has not answered yet")
                reply = await self._answered(commands.SystemPowerdown(), deadline)
                if reply is None:
                    next_press = time.monotonic() + self.repeat_interval
                    if time.monotonic() >= deadline:
                        _log.warning("system_powerdown not answered before the deadline "
                                     "(QEMU does not respond)")
                    continue  # the deadline passed, or escalation / QEMU's exit woke us
                if reply.error is not None:
                    _log.warning("system_powerdown failed: %s", reply.error)
                if presses == 1:
                    self._rung_detail = (
                        f"system_powerdown failed: {reply.error}" if reply.error is not None
                        else "system_powerdown (ACPI power button) answered; waiting for the "
                        "guest to power off")
                else:
                    _log.info("system_powerdown again (press %d, %.1f s left)",
                              presses, deadline - time.monotonic())
                next_press = time.monotonic() + self.repeat_interval
                continue
            await first_of(self._gone.wait(), self._wake.wait(),
                           timeout=min(next_press, deadline) - now)

    # -- status (GET /status) ----------------------------------------------------------------

    @handler
    def on_status_query(self, event: StatusQuery) -> ShutdownStatus:
        rungs = self.rungs
        return ShutdownStatus(rung=rungs[-1] if rungs else None, rungs=rungs,
                              detail=self._rung_detail, deadline=self.deadline,
                              remaining=self.remaining)
