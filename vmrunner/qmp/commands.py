"""Typed QMP commands.

Each command is a frozen dataclass with the QMP wire name in ``name`` and its JSON arguments
from :meth:`QmpCommand.arguments`. The results are returned untyped (the JSON ``return``
value) by :meth:`vmrunner.qmp.client.QmpClient.execute`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

ReadOnlyMode = Literal["retain", "read-only", "read-write"]
PasswordProtocol = Literal["spice", "vnc"]


@dataclass(frozen=True, slots=True, kw_only=True)
class QmpCommand:
    """Base of all commands: a wire ``name`` and the JSON ``arguments()``."""

    name: ClassVar[str]

    def arguments(self) -> dict[str, Any]:
        """The command's ``arguments`` object (empty when it takes none)."""
        return {}


@dataclass(frozen=True, slots=True, kw_only=True)
class Cont(QmpCommand):
    """Start or resume the vCPUs (the VM was started with ``-S``)."""

    name: ClassVar[str] = "cont"


@dataclass(frozen=True, slots=True, kw_only=True)
class Stop(QmpCommand):
    """Pause the vCPUs."""

    name: ClassVar[str] = "stop"


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemPowerdown(QmpCommand):
    """Press the ACPI power button. Success says nothing about whether the guest reacts."""

    name: ClassVar[str] = "system_powerdown"


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemReset(QmpCommand):
    """Hard-reset the VM."""

    name: ClassVar[str] = "system_reset"


@dataclass(frozen=True, slots=True, kw_only=True)
class Quit(QmpCommand):
    """Make QEMU exit at once (like pulling the plug, after flushing its own buffers)."""

    name: ClassVar[str] = "quit"


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryStatus(QmpCommand):
    """``{"running": bool, "status": "prelaunch"|"running"|"paused"|..., ...}``."""

    name: ClassVar[str] = "query-status"


@dataclass(frozen=True, slots=True, kw_only=True)
class Balloon(QmpCommand):
    """Set the balloon target, in bytes. Success only means "requested"."""

    name: ClassVar[str] = "balloon"
    value: int

    def arguments(self) -> dict[str, Any]:
        return {"value": self.value}


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryBalloon(QmpCommand):
    """``{"actual": bytes}``."""

    name: ClassVar[str] = "query-balloon"


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryHotpluggableCpus(QmpCommand):
    """List of CPU slots; a slot with ``qom-path`` is in use."""

    name: ClassVar[str] = "query-hotpluggable-cpus"


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryCpusFast(QmpCommand):
    """List of the present vCPUs."""

    name: ClassVar[str] = "query-cpus-fast"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceAdd(QmpCommand):
    """Hot-plug a device; ``props`` are the driver's properties (e.g. ``socket-id``)."""

    name: ClassVar[str] = "device_add"
    driver: str
    id: str
    props: Mapping[str, Any] = field(default_factory=dict)

    def arguments(self) -> dict[str, Any]:
        return {**self.props, "driver": self.driver, "id": self.id}


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceDel(QmpCommand):
    """Request the removal of a device; completion is the ``DEVICE_DELETED`` event."""

    name: ClassVar[str] = "device_del"
    id: str

    def arguments(self) -> dict[str, Any]:
        return {"id": self.id}


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockdevOpenTray(QmpCommand):
    """Open a tray (``id`` = qdev id). Without ``force`` on a locked tray this only sends
    an eject request to the guest and still succeeds: wait for ``DEVICE_TRAY_MOVED``."""

    name: ClassVar[str] = "blockdev-open-tray"
    id: str
    force: bool = False

    def arguments(self) -> dict[str, Any]:
        return {"id": self.id, "force": self.force}


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockdevCloseTray(QmpCommand):
    """Close a tray."""

    name: ClassVar[str] = "blockdev-close-tray"
    id: str

    def arguments(self) -> dict[str, Any]:
        return {"id": self.id}


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockdevRemoveMedium(QmpCommand):
    """Remove the medium from an open tray."""

    name: ClassVar[str] = "blockdev-remove-medium"
    id: str

    def arguments(self) -> dict[str, Any]:
        return {"id": self.id}


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockdevChangeMedium(QmpCommand):
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Eject(QmpCommand):
    """Legacy eject: fails with ``GenericError`` on a locked tray unless ``force``."""

    name: ClassVar[str] = "eject"
    id: str
    force: bool = False

    def arguments(self) -> dict[str, Any]:
        return {"id": self.id, "force": self.force}


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryBlock(QmpCommand):
    """List of block devices with ``tray_open``, ``locked``, ``inserted``..."""

    name: ClassVar[str] = "query-block"


@dataclass(frozen=True, slots=True, kw_only=True)
class SetPassword(QmpCommand):
    """Set the display password. The password is masked in ``repr`` and in traffic logs."""

    name: ClassVar[str] = "set_password"
    protocol: PasswordProtocol
    password: str = field(repr=False)

    def arguments(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "password": self.password}


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpirePassword(QmpCommand):
    """Set the display password's expiry: ``now``, ``never``, ``+SECONDS`` or epoch seconds."""

    name: ClassVar[str] = "expire_password"
    protocol: PasswordProtocol
    time: str

    def arguments(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "time": self.time}


@dataclass(frozen=True, slots=True, kw_only=True)
class RawCommand(QmpCommand):
    """Escape hatch for a command without a class here (e.g. ``qom-set``)."""

    command: str
    args: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.command

    def arguments(self) -> dict[str, Any]:
        return dict(self.args)
