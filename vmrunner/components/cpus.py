"""CpuController: the number of vCPUs follows ``currentCpus`` (hot-add and unplug).

QEMU's view is the only one available: ``query-hotpluggable-cpus`` lists the slots, a slot
with a ``qom-path`` holds a vCPU. Whether the guest *onlined* a vCPU cannot be seen through
QMP (a guest may keep a hot-added vCPU offline); :class:`CpuChange` reports what QEMU has.

* **Add**: ``device_add`` into free slots, lowest first, with a stable qdev id derived from
  the slot (``cpu-s0-c2-t0``); confirmed by querying again.
* **Unplug**: ``device_del`` of the highest occupied slots, one vCPU at a time (two
  requests at once can lose one of the guest's ACPI notifications: seen with QEMU 7.2 under
  TCG, where the guest then never released the first vCPU), never the boot processor. A vCPU
  plugged at boot has no qdev id: its QOM path is used (``device_del`` accepts one). The
  guest has to release the vCPU (ACPI eject); the controller re-queries on each
  ``ACPI_DEVICE_OST``/``DEVICE_DELETED`` and every ``poll_interval`` s (under TCG QEMU 7.2
  never sends the vCPU's own ``DEVICE_DELETED``) and repeats the request every
  ``renotify_interval`` s (a new notification for a guest that missed one) until the count
  is right or ``unplug_timeout`` s have passed since the change began → ``not-reached``.
  A change that ended is not retried.
* **QEMU 7.2 guards** (both crash QEMU 7.2 under TCG, reproduced with Debian 12's
  7.2+dfsg; QEMU < 8 on TCG counts as affected, KVM and QEMU ≥ 8 do not, as found by
  ``query-version``/``query-kvm``):

  - plugging a vCPU into a slot that was occupied earlier in the same QEMU process ("double
    free or corruption"): such slots are never re-plugged;
  - any reset after a vCPU unplug, ours (``resetCounter``) or the guest's own reboot
    ("malloc(): largebin double linked list corrupted", SIGABRT): on an affected QEMU no
    vCPU is unplugged live.

  With ``unplug_on_affected_qemu`` (tests only) the unplug is made anyway, and a later
  :class:`~vmrunner.events.ResetRequested` (``vmrunner reset``) is then ``rejected`` here
  instead of crashing QEMU.

  Either way the change is ``rejected`` ("needs a restart") and ``RestartNeeded`` puts
  ``/Runner/vm/currentCpus`` into the status's ``restartPending`` until a later change is
  applied.
* If a vCPU leaves after its change was reported (a superseded unplug the guest completed
  late), the count is checked again and made up for as above; unplugs are never retried.

Not applied during the shutdown. Before ``cont`` (initial ``ConfigureQemu``, held until
done) only additions are made: the template boots with ``-smp cpus=currentCpus``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from vmrunner.components.base import BusComponent
from vmrunner.config.model import RunnerConfig
from vmrunner.core import Channel, CompletionLock, HandlerContext, handler
from vmrunner.events import (
    ConfigureQemu,
    CpuChange,
    MonitorClosed,
    Outcome,
    QmpAcpiDeviceOst,
    QmpDeviceDeleted,
    ResetChange,
    ResetRequested,
    RestartNeeded,
    RunState,
)
from vmrunner.events.lifecycle import VmPrepared
from vmrunner.events.status import CpuStatus, StatusQuery
from vmrunner.protocols.qmp import commands

_log = logging.getLogger(__name__)

_ORDER = ("node-id", "socket-id", "die-id", "cluster-id", "core-id", "thread-id")
_ABBREVIATION = {"node-id": "n", "socket-id": "s", "die-id": "d", "cluster-id": "cl",
                 "core-id": "c", "thread-id": "t"}
PATH = "/Runner/vm/currentCpus"
_OST_OK = (0, 0x84)
"""ACPI _OST status values that are not a refusal: success, eject in progress."""

Slot = Mapping[str, Any]
SlotKey = tuple[tuple[str, int], ...]


def slot_key(slot: Slot) -> SlotKey:
    """The slot's topology position, ordered from the outermost level inwards."""
    props = slot.get("props") or {}
    known = [(k, int(props[k])) for k in _ORDER if k in props]
    other = sorted((k, int(v)) for k, v in props.items() if k not in _ORDER)
    return (*known, *other)


