"""Typed QMP commands.

Each command is a frozen :class:`msgspec.Struct` with the QMP wire name in ``name`` and its
JSON arguments from :meth:`QmpCommand.arguments`. The results are returned untyped (the JSON
``return`` value) by :meth:`vmrunner.protocols.qmp.client.QmpClient.execute`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import msgspec

ReadOnlyMode = Literal["retain", "read-only", "read-write"]
PasswordProtocol = Literal["spice", "vnc"]


class QmpCommand(msgspec.Struct, frozen=True, kw_only=True):
    """Base of all commands: a wire ``name`` and the JSON ``arguments()``."""

    name: ClassVar[str]

    def arguments(self) -> dict[str, Any]:
        """The command's ``arguments`` object (empty when it takes none)."""
        return {}


class Cont(QmpCommand, frozen=True, kw_only=True):
    """Start or resume the vCPUs (the VM was started with ``-S``)."""

    name: ClassVar[str] = "cont"


class Stop(QmpCommand, frozen=True, kw_only=True):
    """Pause the vCPUs."""

    name: ClassVar[str] = "stop"


class SystemPowerdown(QmpCommand, frozen=True, kw_only=True):
    """Press the ACPI power button. Success says nothing about whether the guest reacts."""

    name: ClassVar[str] = "system_powerdown"


class SystemReset(QmpCommand, frozen=True, kw_only=True):
    """Hard-reset the VM."""

    name: ClassVar[str] = "system_reset"


class SetAction(QmpCommand, frozen=True, kw_only=True):
    """What QEMU does on a guest panic (``panic``: ``pause``, ``shutdown``,
    ``exit-failure``, ``none``); QEMU 6.0 or later, the same as ``-action panic=...``."""

    name: ClassVar[str] = "set-action"
    panic: Literal["pause", "shutdown", "exit-failure", "none"]

    def arguments(self) -> dict[str, Any]:
        return {"panic": self.panic}


class Quit(QmpCommand, frozen=True, kw_only=True):
    """Make QEMU exit at once (like pulling the plug, after flushing its own buffers)."""

    name: ClassVar[str] = "quit"


class QueryStatus(QmpCommand, frozen=True, kw_only=True):
    """``{"running": bool, "status": "prelaunch"|"running"|"paused"|..., ...}``."""

    name: ClassVar[str] = "query-status"


class QueryVersion(QmpCommand, frozen=True, kw_only=True):
    """``{"qemu": {"major": int, "minor": int, "micro": int}, "package": str}``."""

    name: ClassVar[str] = "query-version"


class QueryKvm(QmpCommand, frozen=True, kw_only=True):
    """``{"enabled": bool, "present": bool}``: whether this QEMU runs its vCPUs on KVM."""

    name: ClassVar[str] = "query-kvm"


class Balloon(QmpCommand, frozen=True, kw_only=True):
    """Set the balloon target, in bytes. Success only means "requested"."""

    name: ClassVar[str] = "balloon"
    value: int

    def arguments(self) -> dict[str, Any]:
        return {"value": self.value}


class QueryBalloon(QmpCommand, frozen=True, kw_only=True):
    """``{"actual": bytes}``."""

    name: ClassVar[str] = "query-balloon"


class QueryHotpluggableCpus(QmpCommand, frozen=True, kw_only=True):
    """List of CPU slots; a slot with ``qom-path`` is in use."""

    name: ClassVar[str] = "query-hotpluggable-cpus"


class QueryCpusFast(QmpCommand, frozen=True, kw_only=True):
    """List of the present vCPUs."""

    name: ClassVar[str] = "query-cpus-fast"


class DeviceAdd(QmpCommand, frozen=True, kw_only=True):
    """Hot-plug a device; ``props`` are the driver's properties (e.g. ``socket-id``)."""

    name: ClassVar[str] = "device_add"
    driver: str
    id: str
    props: Mapping[str, Any] = msgspec.field(default_factory=dict)

    def arguments(self) -> dict[str, Any]:
        return {**self.props, "driver": self.driver, "id": self.id}


class DeviceDel(QmpCommand, frozen=True, kw_only=True):
    """Request the removal of a device; completion is the ``DEVICE_DELETED`` event."""

    name: ClassVar[str] = "device_del"
    id: str

    def arguments(self) -> dict[str, Any]:
        return {"id": self.id}


class BlockdevOpenTray(QmpCommand, frozen=True, kw_only=True):
    """Open a tray (``id`` = qdev id). Without ``force`` on a locked tray this only sends
    an eject request to the guest and still succeeds: wait for ``DEVICE_TRAY_MOVED``."""

    name: ClassVar[str] = "blockdev-open-tray"
    id: str
    force: bool = False

    def arguments(self) -> dict[str, Any]:
        return {"id": self.id, "force": self.force}


