"""Runner pieces that need no VM."""

from __future__ import annotations

from vmrunner.daemon.builder import RunnerBuilder
from vmrunner.vmtypes.launch import guest_agent_channel, serial_port_channel, vmop_agent_channel


def test_guest_agent_channel_found_in_argv() -> None:
    argv = ["-device", "virtio-serial-pci,id=virtio-serial0", "-device",
            "virtserialport,bus=virtio-serial0.0,id=channel0,name=org.qemu.guest_agent.0,"
            "chardev=guest-agent-socket"]
    assert guest_agent_channel(argv) == "channel0"


def test_guest_agent_channel_absent_or_other_port() -> None:
    assert guest_agent_channel(["-device", "virtserialport,id=c1,name=com.redhat.spice.0"]) \
        is None
    # an escaped comma inside a value cannot fake the name
    assert guest_agent_channel(
        ["virtserialport,id=x,chardev=a,,name=org.qemu.guest_agent.0"]) is None


def test_vmop_agent_channel_found_by_port_name() -> None:
    argv = ["-device", "virtserialport,bus=virtio-serial0.0,id=channel0,"
            "name=org.qemu.guest_agent.0,chardev=guest-agent-socket",
            "-device", "virtserialport,bus=virtio-serial0.0,id=channel1,"
            "name=org.jdrupes.vmop_agent.0,chardev=vmop-agent-socket"]
    assert vmop_agent_channel(argv) == "channel1"
    assert guest_agent_channel(argv) == "channel0"
    assert serial_port_channel(argv, "com.redhat.spice.0") is None
    assert vmop_agent_channel(argv[:2]) is None
    # without an id the port cannot be matched to QEMU's VSERPORT_CHANGE
    assert vmop_agent_channel(["virtserialport,name=org.jdrupes.vmop_agent.0"]) is None


def test_builder_replaces_and_removes_by_name() -> None:
    builder = RunnerBuilder("unused.yaml")
    names = [c.name for c in builder.components]
    lifecycle = ["ProcessManager", "SwtpmManager", "QemuMonitor", "GuestAgent",
                 "PowerdownHandler"]
    assert [n for n in names if n in lifecycle] == lifecycle  # in start-up order
    builder.remove("GuestAgent")
    assert "GuestAgent" not in [c.name for c in builder.components]
