"""Typed QMP events.

Every QMP event QEMU sends becomes one of the frozen :class:`msgspec.Struct` classes below;
the wire names (``SHUTDOWN``, ``DEVICE_TRAY_MOVED``...) and data keys appear only in this
module.
Events without a dedicated class become :class:`QmpEventUnknown`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec


class QmpEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Base of all QMP events. ``timestamp`` is QEMU's, in seconds since the epoch."""

    timestamp: float


class Shutdown(QmpEvent, frozen=True, kw_only=True):
    """The VM shut down (``SHUTDOWN``); ``guest`` is true when the guest initiated it."""

    guest: bool
    reason: str


class Powerdown(QmpEvent, frozen=True, kw_only=True):
    """An ACPI power-button press was delivered (``POWERDOWN``); says nothing of the guest."""


class Reset(QmpEvent, frozen=True, kw_only=True):
    """The VM was reset (``RESET``)."""

    guest: bool
    reason: str


class Stop(QmpEvent, frozen=True, kw_only=True):
    """The vCPUs were stopped (``STOP``)."""


class Resume(QmpEvent, frozen=True, kw_only=True):
    """The vCPUs resumed (``RESUME``), e.g. after ``cont``."""


class DeviceTrayMoved(QmpEvent, frozen=True, kw_only=True):
    """A removable-media tray opened or closed (``DEVICE_TRAY_MOVED``).

    ``device`` is the block backend name and is empty with ``-blockdev``: match on ``id``.
    """

    id: str
    device: str
    tray_open: bool


class BalloonChange(QmpEvent, frozen=True, kw_only=True):
    """The guest's memory size as seen by the balloon changed (``BALLOON_CHANGE``), in bytes."""

    actual: int


class DeviceDeleted(QmpEvent, frozen=True, kw_only=True):
    """A device was removed (``DEVICE_DELETED``); ``device`` is its id (may be empty)."""

    device: str
    path: str


class AcpiDeviceOst(QmpEvent, frozen=True, kw_only=True):
    """The guest's ACPI _OST answer to a hot(un)plug request (``ACPI_DEVICE_OST``)."""

    device: str
    slot: str
    slot_type: str
    source: int
    status: int


class VserportChange(QmpEvent, frozen=True, kw_only=True):
    """The guest opened or closed a virtio-serial port (``VSERPORT_CHANGE``), e.g. qemu-ga's."""

    id: str
    open: bool


class GuestPanicked(QmpEvent, frozen=True, kw_only=True):
    """The guest reported a panic (``GUEST_PANICKED``)."""

    action: str
    info: Mapping[str, Any] | None


class SpiceClientEvent(QmpEvent, frozen=True, kw_only=True):
    """Base of the SPICE client events; ``host``/``port`` are the client's address."""

    host: str
    port: str


class SpiceConnected(SpiceClientEvent, frozen=True, kw_only=True):
    """A SPICE client connected (``SPICE_CONNECTED``)."""


class SpiceInitialized(SpiceClientEvent, frozen=True, kw_only=True):
    """A SPICE channel finished initialising (``SPICE_INITIALIZED``)."""

    channel_type: int


class SpiceDisconnected(SpiceClientEvent, frozen=True, kw_only=True):
    """A SPICE client disconnected (``SPICE_DISCONNECTED``)."""


class QmpEventUnknown(QmpEvent, frozen=True, kw_only=True):
    """Any event without a dedicated class, with its wire name and raw data."""

    name: str
    data: Mapping[str, Any]


def _spice_client(data: Mapping[str, Any]) -> dict[str, Any]:
    client = data.get("client") or {}
    return {"host": str(client.get("host", "")), "port": str(client.get("port", ""))}


_Parser = Callable[[Mapping[str, Any], float], QmpEvent]

_PARSERS: Mapping[str, _Parser] = {
    "SHUTDOWN": lambda d, t: Shutdown(
        timestamp=t, guest=bool(d["guest"]), reason=str(d.get("reason", ""))
    ),
    "POWERDOWN": lambda d, t: Powerdown(timestamp=t),
    "RESET": lambda d, t: Reset(
        timestamp=t, guest=bool(d["guest"]), reason=str(d.get("reason", ""))
    ),
    "STOP": lambda d, t: Stop(timestamp=t),
    "RESUME": lambda d, t: Resume(timestamp=t),
    "DEVICE_TRAY_MOVED": lambda d, t: DeviceTrayMoved(
        timestamp=t, id=str(d.get("id", "")), device=str(d.get("device", "")),
        tray_open=bool(d["tray-open"]),
    ),
    "BALLOON_CHANGE": lambda d, t: BalloonChange(timestamp=t, actual=int(d["actual"])),
    "DEVICE_DELETED": lambda d, t: DeviceDeleted(
        timestamp=t, device=str(d.get("device", "")), path=str(d["path"])
    ),
    "ACPI_DEVICE_OST": lambda d, t: AcpiDeviceOst(
        timestamp=t, device=str(d["info"].get("device", "")), slot=str(d["info"]["slot"]),
        slot_type=str(d["info"]["slot-type"]), source=int(d["info"]["source"]),
        status=int(d["info"]["status"]),
    ),
    "VSERPORT_CHANGE": lambda d, t: VserportChange(
        timestamp=t, id=str(d["id"]), open=bool(d["open"])
    ),
    "GUEST_PANICKED": lambda d, t: GuestPanicked(
        timestamp=t, action=str(d["action"]), info=d.get("info")
    ),
    "SPICE_CONNECTED": lambda d, t: SpiceConnected(timestamp=t, **_spice_client(d)),
    "SPICE_INITIALIZED": lambda d, t: SpiceInitialized(
        timestamp=t, channel_type=int((d.get("client") or {}).get("channel-type", 0)),
        **_spice_client(d),
    ),
    "SPICE_DISCONNECTED": lambda d, t: SpiceDisconnected(timestamp=t, **_spice_client(d)),
}


def parse_event(name: str, data: Mapping[str, Any] | None, timestamp: float) -> QmpEvent:
    """Turn a QMP event's wire name and data into its typed event.

    Unknown names, and known names whose data does not have the documented shape, become
    :class:`QmpEventUnknown` (nothing QEMU sends makes this raise).
    """
    payload: Mapping[str, Any] = data if data is not None else {}
    parser = _PARSERS.get(name)
    if parser is not None:
        try:
            return parser(payload, timestamp)
        except (KeyError, TypeError, ValueError, AttributeError):
            pass
    return QmpEventUnknown(timestamp=timestamp, name=name, data=payload)


def event_timestamp(raw: Mapping[str, Any] | None) -> float:
    """Convert QMP's ``{"seconds": s, "microseconds": us}`` into seconds (0.0 when absent)."""
    if not raw:
        return 0.0
    return float(raw.get("seconds", 0)) + float(raw.get("microseconds", 0)) / 1e6
