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
    ("GUEST_CRASHLOADED", {"action": "run"},
     m.QmpGuestCrashloaded(timestamp=1.5, action="run", info=None)),
    ("SPICE_DISCONNECTED", {"client": {"host": "::1", "port": "1"}},
     m.QmpSpiceDisconnected(timestamp=1.5, host="::1", port="1")),
])
def test_known_events(name: str, data: dict[str, Any] | None, expected: m.QmpEvent) -> None:
    assert parse_event(name, data, 1.5) == expected


# What QEMU 7.2 sent while remote-viewer connected (main channel) and went away.
_SERVER = {"port": "5977", "family": "ipv4", "host": "127.0.0.1"}


def test_spice_events_as_qemu_sends_them() -> None:
    connected = {"server": _SERVER,
                 "client": {"port": "36226", "family": "ipv4", "host": "127.0.0.1"}}
    assert parse_event("SPICE_CONNECTED", connected, 1.5) == m.QmpSpiceConnected(
        timestamp=1.5, host="127.0.0.1", port="36226", family="ipv4")
    initialized = {"server": {"auth": "spice", **_SERVER}, "client": {
        "port": "36226", "family": "ipv4", "channel-type": 1, "connection-id": -484278287,
        "host": "127.0.0.1", "channel-id": 0, "tls": False}}
    assert parse_event("SPICE_INITIALIZED", initialized, 1.5) == m.QmpSpiceInitialized(
        timestamp=1.5, host="127.0.0.1", port="36226", family="ipv4", channel_type=1,
        connection_id=-484278287, channel_id=0, tls=False)
    # SPICE_DISCONNECTED has no connection-id (QAPI SpiceBasicInfo): host/port identify it
    assert parse_event("SPICE_DISCONNECTED", connected, 1.5) == m.QmpSpiceDisconnected(
        timestamp=1.5, host="127.0.0.1", port="36226", family="ipv4")


def test_spice_initialized_of_a_second_display_over_tls_on_ipv6() -> None:
    data = {"client": {"host": "::1", "port": "40000", "family": "ipv6", "channel-type": 2,
                       "connection-id": 7, "channel-id": 1, "tls": True}}
    assert parse_event("SPICE_INITIALIZED", data, 2.0) == m.QmpSpiceInitialized(
        timestamp=2.0, host="::1", port="40000", family="ipv6", channel_type=2,
        connection_id=7, channel_id=1, tls=True)


@pytest.mark.parametrize("client", [
    None,
    {"host": "127.0.0.1", "port": "1", "channel-type": 1},  # no connection-id
    {"host": "127.0.0.1", "port": "1", "connection-id": 3},  # no channel-type
    {"host": "127.0.0.1", "port": "1", "channel-type": "main", "connection-id": 3},
])
def test_spice_initialized_without_its_channel_stays_visible(
        client: dict[str, Any] | None) -> None:
    data = {"client": client}
    assert parse_event("SPICE_INITIALIZED", data, 2.0) == m.QmpUnknownEvent(
        timestamp=2.0, name="SPICE_INITIALIZED", data=data)


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
