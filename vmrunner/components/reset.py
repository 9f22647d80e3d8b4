"""ResetController: each increment of ``/Runner/resetCounter`` resets the VM.

The counter's value in the initial ``ConfigureQemu`` (the configuration QEMU was started
with) is the baseline, so the first increment after a start resets too. Each later
``ConfigureQemu`` compares with the last value seen (:func:`reset_requested`):

* greater → ``system_reset``;
* ``0`` (or less) after a greater value → only remembered: VM-Operator's manager keeps its
  count in memory and writes 0 again after it restarts;
* smaller but still positive → ``system_reset`` as well: the manager restarted *and* counted
  resets since, and its 0 was never seen (kubelet delivers a ConfigMap's updates with a delay
  and may skip intermediate versions), so the request must not be swallowed;
* equal → nothing.

A reset is reported as a :class:`ResetChange` (``applied`` when QEMU's ``RESET`` event follows
within ``confirm_timeout`` s, ``not-reached`` otherwise, ``failed`` when QEMU rejects the
command, ``rejected`` while the VM is shutting down). A counter that appears (was unset) or
disappears is only remembered: set it first, then increment it. Several increments that arrive
in one configuration change reset once.

A :class:`~vmrunner.events.ResetRequested` (``vmrunner reset``, ``POST /reset``) resets the
same way, one at a time with the counter's resets, and is answered with its ``ResetChange``
(``source="api"``). The CpuController's QEMU 7.2 guard sees it first (higher priority) and may
reject it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from vmrunner.components.base import BusComponent
from vmrunner.core import Channel, handler
from vmrunner.events import (
    ConfigureQemu,
    ExecuteQmp,
    Outcome,
    QmpReply,
    QmpReset,
    ResetChange,
    ResetRequested,
    RunnerStateChanged,
    RunState,
)
from vmrunner.protocols.qmp import commands

_log = logging.getLogger(__name__)


def reset_requested(previous: int | None, counter: int | None) -> bool:
    """Whether a change of ``resetCounter`` from ``previous`` to ``counter`` asks for a
    reset (the rule in the module docstring)."""
    if previous is None or counter is None or counter == previous:
        return False
    return counter > previous or counter > 0


class ResetController(BusComponent):
    """``system_reset`` on every ``resetCounter`` increment (the first after a start, too)."""

    def __init__(self, channel: Channel | None = None, name: str | None = None, *,
                 confirm_timeout: float = 10.0) -> None:
        super().__init__(channel, name)
        self.confirm_timeout = confirm_timeout
        self.counter: int | None = None
        """The last ``resetCounter`` seen."""
        self._known = False
        self._resets = 0
        self._reset_seen = asyncio.Event()
        self._one_at_a_time = asyncio.Lock()
        self._state = RunState.STARTING

    @handler
    def on_state(self, event: RunnerStateChanged) -> None:
        self._state = event.new

    @handler
    def on_configure(self, event: ConfigureQemu) -> None:
        counter = event.config.reset_counter
        previous, self.counter = self.counter, counter
        if event.initial or not self._known:
            self._known = True
            _log.debug("resetCounter at start: %s", counter)
            return
        if previous is None or counter is None or not reset_requested(previous, counter):
            return
        if not event.state.vm_active:
            self._report(previous, counter, Outcome.REJECTED,
                         f"the VM is {event.state.value}, not running")
            return
        self.spawn(self._reset(previous, counter), name="system-reset")

    def _report(self, previous: int, counter: int, outcome: Outcome, detail: str = "",
                source: Literal["resetCounter", "api"] = "resetCounter") -> ResetChange:
        level = logging.INFO if outcome is Outcome.APPLIED else logging.WARNING
        what = "requested through the API" if source == "api" else (
            f"resetCounter {previous} → {counter}")
        _log.log(level, "reset %s: %s%s", outcome.value, what, f" ({detail})" if detail else "")
        change = ResetChange(previous=previous, counter=counter, outcome=outcome,
                             detail=detail, source=source)
        self.fire(change)
        return change

    @handler
    async def on_requested(self, event: ResetRequested) -> ResetChange:
        """A reset from the API: runs on the caller's pipeline (``call``), so QMP is asked on
        a fresh one and the ``RESET`` event is awaited like a counter's reset."""
        value = self.counter or 0
        if not self._state.vm_active:
            return self._report(value, value, Outcome.REJECTED,
                                f"the VM is {self._state.value}, not running", "api")
        async with self._one_at_a_time:
            before = self._resets
            _log.info("reset requested through the API: resetting the VM")
            reply = await self.call(ExecuteQmp(command=commands.SystemReset()))
            return await self._confirm(before, reply, value, value, "api")

    async def _reset(self, previous: int, counter: int) -> None:
        async with self._one_at_a_time:  # each increment is confirmed by its own RESET
            await self._reset_once(previous, counter)

    async def _reset_once(self, previous: int, counter: int) -> None:
        before = self._resets
        _log.info("resetCounter %d → %d: resetting the VM", previous, counter)
        reply = await self.execute(commands.SystemReset())
        await self._confirm(before, reply, previous, counter, "resetCounter")

    async def _confirm(self, before: int, reply: QmpReply | None, previous: int, counter: int,
                       source: Literal["resetCounter", "api"]) -> ResetChange:
        """Report the outcome of a ``system_reset`` sent when ``before`` resets were seen."""
        if reply is None or reply.error is not None:
            error = "no monitor answered" if reply is None else reply.error
            return self._report(previous, counter, Outcome.FAILED, f"QEMU: {error}", source)
        try:
            async with asyncio.timeout(self.confirm_timeout):
                while self._resets == before:
                    self._reset_seen.clear()
                    await self._reset_seen.wait()
        except TimeoutError:
            return self._report(previous, counter, Outcome.NOT_REACHED,
                                f"no RESET event within {self.confirm_timeout:g} s", source)
        return self._report(previous, counter, Outcome.APPLIED, source=source)

    @handler
    def on_reset(self, event: QmpReset) -> None:
        if event.guest:
            return  # the guest rebooted by itself
        self._resets += 1
        self._reset_seen.set()
