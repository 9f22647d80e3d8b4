"""QMP: typed commands (:mod:`.commands`, used via the module: ``commands.Cont()``), the
wire format of QEMU's events (:mod:`.wire`, parsed into :mod:`vmrunner.events.qmp`), errors
and the asyncio client (:class:`QmpClient`)."""

from __future__ import annotations

from vmrunner.protocols.qmp import commands, wire
from vmrunner.protocols.qmp.client import TRAFFIC_LOGGER, QmpClient
from vmrunner.protocols.qmp.errors import (
    QmpConnectError,
    QmpDisconnected,
    QmpError,
    QmpExecuteError,
    QmpTimeout,
)

__all__ = [
    "TRAFFIC_LOGGER",
    "QmpClient",
    "QmpConnectError",
    "QmpDisconnected",
    "QmpError",
    "QmpExecuteError",
    "QmpTimeout",
    "commands",
    "wire",
]
