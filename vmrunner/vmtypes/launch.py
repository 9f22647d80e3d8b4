"""From a validated configuration to what the start sequence runs: the :class:`LaunchPlan`.

Preparing creates the VM's state (directories, uuid, firmware variables, template copy,
cloud-init image) and renders the swtpm and QEMU command lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from pathlib import Path

    from vmrunner.config.model import RunnerConfig
    from vmrunner.vmtypes.prepare import StartPlan
    from vmrunner.vmtypes.render import Command, RenderedVm
    from vmrunner.vmtypes.state import VmPaths

AGENT_PORT_NAME = "org.qemu.guest_agent.0"
"""The virtio-serial port name of qemu-ga."""
VMOP_AGENT_PORT_NAME = "org.jdrupes.vmop_agent.0"
"""The virtio-serial port name of the vmop agent (auto-login, VM-Operator's contract)."""


class LaunchPlan(msgspec.Struct, frozen=True):
    """What the start sequence runs, fixed when the VM is prepared."""

    config: RunnerConfig
    paths: VmPaths
    qemu: Command
    swtpm: Command | None
    guest_agent_channel: str | None
    """The qdev id of the virtserialport of qemu-ga (e.g. ``channel0``), if the VM has one."""
    vmop_agent_channel: str | None = None
    """The qdev id of the virtserialport of the vmop agent (e.g. ``channel1``), if any."""
    serial_socket: Path | None = None
    """``paths.serial_socket`` when a chardev of QEMU's argv listens on it (the runner then
    reads the serial console and serves ``console.sock`` itself), else ``None``."""


def prepare_vm(config: RunnerConfig) -> tuple[StartPlan, RenderedVm]:
    """Create the VM's state (dirs, uuid, vars, template copy, cloud-init image), render argv.

    :raise vmrunner.vmtypes.errors.VmTypeError: bad paths, firmware or template.
    :raise OSError: the state cannot be written.
    """
    from vmrunner.vmtypes.prepare import plan_start

    plan = plan_start(config, create=True)
    rendered = plan.render()
    spice = config.vm.display.spice if config.vm.display is not None else None
    if spice is not None and spice.ticket is not None:
        from vmrunner.config.spice import spice_password_source
        from vmrunner.vmtypes.state import write_private_file

        if spice_password_source(config) == "ticket":
            write_private_file(plan.inputs.paths.spice_ticket, spice.ticket)
    if config.cloud_init is not None:
        from vmrunner.vmtypes.cloudinit import write_cloud_init_image

        write_cloud_init_image(config.cloud_init, config.vm.name,
                               plan.inputs.paths.cloud_init_image)
    return plan, rendered


def split_option(text: str) -> list[str]:
    """QEMU's comma-separated option string, with ``,,`` as a literal comma."""
    parts, current, index = [], [], 0
    while index < len(text):
        if text[index] == ",":
            if text.startswith(",,", index):
                current.append(",")
                index += 2
                continue
            parts.append("".join(current))
            current = []
        else:
            current.append(text[index])
        index += 1
    parts.append("".join(current))
    return parts


def serial_port_channel(argv: list[str], port_name: str) -> str | None:
    """The qdev id of the virtserialport named ``port_name`` in QEMU's argv (``None`` if
    there is none, or it has no id)."""
    for arg in argv:
        if not arg.startswith("virtserialport,"):
            continue
        options = dict(p.split("=", 1) for p in split_option(arg)[1:] if "=" in p)
        if options.get("name") == port_name and "id" in options:
            return options["id"]
    return None


def guest_agent_channel(argv: list[str]) -> str | None:
    """The qdev id of the virtserialport named ``org.qemu.guest_agent.0`` in QEMU's argv."""
    return serial_port_channel(argv, AGENT_PORT_NAME)


def vmop_agent_channel(argv: list[str]) -> str | None:
    """The qdev id of the virtserialport named ``org.jdrupes.vmop_agent.0`` in QEMU's argv."""
    return serial_port_channel(argv, VMOP_AGENT_PORT_NAME)


def chardev_path_in(argv: list[str], path: Path) -> Path | None:
    """``path`` if a ``-chardev socket`` of QEMU's argv has ``path=`` it, else ``None``."""
    for arg in argv:
        if arg.startswith("socket,"):
            options = dict(p.split("=", 1) for p in split_option(arg)[1:] if "=" in p)
            if options.get("path") == str(path):
                return path
    return None


def launch_plan(config: RunnerConfig, plan: StartPlan, rendered: RenderedVm) -> LaunchPlan:
    """The :class:`LaunchPlan` of a prepared VM (see :func:`prepare_vm`)."""
    return LaunchPlan(config=config, paths=plan.inputs.paths, qemu=rendered.qemu,
                      swtpm=rendered.swtpm,
                      guest_agent_channel=guest_agent_channel(rendered.qemu.argv),
                      vmop_agent_channel=vmop_agent_channel(rendered.qemu.argv),
                      serial_socket=chardev_path_in(rendered.qemu.argv,
                                                    plan.inputs.paths.serial_socket))


def prepare(config: RunnerConfig) -> LaunchPlan:
    """Create the VM's state (dirs, uuid, vars, template copy, cloud-init image), render argv.

    :raise vmrunner.vmtypes.errors.VmTypeError: bad paths, firmware or template.
    """
    return launch_plan(config, *prepare_vm(config))