def slot_id(slot: Slot) -> str:
    """A stable qdev id for a vCPU in ``slot``, e.g. ``cpu-s0-c2-t0``."""
    parts = [f"{_ABBREVIATION.get(k, k.removesuffix('-id'))}{v}" for k, v in slot_key(slot)]
    return "-".join(["cpu", *parts])


def _device(slot: Slot) -> str:
    """What ``device_del`` needs: the qdev id of a hot-plugged vCPU, else its QOM path."""
    path = str(slot["qom-path"])
    prefix = "/machine/peripheral/"
    return path[len(prefix):] if path.startswith(prefix) else path


class CpuController(BusComponent):
    """vCPU count = ``currentCpus``, confirmed by ``query-hotpluggable-cpus``.

    Args:
        unplug_timeout: seconds the guest has to release unplugged vCPUs.
        poll_interval: seconds between re-queries while waiting for an unplug.
        renotify_interval: seconds after which an unplug request the guest has not acted on
            is repeated.
        unplug_on_affected_qemu: unplug even where a later reset crashes QEMU (for tests of
            the unplug itself on a TCG-only machine; never for a VM that matters).
    """

    def __init__(self, channel: Channel | None = None, name: str | None = None, *,
                 unplug_timeout: float = 30.0, poll_interval: float = 2.0,
                 renotify_interval: float = 8.0, unplug_on_affected_qemu: bool = False) -> None:
        super().__init__(channel, name)
        self.unplug_on_affected_qemu = unplug_on_affected_qemu
        self.unplug_timeout = unplug_timeout
        self.poll_interval = poll_interval
        self.renotify_interval = renotify_interval
        self.requested: int | None = None
        self.present: int | None = None
        self._occupied: set[SlotKey] = set()
        """Slots seen holding a vCPU in this QEMU process (never re-plugged once free)."""
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._refusals: list[str] = []
        self._unplug_hazard: str | None = None
        """Why unplugging would endanger QEMU ("" when it would not; None: not asked)."""
        self._unplugged = False
        """A ``device_del`` of a vCPU was sent to this QEMU process."""
        self._restart_needed = False
        self._status_maximum: int | None = None
        self._status_target: int | None = None
        """``currentCpus`` of the configuration, until a change has been made."""
        self._status_outcome: Outcome | None = None

    @handler
    def on_configure(self, event: ConfigureQemu, ctx: HandlerContext[None]) -> None:
        target = event.config.vm.effective_current_cpus
        if event.state in (RunState.TERMINATING, RunState.STOPPED):
            return
        if not event.initial and target == self.requested:
            return
        self._supersede()
        self.requested = target
        lock = ctx.hold() if event.initial else None
        self._task = self.spawn(self._apply(target, event.initial, lock), name="cpu-hotplug")

    def _supersede(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            if self.requested is not None:
                self._report(self.requested, Outcome.SUPERSEDED, "a newer currentCpus arrived")

    def _report(self, requested: int, outcome: Outcome, detail: str = "", *,
                restart: bool = False) -> None:
        """Log and fire the outcome; ``restart``: a refusal only a new QEMU process can lift
        (``RestartNeeded``, withdrawn by the next applied change)."""
        level = logging.WARNING if outcome in (Outcome.NOT_REACHED, Outcome.FAILED,
                                                Outcome.REJECTED) else logging.INFO
        _log.log(level, "vCPUs %s: requested %d, QEMU has %s%s", outcome.value, requested,
                 "?" if self.present is None else self.present,
                 f" ({detail})" if detail else "")
        self.fire(CpuChange(requested=requested, present=self.present, outcome=outcome,
                            detail=detail))
        if restart or (self._restart_needed and outcome is Outcome.APPLIED):
            self._restart_needed = restart
            self.fire(RestartNeeded(path=PATH, needed=restart, reason=detail))

    async def _query(self) -> list[Slot] | None:
        reply = await self.execute(commands.QueryHotpluggableCpus())
        if reply.error is not None or not isinstance(reply.value, list):
            _log.warning("query-hotpluggable-cpus failed: %s", reply.error or reply.value)
            return None
        slots: list[Slot] = reply.value
        used = [s for s in slots if s.get("qom-path")]
        self._occupied.update(slot_key(s) for s in used)
        self.present = len(used)
        return slots

    async def _apply(self, target: int, initial: bool, lock: CompletionLock | None, *,
                     recheck: bool = False) -> None:
        try:
            slots = await self._query()
            if slots is None:
                self._report(target, Outcome.FAILED, "query-hotpluggable-cpus failed")
                return
            used = sorted((s for s in slots if s.get("qom-path")), key=slot_key)
            if recheck and len(used) >= target:
                return  # only a vCPU that vanished is made up for; unplugs are never retried
            if len(used) < target:
                await self._add(target, [s for s in slots if not s.get("qom-path")],
                                target - len(used))
            elif len(used) > target and initial:
                self._report(target, Outcome.REJECTED, "vCPUs are not unplugged before the "
                             "guest runs (the template boots with currentCpus)")
            elif len(used) > target and await self._unplug_hazardous():
                self._report(target, Outcome.REJECTED, f"{self._unplug_hazard}; unplugging "
                             "needs a restart", restart=True)
            elif len(used) > target:
                await self._unplug(target, used)
            else:
                self._report(target, Outcome.APPLIED)
        finally:
            if lock is not None:
                lock.release()

    async def _add(self, target: int, free: list[Slot], missing: int) -> None:
        fresh = sorted((s for s in free if slot_key(s) not in self._occupied), key=slot_key)
        for slot in fresh[:missing]:
            _log.info("adding vCPU %s (%s)", slot_id(slot), dict(slot.get("props") or {}))
            reply = await self.execute(commands.DeviceAdd(
                driver=str(slot["type"]), id=slot_id(slot), props=dict(slot.get("props") or {})))
            if reply.error is not None:
                await self._query()
                self._report(target, Outcome.FAILED, f"device_add: {reply.error}")
                return
        await self._query()
        if self.present is not None and self.present >= target:
            self._report(target, Outcome.APPLIED,
                         "QMP cannot see whether the guest onlined the new vCPUs")
        elif len(fresh) < missing:
            self._report(target, Outcome.REJECTED,
                         f"{missing - len(fresh)} more vCPU(s) would need slots freed earlier "
                         "in this QEMU process; re-plugging a freed slot crashes QEMU 7.2, "
                         "so this needs a restart", restart=True)
        else:
            self._report(target, Outcome.NOT_REACHED, "the added vCPUs did not show up")

    async def _unplug_hazardous(self) -> bool:
        """Whether this QEMU crashes at a reset after a vCPU unplug (QEMU < 8 on TCG) and
        the guard is on."""
        await self._learn_hazard()
        return bool(self._unplug_hazard) and not self.unplug_on_affected_qemu

    async def _learn_hazard(self) -> None:
        if self._unplug_hazard is None:
            version, kvm = (await self.execute(commands.QueryVersion()),
                            await self.execute(commands.QueryKvm()))
            try:
                major = int(version.unwrap()["qemu"]["major"])
                on_kvm = bool(kvm.unwrap()["enabled"])
            except Exception:  # an odd or missing answer: assume the worst
                major, on_kvm = 0, False
            self._unplug_hazard = "" if major >= 8 or on_kvm else (
                f"QEMU {major}.x under TCG crashes at the next reset after a vCPU unplug")

    async def _unplug(self, target: int, used: list[Slot]) -> None:
        # the lowest slot is the boot processor: never unplugged
        victims = list(reversed(used[1:]))[:len(used) - target]
        self._refusals.clear()
        self._unplugged = True
        errors: list[str] = []
        deadline = asyncio.get_running_loop().time() + self.unplug_timeout
        for slot in victims:
            if not await self._release(slot, deadline, errors):
                break
        await self._query()
        notes = [*errors, *self._refusals]
        if self.present is not None and self.present <= target and not errors:
            self._report(target, Outcome.APPLIED, "; ".join(notes))
        elif len(errors) == len(victims):
            self._report(target, Outcome.FAILED, "; ".join(errors))
        else:
            self._report(target, Outcome.NOT_REACHED, "; ".join([
                f"the guest did not release the vCPUs within {self.unplug_timeout:g} s "
                "(it may refuse unplugs); not retried", *notes]))

    async def _release(self, slot: Slot, deadline: float, errors: list[str]) -> bool:
        """``device_del`` of the vCPU in ``slot``, repeated every ``renotify_interval`` s,
        until QEMU no longer has it (True) or ``deadline`` passed. A refused first request
        goes to ``errors`` and counts as done (the next victim is tried)."""
        loop = asyncio.get_running_loop()
        device, key = _device(slot), slot_key(slot)
        _log.info("unplugging vCPU %s (%s)", device, dict(slot.get("props") or {}))
        reply = await self.execute(commands.DeviceDel(id=device))
        if reply.error is not None:
            errors.append(f"device_del {device}: {reply.error}")
            return True
        renotify_at = loop.time() + self.renotify_interval
        while True:
            self._changed.clear()
            slots = await self._query()
            if slots is not None and not any(
                    slot_key(s) == key and s.get("qom-path") for s in slots):
                return True
            now = loop.time()
            if now >= deadline:
                return False
            if now >= renotify_at:
                _log.info("vCPU %s still present after %g s: unplug requested again",
                          device, self.renotify_interval)
                again = await self.execute(commands.DeviceDel(id=device))
                if again.error is not None:
                    _log.debug("repeated device_del %s: %s", device, again.error)
                renotify_at = loop.time() + self.renotify_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(),
                                       max(0.0, min(deadline - now, self.poll_interval,
                                                    renotify_at - now)))

    @handler(priority=100)
    def on_reset_requested(self, event: ResetRequested,
                           ctx: HandlerContext[ResetChange]) -> None:
        """The QEMU 7.2 guard for ``vmrunner reset``: after an unplug on an affected QEMU
        (only with ``unplug_on_affected_qemu``) the reset is rejected before it is sent."""
        if not (self._unplugged and self._unplug_hazard):
            return
        detail = f"{self._unplug_hazard}; a vCPU was unplugged: restart the VM instead"
        _log.warning("reset rejected: %s", detail)
        change = ResetChange(previous=0, counter=0, outcome=Outcome.REJECTED, detail=detail,
                             source="api")
        self.fire(change)
        ctx.set_result(change)
        ctx.stop()

    @handler
    def on_acpi_ost(self, event: QmpAcpiDeviceOst) -> None:
        if event.slot_type != "CPU":
            return
        if event.status not in _OST_OK:
            self._refusals.append(f"the guest's ACPI _OST for CPU slot {event.slot}: "
                                  f"status {event.status:#x}")
        self._vcpus_changed()

    @handler
    def on_device_deleted(self, event: QmpDeviceDeleted) -> None:
        self._vcpus_changed()

    def _vcpus_changed(self) -> None:
        self._changed.set()
        if (self._task is None or self._task.done()) and self.requested is not None:
            # a vCPU left after its change was reported (e.g. a superseded unplug that the
            # guest completed late): add one if the count is now short
            self._task = self.spawn(self._apply(self.requested, False, None, recheck=True),
                                    name="cpu-recheck")

    @handler
    def on_monitor_closed(self, event: MonitorClosed) -> None:
        self._unplugged = False  # the next QEMU process starts clean
        task, self._task = self._task, None
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
        self._status_maximum = config.vm.maximum_cpus
        self._status_target = config.vm.effective_current_cpus

    @handler
    def on_status_reported(self, event: CpuChange) -> None:
        self._status_outcome = event.outcome

    @handler
    def on_status_query(self, event: StatusQuery) -> CpuStatus:
        return CpuStatus(maximum=self._status_maximum,
                         requested=self._status_target if self.requested is None
                         else self.requested,
                         present=self.present, outcome=self._status_outcome)
