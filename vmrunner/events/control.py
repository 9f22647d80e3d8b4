"""Requests that arrive through the API (``vmrunner reset``, ``vmrunner qmp``).

The ApiServer fires them; the components that own the resource answer. Nothing but the
QemuMonitor talks QMP: a raw command is still an ``ExecuteQmp`` on the bus.
"""

from __future__ import annotations

from typing import Any

from vmrunner.core import Event
from vmrunner.events.changes import ResetChange


class ResetRequested(Event[ResetChange], frozen=True, kw_only=True):
    """Reset the VM now (``POST /reset``). The ResetController answers with the
    :class:`ResetChange` (``source="api"``) it fired; a handler that knows the reset would be
    unsafe (the vCPU guard of the CpuController) answers ``rejected`` first and stops it."""


class RawQmpRequested(Event[None], frozen=True, kw_only=True):
    """A raw QMP command from the API (``POST /qmp``), recorded before it is executed as an
    ``ExecuteQmp``; for debugging only (the runner does not know what it changed)."""

    command: str
    arguments: dict[str, Any]
