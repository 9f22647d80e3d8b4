"""What every standard component shares: the bus channel and the way to ask QEMU.

* :data:`BUS` is the named channel the runner's components listen and fire on; a component
  of your own joins the conversation by deriving from :class:`BusComponent` (or passing
  ``channel=BUS`` to :class:`~vmrunner.core.Component`).
* :meth:`BusComponent.execute` is the one way to run a QMP command and await its answer
  (``ExecuteQmp`` on the bus; the QemuMonitor answers it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmrunner.core import Channel, Component, NamedChannel
from vmrunner.events.qmp import ExecuteQmp, QmpReply

if TYPE_CHECKING:
    from vmrunner.protocols.qmp.commands import QmpCommand

BUS = NamedChannel("vmrunner")
"""The channel the runner's components share."""


class BusComponent(Component):
    """A component on :data:`BUS` unless given another ``channel``."""

    def __init__(self, channel: Channel | None = None, name: str | None = None) -> None:
        super().__init__(BUS if channel is None else channel, name)

    async def execute(self, command: QmpCommand) -> QmpReply:
        """Run ``command`` on QEMU's monitor and wait for the reply; for tasks this component
        owns (a handler awaiting it would wait on its own pipeline: ``DeadlockError``).

        Never raises for QMP failures: the reply carries the typed error (also when no
        monitor answered at all).
        """
        reply = await self.fire(ExecuteQmp(command=command))
        if reply is None:
            from vmrunner.protocols.qmp.errors import QmpDisconnected

            return QmpReply(error=QmpDisconnected(f"{command.name}: no monitor answered"))
        return reply
