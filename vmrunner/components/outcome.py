"""Shared by the live controllers (RAM, vCPUs, reset): the :class:`Outcome` of a change and
a QMP helper for their tasks."""

from __future__ import annotations

import enum

from vmrunner.core import Component
from vmrunner.events import ExecuteQmp, QmpReply
from vmrunner.qmp.commands import QmpCommand
from vmrunner.qmp.errors import QmpDisconnected


class Outcome(enum.Enum):
    """How a requested change ended (or where it stands). docs/live-changes.md explains each."""

    CONFIRMED = "confirmed"
    """QEMU (or the guest, through QEMU) shows the requested state."""
    PENDING = "pending"
    """Requested and accepted by QEMU; waiting for the guest (a final outcome follows)."""
    NOT_REACHED = "not-reached"
    """The bounded wait ended without the requested state; what was reached is reported."""
    REFUSED = "refused"
    """Not attempted, or QEMU rejected the command; the detail says why."""
    SUPERSEDED = "superseded"
    """A newer request replaced this one before it had a final outcome."""

    @property
    def final(self) -> bool:
        """Whether no further outcome follows for the same request."""
        return self is not Outcome.PENDING


async def execute(component: Component, command: QmpCommand) -> QmpReply:
    """Run ``command`` through the bus (``ExecuteQmp``) from a task owned by ``component``."""
    reply = await component.fire(ExecuteQmp(command=command))
    if reply is None:
        return QmpReply(error=QmpDisconnected(f"{command.name}: no monitor answered"))
    return reply
