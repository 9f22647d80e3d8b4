"""Command wire names and arguments (the JSON QEMU gets)."""

from __future__ import annotations

from typing import Any

import pytest

from vmrunner.protocols.qmp import commands as c


@pytest.mark.parametrize(("cmd", "name", "args"), [
    (c.Cont(), "cont", {}),
    (c.SystemPowerdown(), "system_powerdown", {}),
    (c.SystemReset(), "system_reset", {}),
    (c.SetAction(panic="pause"), "set-action", {"panic": "pause"}),
    (c.Quit(), "quit", {}),
    (c.Balloon(value=512 << 20), "balloon", {"value": 536870912}),
    (c.QueryHotpluggableCpus(), "query-hotpluggable-cpus", {}),
    (c.DeviceAdd(driver="qemu64-x86_64-cpu", id="cpu-1",
                 props={"socket-id": 1, "core-id": 0, "thread-id": 0}), "device_add",
     {"socket-id": 1, "core-id": 0, "thread-id": 0, "driver": "qemu64-x86_64-cpu",
      "id": "cpu-1"}),
    (c.DeviceDel(id="cpu-1"), "device_del", {"id": "cpu-1"}),
    (c.BlockdevOpenTray(id="cd0", force=True), "blockdev-open-tray",
     {"id": "cd0", "force": True}),
    (c.BlockdevChangeMedium(id="cd0", filename="/a,b.iso"), "blockdev-change-medium",
     {"id": "cd0", "filename": "/a,b.iso", "format": "raw", "read-only-mode": "read-only"}),
    (c.BlockdevChangeMedium(id="cd0", filename="x", force=True), "blockdev-change-medium",
     {"id": "cd0", "filename": "x", "format": "raw", "read-only-mode": "read-only",
      "force": True}),
    (c.Eject(id="cd0"), "eject", {"id": "cd0", "force": False}),
    (c.ExpirePassword(protocol="spice", time="+60"), "expire_password",
     {"protocol": "spice", "time": "+60"}),
    (c.RawCommand(command="qom-get", args={"path": "/machine", "property": "type"}),
     "qom-get", {"path": "/machine", "property": "type"}),
])
def test_wire_form(cmd: c.QmpCommand, name: str, args: dict[str, Any]) -> None:
    assert cmd.name == name
    assert cmd.arguments() == args


def test_password_not_in_repr() -> None:
    cmd = c.SetPassword(protocol="spice", password="hunter2")
    assert "hunter2" not in repr(cmd)
    assert repr(cmd) == "SetPassword(protocol='spice', password='***')"
    assert "hunter2" not in repr(c.SetPassword(protocol="vnc", password="hunter2"))
    assert cmd.arguments() == {"protocol": "spice", "password": "hunter2"}


def test_mutable_defaults_are_not_shared() -> None:
    first, second = c.DeviceAdd(driver="d", id="a"), c.DeviceAdd(driver="d", id="b")
    assert first.props == {} and first.props is not second.props
