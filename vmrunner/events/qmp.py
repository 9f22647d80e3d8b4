"""QMP on the bus: commands to QEMU (``ExecuteQmp``) and the events QEMU sends.

Every QMP event QEMU sends is fired as exactly one of the ``Qmp*`` classes below (the wire
names and data keys are parsed in :mod:`vmrunner.protocols.qmp.wire`); a handler declares the
class it wants (``def on_tray(self, event: QmpDeviceTrayMoved)``) and gets typed fields.
Events without a dedicated class arrive as :class:`QmpUnknownEvent`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from vmrunner.core import Event

if TYPE_CHECKING:
    from vmrunner.protocols.qmp.commands import QmpCommand
    from vmrunner.protocols.qmp.errors import QmpError


class QmpReply(msgspec.Struct, frozen=True):
    """The outcome of an ``ExecuteQmp``: QMP's ``return`` value or a typed error."""

    value: Any = None
    error: QmpError | None = None

    def unwrap(self) -> Any:
        """The value, or raise the error."""
        if self.error is not None:
            raise self.error
        return self.value


class ExecuteQmp(Event[QmpReply], frozen=True, kw_only=True):
    """Run ``command`` on QEMU's monitor; the completed event's result is a :class:`QmpReply`."""

    command: QmpCommand


class MonitorClosed(Event[None], frozen=True, kw_only=True):
    """The QMP connection ended (normally because QEMU exited)."""


# -- events from QEMU ---------------------------------------------------------------------


class QmpEvent(Event[None], frozen=True, kw_only=True):
    """Base of the QMP events the QemuMonitor fires on the bus, one class per wire name.

    ``timestamp`` is QEMU's, in seconds since the epoch.
    """

    timestamp: float


class QmpShutdown(QmpEvent, frozen=True, kw_only=True):
    """The VM shut down (``SHUTDOWN``); ``guest`` is true when the guest initiated it."""

    guest: bool
    reason: str


class QmpPowerdown(QmpEvent, frozen=True, kw_only=True):
    """An ACPI power-button press was delivered (``POWERDOWN``); says nothing of the guest."""


class QmpReset(QmpEvent, frozen=True, kw_only=True):
    """The VM was reset (``RESET``)."""

    guest: bool
    reason: str


class QmpStop(QmpEvent, frozen=True, kw_only=True):
    """The vCPUs were stopped (``STOP``)."""


class QmpResume(QmpEvent, frozen=True, kw_only=True):
    """The vCPUs resumed (``RESUME``), e.g. after ``cont``."""


class QmpDeviceTrayMoved(QmpEvent, frozen=True, kw_only=True):
    """A removable-media tray opened or closed (``DEVICE_TRAY_MOVED``).

    ``device`` is the block backend name and is empty with ``-blockdev``: match on ``id``.
    """

    id: str
    device: str
    tray_open: bool


class QmpBalloonChange(QmpEvent, frozen=True, kw_only=True):
    """The guest's memory size as seen by the balloon changed (``BALLOON_CHANGE``), in bytes."""

    actual: int


class QmpDeviceDeleted(QmpEvent, frozen=True, kw_only=True):
    """A device was removed (``DEVICE_DELETED``); ``device`` is its id (may be empty)."""

    device: str
    path: str


class QmpAcpiDeviceOst(QmpEvent, frozen=True, kw_only=True):
    """The guest's ACPI _OST answer to a hot(un)plug request (``ACPI_DEVICE_OST``)."""

    device: str
    slot: str
    slot_type: str
    source: int
    status: int


class QmpVserportChange(QmpEvent, frozen=True, kw_only=True):
    """The guest opened or closed a virtio-serial port (``VSERPORT_CHANGE``), e.g. qemu-ga's."""

    id: str
    open: bool


class QmpGuestPanicked(QmpEvent, frozen=True, kw_only=True):
    """The guest reported a panic (``GUEST_PANICKED``)."""

    action: str
    info: Mapping[str, Any] | None


class QmpSpiceClientEvent(QmpEvent, frozen=True, kw_only=True):
    """Base of the SPICE client events; ``host``/``port`` are the client's address."""

    host: str
    port: str


class QmpSpiceConnected(QmpSpiceClientEvent, frozen=True, kw_only=True):
    """A SPICE client connected (``SPICE_CONNECTED``)."""


class QmpSpiceInitialized(QmpSpiceClientEvent, frozen=True, kw_only=True):
    """A SPICE channel finished initialising (``SPICE_INITIALIZED``)."""

    channel_type: int


class QmpSpiceDisconnected(QmpSpiceClientEvent, frozen=True, kw_only=True):
    """A SPICE client disconnected (``SPICE_DISCONNECTED``)."""


class QmpUnknownEvent(QmpEvent, frozen=True, kw_only=True):
    """Any event without a dedicated class, with its wire name and raw data."""

    name: str
    data: Mapping[str, Any]
