"""Every event the runner's components exchange, by theme; all are re-exported here.

* :mod:`.lifecycle`: the runner's states, the start sequence, the shutdown ladder;
* :mod:`.processes`: child processes (QEMU, swtpm) and their roles;
* :mod:`.qmp`: QMP commands (``ExecuteQmp``) and one class per QMP event from QEMU;
* :mod:`.guest`: the QEMU guest agent;
* :mod:`.console`: the SPICE console client;
* :mod:`.changes`: outcomes of live changes (RAM, vCPUs, reset, CD-ROM, display password);
* :mod:`.config`: the reload plan of an accepted configuration change;
* :mod:`.status`: the status query the components answer (``GET /status``).

Components never call each other; they fire and handle these (docs/architecture.md).
An event typed ``Event[R]`` may be completed with a result of type ``R``.
"""

from __future__ import annotations

from vmrunner.events.changes import (
    CdromEjectedByGuest,
    CdromMediumChange,
    CpuChange,
    DisplayPasswordChange,
    Outcome,
    RamChange,
    ResetChange,
)
from vmrunner.events.config import PlanClass, PlanEntry, ReloadPlan
from vmrunner.events.console import ConsoleConnected, ConsoleDisconnected
from vmrunner.events.guest import (
    GuestAgentConnected,
    GuestAgentDisconnected,
    GuestShutdown,
    OsInfo,
)
from vmrunner.events.lifecycle import (
    ConfigureQemu,
    EscalateShutdown,
    MonitorReady,
    QemuStarted,
    Rung,
    RunnerStateChanged,
    RunState,
    ShutdownRung,
    StartFailed,
    StartQemu,
    StopPhase,
    SwtpmReady,
    TerminationSignal,
    VmContinued,
    VmPrepared,
)
from vmrunner.events.processes import (
    ProcessExited,
    ProcessFailed,
    ProcessRole,
    ProcessStarted,
    StartProcess,
    TerminateProcess,
)
from vmrunner.events.qmp import (
    ExecuteQmp,
    MonitorClosed,
    QmpAcpiDeviceOst,
    QmpBalloonChange,
    QmpDeviceDeleted,
    QmpDeviceTrayMoved,
    QmpEvent,
    QmpGuestPanicked,
    QmpPowerdown,
    QmpReply,
    QmpReset,
    QmpResume,
    QmpShutdown,
    QmpSpiceClientEvent,
    QmpSpiceConnected,
    QmpSpiceDisconnected,
    QmpSpiceInitialized,
    QmpStop,
    QmpUnknownEvent,
    QmpVserportChange,
)
from vmrunner.events.status import (
    CdromDriveStatus,
    CdromStatus,
    ConfigStatus,
    ConsoleClientStatus,
    ConsoleStatus,
    CpuStatus,
    GuestAgentStatus,
    ProcessStatus,
    RamStatus,
    RunnerStatus,
    ShutdownStatus,
    StatusPart,
    StatusQuery,
)

__all__ = [
    "CdromDriveStatus",
    "CdromEjectedByGuest",
    "CdromMediumChange",
    "CdromStatus",
    "ConfigStatus",
    "ConfigureQemu",
    "ConsoleClientStatus",
    "ConsoleConnected",
    "ConsoleDisconnected",
    "ConsoleStatus",
    "CpuChange",
    "CpuStatus",
    "DisplayPasswordChange",
    "EscalateShutdown",
    "ExecuteQmp",
    "GuestAgentConnected",
    "GuestAgentDisconnected",
    "GuestAgentStatus",
    "GuestShutdown",
    "MonitorClosed",
    "MonitorReady",
    "OsInfo",
    "Outcome",
    "PlanClass",
    "PlanEntry",
    "ProcessExited",
    "ProcessFailed",
    "ProcessRole",
    "ProcessStarted",
    "ProcessStatus",
    "QemuStarted",
    "QmpAcpiDeviceOst",
    "QmpBalloonChange",
    "QmpDeviceDeleted",
    "QmpDeviceTrayMoved",
    "QmpEvent",
    "QmpGuestPanicked",
    "QmpPowerdown",
    "QmpReply",
    "QmpReset",
    "QmpResume",
    "QmpShutdown",
    "QmpSpiceClientEvent",
    "QmpSpiceConnected",
    "QmpSpiceDisconnected",
    "QmpSpiceInitialized",
    "QmpStop",
    "QmpUnknownEvent",
    "QmpVserportChange",
    "RamChange",
    "RamStatus",
    "ReloadPlan",
    "ResetChange",
    "RunState",
    "Rung",
    "RunnerStateChanged",
    "RunnerStatus",
    "ShutdownRung",
    "ShutdownStatus",
    "StartFailed",
    "StartProcess",
    "StartQemu",
    "StatusPart",
    "StatusQuery",
    "StopPhase",
    "SwtpmReady",
    "TerminateProcess",
    "TerminationSignal",
    "VmContinued",
    "VmPrepared",
]
