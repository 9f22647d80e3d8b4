"""InitialQemuConfig: the runtime settings applied while QEMU is still paused.

On the initial ``ConfigureQemu`` (after QMP is ready, before ``cont``) it holds the event
until its commands are answered, so ``cont`` follows them:

* balloon target = ``currentRam`` when it is below ``maximumRam``;
* vCPUs hot-added up to ``currentCpus`` if the template booted with fewer
  (``query-hotpluggable-cpus`` → ``device_add`` for free slots).

On later updates only a changed ``currentRam`` is applied (live CPU changes are the CPU
controller's job, not part of the start sequence).
"""

from __future__ import annotations

import logging
from typing import Any

from vmrunner.components import BUS
from vmrunner.config.model import VmConfig
from vmrunner.core import Channel, Component, HandlerContext, handler
from vmrunner.events import ConfigureQemu, ExecuteQmp, QmpReply
from vmrunner.qmp import commands

_log = logging.getLogger(__name__)


class InitialQemuConfig(Component):
    """Balloon target and vCPU count before ``cont``."""

    def __init__(self, channel: Channel | None = None, name: str | None = None) -> None:
        super().__init__(BUS if channel is None else channel, name)
        self._ram: int | None = None

    @handler
    def on_configure(self, event: ConfigureQemu, ctx: HandlerContext[None]) -> None:
        vm = event.config.vm
        ram = vm.effective_current_ram
        if not event.initial and ram == self._ram:
            return
        lock = ctx.hold()
        task = self.spawn(self._apply(vm, event.initial), name="initial-qemu-config")
        task.add_done_callback(lambda _t: lock.release())

    async def _qmp(self, command: commands.QmpCommand) -> Any:
        reply = await self.fire(ExecuteQmp(command=command))
        return (reply or QmpReply()).unwrap()

    async def _apply(self, vm: VmConfig, initial: bool) -> None:
        ram = vm.effective_current_ram
        if ram < vm.maximum_ram or (not initial and ram != self._ram):
            _log.info("balloon target %d MiB", ram // (1024 * 1024))
            await self._qmp(commands.Balloon(value=ram))
        self._ram = ram
        if initial:
            await self._plug_cpus(vm.effective_current_cpus)

    async def _plug_cpus(self, wanted: int) -> None:
        slots: list[dict[str, Any]] = await self._qmp(commands.QueryHotpluggableCpus())
        used = [s for s in slots if s.get("qom-path")]
        free = [s for s in slots if not s.get("qom-path")]
        missing = wanted - len(used)
        if missing <= 0:
            return
        free.sort(key=lambda s: tuple(sorted(s.get("props", {}).items())))
        for index, slot in enumerate(free[:missing]):
            cpu_id = f"cpu-{len(used) + index}"
            _log.info("adding vCPU %s (%s)", cpu_id, slot.get("props"))
            await self._qmp(commands.DeviceAdd(driver=str(slot["type"]), id=cpu_id,
                                               props=dict(slot.get("props", {}))))
