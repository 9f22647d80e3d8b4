"""RamController: the guest's RAM follows ``currentRam`` through the virtio balloon.

On every ``ConfigureQemu`` whose ``currentRam`` (unset = ``maximumRam``) differs from the
last target sent, it sends ``balloon`` and reports a :class:`RamChange`:

* ``failed`` when QEMU rejects the command (e.g. no balloon device);
* ``pending`` once QEMU accepted it and the size QEMU reports is not yet there;
* ``applied`` when the size QEMU reports (``BALLOON_CHANGE``, ``query-balloon``) is within
  :func:`ram_tolerance` of the target;
* ``not-reached`` when it is not within the tolerance after ``settle_timeout`` seconds
  (``boot_timeout`` for the target set before ``cont``, which waits for the guest to boot
  and load its balloon driver). A guest without a balloon driver ends here: QEMU accepts
  the command and the size never moves. Not retried; if the size gets there later, a
  late ``applied`` follows.

**Confirmed at once.** QEMU sends at most one ``BALLOON_CHANGE`` a second, so the event alone
reports a reached size up to a second after the guest got there. While a change is pending
the controller therefore also asks ``query-balloon`` every ``poll_interval`` seconds, as long
as the size moved within the last ``poll_quiet`` seconds (a live change's command counts as a
move; the target sent before ``cont`` waits for the first event, the guest has to boot); a
guest whose size stands still (no driver yet, still booting) is left to the event, whose
arrival resumes the polling. The polling is part of the change's task: it ends with the
change (reached, timed out, superseded) and when QEMU's monitor closes.

The initial target (below ``maximumRam``) is sent before ``cont``: the initial
``ConfigureQemu`` is held until QEMU has answered ``balloon``, not until the guest got there.
"""

from __future__ import annotations

import asyncio
import logging
import math

from vmrunner.components.base import BusComponent
from vmrunner.config.model import RunnerConfig
from vmrunner.config.sizes import MIB, ram_tolerance, reached
from vmrunner.core import Channel, CompletionLock, HandlerContext, handler
from vmrunner.core.waiting import first_of
from vmrunner.events import (
    ConfigureQemu,
    MonitorClosed,
    Outcome,
    QmpBalloonChange,
    RamChange,
    RunState,
)
from vmrunner.events.lifecycle import VmPrepared
from vmrunner.events.status import RamStatus, StatusQuery
from vmrunner.protocols.qmp import commands

_log = logging.getLogger(__name__)

def _mib(size: int | None) -> str:
    return "?" if size is None else f"{size / MIB:.0f} MiB"


