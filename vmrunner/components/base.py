"""What every standard component shares: the bus channel and the way to ask QEMU.

* :data:`BUS` is the named channel the runner's components listen and fire on; a component
  of your own joins the conversation by deriving from :class:`BusComponent` (or passing
  ``channel=BUS`` to :class:`~vmrunner.core.Component`).
* :meth:`BusComponent.execute` is the one way to run a QMP command and await its answer
  (``ExecuteQmp`` on the bus; the QemuMonitor answers it). Handler code, which must not
  block its pipeline, uses :meth:`BusComponent.execute_then` instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from vmrunner.core import Channel, Component, EventHandle, NamedChannel
from vmrunner.events.qmp import ExecuteQmp, QmpReply

if TYPE_CHECKING:
    from vmrunner.protocols.qmp.commands import QmpCommand

BUS = NamedChannel("vmrunner")
"""The channel the runner's components share."""


def _reply(command: QmpCommand, results: list[QmpReply]) -> QmpReply:
    """The first reply to ``command``; a ``QmpDisconnected`` error if nobody answered."""
    if results:
        return results[0]
    from vmrunner.protocols.qmp.errors import QmpDisconnected

    return QmpReply(error=QmpDisconnected(f"{command.name}: no monitor answered"))


class BusComponent(Component):
    """A component on :data:`BUS` unless given another ``channel``."""

    def __init__(self, channel: Channel | None = None, name: str | None = None) -> None:
        super().__init__(BUS if channel is None else channel, name)

    async def execute(self, command: QmpCommand) -> QmpReply:
        """Run ``command`` on QEMU's monitor and wait for the reply; for tasks this component
        owns (a handler awaiting it would wait on its own pipeline: ``DeadlockError``).

        Never raises for QMP failures: the reply carries the typed error (also when no
        monitor answered at all); ``reply.unwrap()`` gives the value or raises the error.
        """
        return _reply(command, await self.fire(ExecuteQmp(command=command)).wait())

    def execute_then(self, command: QmpCommand,
                     callback: Callable[[QmpReply], object]) -> EventHandle[QmpReply]:
        """Run ``command`` on QEMU's monitor without waiting: ``callback(reply)`` runs once
        it is answered, as a completion action on the pipeline it was sent from.

        For handler code, which must not block its pipeline; the reply is the same as
        :meth:`execute`'s. Returns the ``ExecuteQmp``'s handle.
        """
        handle = self.fire(ExecuteQmp(command=command))
        handle.on_completion(lambda done: callback(_reply(command, done.results())))
        return handle
