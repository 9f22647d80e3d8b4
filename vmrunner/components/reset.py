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
"""

from __future__ import annotations

import asyncio
import logging

from vmrunner.components.base import BusComponent
from vmrunner.core import Channel, handler
from vmrunner.events import ConfigureQemu, Outcome, QmpReset, ResetChange
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

    def _report(self, previous: int, counter: int, outcome: Outcome, detail: str = "") -> None:
        level = logging.INFO if outcome is Outcome.APPLIED else logging.WARNING
        _log.log(level, "reset %s: resetCounter %d → %d%s", outcome.value, previous, counter,
                 f" ({detail})" if detail else "")
        self.fire(ResetChange(previous=previous, counter=counter, outcome=outcome,
                              detail=detail))

    async def _reset(self, previous: int, counter: int) -> None:
        async with self._one_at_a_time:  # each increment is confirmed by its own RESET
            await self._reset_once(previous, counter)

    async def _reset_once(self, previous: int, counter: int) -> None:
        before = self._resets
        _log.info("resetCounter %d → %d: resetting the VM", previous, counter)
        reply = await self.execute(commands.SystemReset())
        if reply.error is not None:
            self._report(previous, counter, Outcome.FAILED, f"QEMU: {reply.error}")
            return
        try:
            async with asyncio.timeout(self.confirm_timeout):
                while self._resets == before:
                    self._reset_seen.clear()
                    await self._reset_seen.wait()
        except TimeoutError:
            self._report(previous, counter, Outcome.NOT_REACHED,
                         f"no RESET event within {self.confirm_timeout:g} s")
            return
        self._report(previous, counter, Outcome.APPLIED)

    @handler
    def on_reset(self, event: QmpReset) -> None:
        if event.guest:
            return  # the guest rebooted by itself
        self._resets += 1
        self._reset_seen.set()
