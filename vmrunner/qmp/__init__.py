"""QMP: typed commands (:mod:`.commands`), typed events (:mod:`.messages`), errors and the
asyncio client (:class:`QmpClient`). Command and event classes are used via their modules
(``commands.Stop`` and ``messages.Stop`` are different things)."""

from __future__ import annotations

from vmrunner.qmp import commands, messages
from vmrunner.qmp.client import TRAFFIC_LOGGER, QmpClient
from vmrunner.qmp.errors import (
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
    "messages",
]