class RamController(BusComponent):
    """Balloon target = ``currentRam``; requested and actual size tracked and reported.

    Args:
        settle_timeout: seconds a live change may take to get within the tolerance.
        boot_timeout: the same for the target set before ``cont`` (includes the boot).
        poll_interval: seconds between ``query-balloon`` while a change is pending and the
            size moves; ``0`` waits for ``BALLOON_CHANGE`` only (QEMU: one a second).
        poll_quiet: the polling pauses once the size has not moved for this many seconds,
            until the next ``BALLOON_CHANGE``.
    """

    def __init__(self, channel: Channel | None = None, name: str | None = None, *,
                 settle_timeout: float = 30.0, boot_timeout: float = 120.0,
                 poll_interval: float = 0.05, poll_quiet: float = 2.0) -> None:
        super().__init__(channel, name)
        self.settle_timeout = settle_timeout
        self.boot_timeout = boot_timeout
        self.poll_interval = poll_interval
        self.poll_quiet = poll_quiet
        self.requested: int | None = None
        """The last target sent (``None``: none; the guest has ``maximumRam``)."""
        self.actual: int | None = None
        """The guest's size as QEMU last reported it."""
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._late = False
        self._status_maximum: int | None = None
        self._status_target: int | None = None
        """``currentRam`` of the configuration, until a balloon target has been set."""
        self._status_outcome: Outcome | None = None
        self._status_reported = False
        """Whether QEMU has reported a size (before that, :attr:`actual` is only assumed)."""

    @handler
    def on_configure(self, event: ConfigureQemu, ctx: HandlerContext[None]) -> None:
        if event.state is RunState.STOPPED:
            return
        vm = event.config.vm
        target = vm.effective_current_ram
        if event.initial:
            self.actual = vm.maximum_ram
            if target >= vm.maximum_ram:
                self.requested = target
                return
        elif target == self.requested:
            return
        self._supersede()
        lock = ctx.hold() if event.initial else None
        self._task = self.spawn(self._apply(target, event.initial, lock), name="ram-balloon")

    def _supersede(self) -> None:
        task, self._task = self._task, None
        self._late = False
        if task is not None and not task.done():
            task.cancel()
            if self.requested is not None:
                self._report(self.requested, Outcome.SUPERSEDED, "a newer currentRam arrived")

    def _report(self, requested: int, outcome: Outcome, detail: str = "") -> None:
        level = logging.WARNING if outcome in (Outcome.NOT_REACHED, Outcome.FAILED,
                                                Outcome.REJECTED) else logging.INFO
        _log.log(level, "RAM %s: balloon target %s, actual %s%s", outcome.value,
                 _mib(requested), _mib(self.actual), f" ({detail})" if detail else "")
        self.fire(RamChange(requested=requested, actual=self.actual, outcome=outcome,
                            detail=detail))

    async def _apply(self, target: int, initial: bool, lock: CompletionLock | None) -> None:
        try:
            self.requested = target
            reply = await self.execute(commands.Balloon(value=target))
        finally:
            if lock is not None:
                lock.release()
        if reply.error is not None:
            self._report(target, Outcome.FAILED, f"QEMU: {reply.error}")
            return
        await self._query()
        if reached(target, self.actual):
            self._report(target, Outcome.APPLIED)
            return
        self._report(target, Outcome.PENDING, "waiting for the guest's balloon driver")
        timeout = self.boot_timeout if initial else self.settle_timeout
        await self._settle(target, timeout, moving=not initial)
        await self._query()
        if reached(target, self.actual):
            self._report(target, Outcome.APPLIED)
        else:
            self._late = True
            self._report(target, Outcome.NOT_REACHED,
                         f"not within {_mib(ram_tolerance(target))} after {timeout:g} s; "
                         "is the guest's balloon driver loaded? not retried")

    async def _settle(self, target: int, seconds: float, *, moving: bool) -> None:
        """Until :attr:`actual` is within the tolerance of ``target`` or ``seconds`` passed:
        woken by ``BALLOON_CHANGE``, and asking ``query-balloon`` every ``poll_interval`` s
        while the size moved within the last ``poll_quiet`` s (``moving``: the command counts
        as a move; not before ``cont``, when the guest has yet to boot)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        moved_at, last = (loop.time() if moving else -math.inf), self.actual
        while not reached(target, self.actual):
            now = loop.time()
            if now >= deadline:
                return
            polling = self.poll_interval > 0 and now - moved_at < self.poll_quiet
            wait = min(self.poll_interval, deadline - now) if polling else deadline - now
            self._changed.clear()
            if not await first_of(self._changed.wait(), timeout=wait) and polling:
                await self._query()
            if self.actual != last:
                moved_at, last = loop.time(), self.actual

    async def _query(self) -> None:
        reply = await self.execute(commands.QueryBalloon())
        if reply.error is None and isinstance(reply.value, dict) and "actual" in reply.value:
            self.actual = int(reply.value["actual"])
        else:
            _log.debug("query-balloon: %s", reply.error or reply.value)

    @handler
    def on_balloon_change(self, event: QmpBalloonChange) -> None:
        self.actual = event.actual
        self._changed.set()
        if self._late and self.requested is not None and reached(self.requested, self.actual):
            self._late = False
            self._report(self.requested, Outcome.APPLIED, "reached after the wait")

    @handler
    def on_monitor_closed(self, event: MonitorClosed) -> None:
        task, self._task = self._task, None
        self._late = False
        if task is not None and not task.done():
            task.cancel()

    # -- status (GET /status) ----------------------------------------------------------------

    @handler
    def on_status_prepared(self, event: VmPrepared) -> None:
        self._status_config(event.plan.config)

    @handler
    def on_status_configure(self, event: ConfigureQemu) -> None:
        self._status_config(event.config)

    def _status_config(self, config: RunnerConfig) -> None:
        self._status_maximum = config.vm.maximum_ram
        self._status_target = config.vm.effective_current_ram

    @handler
    def on_status_balloon(self, event: QmpBalloonChange) -> None:
        self._status_reported = True

    @handler
    def on_status_reported(self, event: RamChange) -> None:
        self._status_reported = True
        self._status_outcome = event.outcome

    @handler
    def on_status_query(self, event: StatusQuery) -> RamStatus:
        return RamStatus(maximum=self._status_maximum,
                         requested=self._status_target if self.requested is None
                         else self.requested,
                         actual=self.actual if self._status_reported else None,
                         outcome=self._status_outcome)
