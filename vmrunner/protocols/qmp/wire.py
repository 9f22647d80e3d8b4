"""QMP events on the wire: QEMU's event name and data parsed into the typed bus events.

The wire names (``SHUTDOWN``, ``DEVICE_TRAY_MOVED``...) and data keys appear only in this
module; the classes are in :mod:`vmrunner.events.qmp`. Events without a dedicated class, and
known events whose data does not have the documented shape, become
:class:`~vmrunner.events.qmp.QmpUnknownEvent`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from vmrunner.events.qmp import (
    QmpAcpiDeviceOst,
    QmpBalloonChange,
    QmpBlockIoError,
    QmpDeviceDeleted,
    QmpDeviceTrayMoved,
    QmpEvent,
    QmpGuestCrashloaded,
    QmpGuestPanicked,
    QmpPowerdown,
    QmpReset,
    QmpResume,
    QmpShutdown,
    QmpSpiceConnected,
    QmpSpiceDisconnected,
    QmpSpiceInitialized,
    QmpStop,
    QmpUnknownEvent,
    QmpVserportChange,
)


def _spice_client(data: Mapping[str, Any]) -> dict[str, Any]:
    """``client`` (QAPI ``SpiceBasicInfo``) as keyword arguments."""
    client = data.get("client") or {}
    return {"host": str(client.get("host", "")), "port": str(client.get("port", "")),
            "family": str(client.get("family", ""))}


def _spice_channel(data: Mapping[str, Any], timestamp: float) -> QmpSpiceInitialized:
    """``SPICE_INITIALIZED``: ``client`` is a QAPI ``SpiceChannel`` (``SpiceBasicInfo`` plus
    ``connection-id``, ``channel-type``, ``channel-id``, ``tls``)."""
    client = data["client"]
    return QmpSpiceInitialized(
        timestamp=timestamp, channel_type=int(client["channel-type"]),
        connection_id=int(client["connection-id"]), channel_id=int(client.get("channel-id", 0)),
        tls=bool(client.get("tls", False)), **_spice_client(data))


_Parser = Callable[[Mapping[str, Any], float], QmpEvent]

_PARSERS: Mapping[str, _Parser] = {
    "SHUTDOWN": lambda d, t: QmpShutdown(
        timestamp=t, guest=bool(d["guest"]), reason=str(d.get("reason", ""))
    ),
    "POWERDOWN": lambda d, t: QmpPowerdown(timestamp=t),
    "RESET": lambda d, t: QmpReset(
        timestamp=t, guest=bool(d["guest"]), reason=str(d.get("reason", ""))
    ),
    "STOP": lambda d, t: QmpStop(timestamp=t),
    "RESUME": lambda d, t: QmpResume(timestamp=t),
    "DEVICE_TRAY_MOVED": lambda d, t: QmpDeviceTrayMoved(
        timestamp=t, id=str(d.get("id", "")), device=str(d.get("device", "")),
        tray_open=bool(d["tray-open"]),
    ),
    "BALLOON_CHANGE": lambda d, t: QmpBalloonChange(timestamp=t, actual=int(d["actual"])),
    "DEVICE_DELETED": lambda d, t: QmpDeviceDeleted(
        timestamp=t, device=str(d.get("device", "")), path=str(d["path"])
    ),
    "ACPI_DEVICE_OST": lambda d, t: QmpAcpiDeviceOst(
        timestamp=t, device=str(d["info"].get("device", "")), slot=str(d["info"]["slot"]),
        slot_type=str(d["info"]["slot-type"]), source=int(d["info"]["source"]),
        status=int(d["info"]["status"]),
    ),
    "VSERPORT_CHANGE": lambda d, t: QmpVserportChange(
        timestamp=t, id=str(d["id"]), open=bool(d["open"])
    ),
    "BLOCK_IO_ERROR": lambda d, t: QmpBlockIoError(
        timestamp=t, device=str(d.get("device", "")), node_name=str(d.get("node-name", "")),
        operation=str(d["operation"]), action=str(d["action"]),
        nospace=bool(d.get("nospace", False)), reason=str(d.get("reason", "")),
    ),
    "GUEST_PANICKED": lambda d, t: QmpGuestPanicked(
        timestamp=t, action=str(d["action"]), info=d.get("info")
    ),
    "GUEST_CRASHLOADED": lambda d, t: QmpGuestCrashloaded(
        timestamp=t, action=str(d["action"]), info=d.get("info")
    ),
    "SPICE_CONNECTED": lambda d, t: QmpSpiceConnected(timestamp=t, **_spice_client(d)),
    "SPICE_INITIALIZED": _spice_channel,
    "SPICE_DISCONNECTED": lambda d, t: QmpSpiceDisconnected(timestamp=t, **_spice_client(d)),
}


def parse_event(name: str, data: Mapping[str, Any] | None, timestamp: float) -> QmpEvent:
    """Turn a QMP event's wire name and data into its typed event.

    Unknown names, and known names whose data does not have the documented shape, become
    :class:`QmpUnknownEvent` (nothing QEMU sends makes this raise).
    """
    payload: Mapping[str, Any] = data if data is not None else {}
    parser = _PARSERS.get(name)
    if parser is not None:
        try:
            return parser(payload, timestamp)
        except (KeyError, TypeError, ValueError, AttributeError):
            pass
    return QmpUnknownEvent(timestamp=timestamp, name=name, data=payload)


def event_timestamp(raw: Mapping[str, Any] | None) -> float:
    """Convert QMP's ``{"seconds": s, "microseconds": us}`` into seconds (0.0 when absent)."""
    if not raw:
        return 0.0
    return float(raw.get("seconds", 0)) + float(raw.get("microseconds", 0)) / 1e6
