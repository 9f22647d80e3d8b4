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


class QmpBlockIoError(QmpEvent, frozen=True, kw_only=True):
    """A disk request failed (``BLOCK_IO_ERROR``); ``action`` is QEMU's response (``stop``
    pauses the VM, ``report`` passes the error to the guest, ``ignore``); ``nospace``: the
    host is out of space (ENOSPC)."""

    device: str
    node_name: str
    operation: str
    action: str
    nospace: bool
    reason: str


class QmpGuestPanicked(QmpEvent, frozen=True, kw_only=True):
    """The guest reported a panic (``GUEST_PANICKED``); ``action`` is what QEMU does about it
    (``pause``, ``poweroff``, ``run``); ``info`` is the detail some panic devices give
    (Hyper-V's crash registers, s390's reason), ``None`` from pvpanic."""

    action: str
    info: Mapping[str, Any] | None


class QmpGuestCrashloaded(QmpEvent, frozen=True, kw_only=True):
    """The guest panicked with a crash kernel loaded (``GUEST_CRASHLOADED``, pvpanic): it goes
    on into the crash kernel (kdump) by itself; ``action`` is always ``run``."""

    action: str
    info: Mapping[str, Any] | None


class QmpSpiceClientEvent(QmpEvent, frozen=True, kw_only=True):
    """Base of the SPICE client events: the address of one channel's connection.

    ``host``/``port`` are the client's end of that channel's TCP connection (every channel
    of a SPICE session has its own port), ``family`` is ``ipv4``, ``ipv6`` or ``unix``.
    Only ``SPICE_INITIALIZED`` says which session (``connection_id``) and channel it is.
    """

    host: str
    port: str
    family: str = ""


class QmpSpiceConnected(QmpSpiceClientEvent, frozen=True, kw_only=True):
    """A SPICE channel's TCP connection was accepted (``SPICE_CONNECTED``), before the
    password check: a refused client is connected and disconnected, never initialised."""


class QmpSpiceInitialized(QmpSpiceClientEvent, frozen=True, kw_only=True):
    """A SPICE channel was linked, password accepted (``SPICE_INITIALIZED``).

    ``connection_id`` is the session's id (QEMU's ``connection-id``, a signed 32-bit value)
    shared by all its channels; ``channel_type`` is SPICE's (1 main, 2 display, 3 inputs,
    4 cursor, ...), ``channel_id`` the instance of that type; ``tls`` whether it is encrypted.
    """

    channel_type: int
    connection_id: int
    channel_id: int = 0
    tls: bool = False


class QmpSpiceDisconnected(QmpSpiceClientEvent, frozen=True, kw_only=True):
    """A SPICE channel's connection ended (``SPICE_DISCONNECTED``); one per channel, in no
    fixed order, and without ``connection-id``: match ``host``/``port`` to its
    :class:`QmpSpiceInitialized`."""


class QmpUnknownEvent(QmpEvent, frozen=True, kw_only=True):
    """Any event without a dedicated class, with its wire name and raw data."""

    name: str
    data: Mapping[str, Any]
