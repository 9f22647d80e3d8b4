"""Shared by the live controllers (RAM, vCPUs, reset): the :class:`Outcome` of a change (the
one the CD-ROM and display controllers use, from :mod:`vmrunner.media_events`) and a QMP
helper for their tasks."""

from __future__ import annotations

from vmrunner.core import Component
from vmrunner.events import ExecuteQmp, QmpReply
from vmrunner.media_events import Outcome
from vmrunner.qmp.commands import QmpCommand
from vmrunner.qmp.errors import QmpDisconnected

__all__ = ["Outcome", "execute"]


async def execute(component: Component, command: QmpCommand) -> QmpReply:
    """Run ``command`` through the bus (``ExecuteQmp``) from a task owned by ``component``."""
    reply = await component.fire(ExecuteQmp(command=command))
    if reply is None:
        return QmpReply(error=QmpDisconnected(f"{command.name}: no monitor answered"))
    return reply