class BlockdevCloseTray(QmpCommand, frozen=True, kw_only=True):
    """Close a tray."""

    name: ClassVar[str] = "blockdev-close-tray"
    id: str

    def arguments(self) -> dict[str, Any]:
        return {"id": self.id}


class BlockdevRemoveMedium(QmpCommand, frozen=True, kw_only=True):
    """Remove the medium from an open tray."""

    name: ClassVar[str] = "blockdev-remove-medium"
    id: str

    def arguments(self) -> dict[str, Any]:
        return {"id": self.id}


class BlockdevChangeMedium(QmpCommand, frozen=True, kw_only=True):
    """Open the tray, replace the medium by ``filename`` and close the tray.

    ``force`` (QEMU ≥ 7.1) opens a tray the guest has locked; it is omitted when ``None``.
    """

    name: ClassVar[str] = "blockdev-change-medium"
    id: str
    filename: str
    format: str = "raw"
    read_only_mode: ReadOnlyMode = "read-only"
    force: bool | None = None

    def arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {
            "id": self.id, "filename": self.filename, "format": self.format,
            "read-only-mode": self.read_only_mode,
        }
        if self.force is not None:
            args["force"] = self.force
        return args


class Eject(QmpCommand, frozen=True, kw_only=True):
    """Legacy eject: fails with ``GenericError`` on a locked tray unless ``force``."""

    name: ClassVar[str] = "eject"
    id: str
    force: bool = False

    def arguments(self) -> dict[str, Any]:
        return {"id": self.id, "force": self.force}


class QueryBlock(QmpCommand, frozen=True, kw_only=True):
    """List of block devices with ``tray_open``, ``locked``, ``inserted``..."""

    name: ClassVar[str] = "query-block"


class SetPassword(QmpCommand, frozen=True, kw_only=True):
    """Set the display password. The password is masked in ``repr`` and in traffic logs."""

    name: ClassVar[str] = "set_password"
    protocol: PasswordProtocol
    password: str

    def __repr__(self) -> str:
        return f"SetPassword(protocol={self.protocol!r}, password='***')"

    def arguments(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "password": self.password}


class ExpirePassword(QmpCommand, frozen=True, kw_only=True):
    """Set the display password's expiry: ``now``, ``never``, ``+SECONDS`` or epoch seconds."""

    name: ClassVar[str] = "expire_password"
    protocol: PasswordProtocol
    time: str

    def arguments(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "time": self.time}


class QueryNamedBlockNodes(QmpCommand, frozen=True, kw_only=True):
    """Every block node (``flat``: without their children repeated inside)."""

    name: ClassVar[str] = "query-named-block-nodes"
    flat: bool = True

    def arguments(self) -> dict[str, Any]:
        return {"flat": self.flat}


class BlockResize(QmpCommand, frozen=True, kw_only=True):
    """Set the size of block node ``node_name`` to ``size`` bytes (the guest is told)."""

    name: ClassVar[str] = "block_resize"
    node_name: str
    size: int

    def arguments(self) -> dict[str, Any]:
        return {"node-name": self.node_name, "size": self.size}


class Screendump(QmpCommand, frozen=True, kw_only=True):
    """Write the display's picture to ``filename`` (``format``: ``png`` or ``ppm``)."""

    name: ClassVar[str] = "screendump"
    filename: str
    format: Literal["png", "ppm"] = "png"

    def arguments(self) -> dict[str, Any]:
        return {"filename": self.filename, "format": self.format}


class RawCommand(QmpCommand, frozen=True, kw_only=True):
    """Escape hatch for a command without a class here (e.g. ``qom-set``)."""

    command: str
    args: Mapping[str, Any] = msgspec.field(default_factory=dict)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.command

    def arguments(self) -> dict[str, Any]:
        return dict(self.args)


class QueryBlockstats(QmpCommand, frozen=True, kw_only=True):
    """I/O totals of every block device (bytes, operations, times in ns)."""

    name: ClassVar[str] = "query-blockstats"


class QomSet(QmpCommand, frozen=True, kw_only=True):
    """Set ``property`` of the QOM object at ``path`` (e.g. the balloon's
    ``guest-stats-polling-interval``)."""

    name: ClassVar[str] = "qom-set"
    path: str
    property: str
    value: Any

    def arguments(self) -> dict[str, Any]:
        return {"path": self.path, "property": self.property, "value": self.value}


class QomGet(QmpCommand, frozen=True, kw_only=True):
    """Read ``property`` of the QOM object at ``path`` (e.g. the balloon's ``guest-stats``)."""

    name: ClassVar[str] = "qom-get"
    path: str
    property: str

    def arguments(self) -> dict[str, Any]:
        return {"path": self.path, "property": self.property}
