"""QMP: typed commands (:mod:`.commands`, used via the module: ``commands.Cont()``), the
wire format of QEMU's events (:mod:`.wire`, parsed into :mod:`vmrunner.events.qmp`), errors
and the asyncio client (:class:`QmpClient`).

The client (and ``qemu.qmp`` with it) is imported when first named, not with the package:
the runner connects only after it has spawned QEMU, so the import overlaps QEMU's own start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vmrunner.protocols.qmp import commands, wire
from vmrunner.protocols.qmp.errors import (
    QmpConnectError,
    QmpDisconnected,
    QmpError,
    QmpExecuteError,
    QmpTimeout,
)

if TYPE_CHECKING:
    from vmrunner.protocols.qmp.client import TRAFFIC_LOGGER, QmpClient

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


def __getattr__(name: str) -> Any:
    if name in ("QmpClient", "TRAFFIC_LOGGER"):
        from vmrunner.protocols.qmp import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
