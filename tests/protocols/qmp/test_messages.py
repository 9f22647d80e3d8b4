"""parse_event: wire names and data to typed events (pure; the real-QEMU path is in
test_client.py)."""

from __future__ import annotations

from typing import Any

import pytest

from vmrunner.events import qmp as m
from vmrunner.protocols.qmp.wire import event_timestamp, parse_event


@pytest.mark.parametrize(("name", "data", "expected"), [
    ("SHUTDOWN", {"guest": True, "reason": "guest-shutdown"},
     m.QmpShutdown(timestamp=1.5, guest=True, reason="guest-shutdown")),
    ("POWERDOWN", None, m.QmpPowerdown(timestamp=1.5)),
    ("RESET", {"guest": False, "reason": "host-qmp-system-reset"},
     m.QmpReset(timestamp=1.5, guest=False, reason="host-qmp-system-reset")),
    ("STOP", {}, m.QmpStop(timestamp=1.5)),
    ("RESUME", {}, m.QmpResume(timestamp=1.5)),
    ("DEVICE_TRAY_MOVED", {"device": "", "id": "cd0", "tray-open": True},
     m.QmpDeviceTrayMoved(timestamp=1.5, id="cd0", device="", tray_open=True)),
    ("BALLOON_CHANGE", {"actual": 536870912}, m.QmpBalloonChange(timestamp=1.5, actual=536870912)),
    ("DEVICE_DELETED", {"device": "cpu-2", "path": "/machine/peripheral/cpu-2"},
     m.QmpDeviceDeleted(timestamp=1.5, device="cpu-2", path="/machine/peripheral/cpu-2")),
    ("ACPI_DEVICE_OST", {"info": {"device": "cpu-2", "slot": "1", "slot-type": "CPU",
                                  "source": 3, "status": 0}},
     m.QmpAcpiDeviceOst(timestamp=1.5, device="cpu-2", slot="1", slot_type="CPU", source=3,
                     status=0)),
    ("VSERPORT_CHANGE", {"id": "channel0", "open": True},
     m.QmpVserportChange(timestamp=1.5, id="channel0", open=True)),
    ("GUEST_PANICKED", {"action": "pause"}, m.QmpGuestPanicked(timestamp=1.5, action="pause",
                                                            info=None)),
    ("SPICE_INITIALIZED", {"client": {"host": "127.0.0.1", "port": "4711",
                                      "channel-type": 1}},
     m.QmpSpiceInitialized(timestamp=1.5, host="127.0.0.1", port="4711", channel_type=1)),
    ("SPICE_DISCONNECTED", {"client": {"host": "::1", "port": "1"}},
     m.QmpSpiceDisconnected(timestamp=1.5, host="::1", port="1")),
])
def test_known_events(name: str, data: dict[str, Any] | None, expected: m.QmpEvent) -> None:
    assert parse_event(name, data, 1.5) == expected


def test_unknown_and_malformed_events_stay_visible() -> None:
    assert parse_event("RTC_CHANGE", {"offset": 3}, 2.0) == m.QmpUnknownEvent(
        timestamp=2.0, name="RTC_CHANGE", data={"offset": 3})
    assert parse_event("SHUTDOWN", {"reason": "x"}, 2.0) == m.QmpUnknownEvent(
        timestamp=2.0, name="SHUTDOWN", data={"reason": "x"})


def test_events_are_frozen() -> None:
    ev = m.QmpPowerdown(timestamp=0.0)
    with pytest.raises(AttributeError):
        ev.timestamp = 1.0  # type: ignore[misc]


def test_timestamp() -> None:
    assert event_timestamp({"seconds": 10, "microseconds": 500000}) == 10.5
    assert event_timestamp(None) == 0.0
