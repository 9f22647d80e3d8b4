"""``GET /status``: the components' answers to a :class:`~vmrunner.events.StatusQuery`.

:func:`ask` fires the query and collects one :class:`~vmrunner.events.StatusPart` per
answering component (the Runner, ProcessManager, PowerdownHandler, RamController,
CpuController, CdromController, GuestAgent, ReloadPlanner, ConsoleTracker, VmopAgent,
PauseWatcher, PanicHandler, DiskErrorWatcher,
StatsCollector, SerialConsole);
:class:`Status` puts them together with what the :class:`~vmrunner.api.eventlog.EventLog`
keeps of its own (errors, counters, ``eventSeq``) into the status document. A component
that is missing from the tree (or fails to answer) leaves its part at the defaults: nothing
known.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from vmrunner.events import (
    CdromStatus,
    ConfigStatus,
    ConsoleStatus,
    CpuStatus,
    DiskErrorStatus,
    GuestAgentStatus,
    PanicStatus,
    PauseStatus,
    ProcessRole,
    ProcessStatus,
    RamStatus,
    RunnerStatus,
    RunState,
    ShutdownStatus,
    StatusPart,
    StatusQuery,
    VmopAgentStatus,
)
from vmrunner.events.guest_facts import GuestFactsStatus
from vmrunner.events.serial import SerialConsoleStatus
from vmrunner.events.stats import VmStatsStatus

from .serialize import to_json

if TYPE_CHECKING:
    from pathlib import Path

    from vmrunner.core import Component

    from .eventlog import EventLog

P = TypeVar("P", bound=StatusPart)


async def ask(component: Component) -> list[StatusPart]:
    """Every component's answer to a :class:`StatusQuery` fired by ``component``.

    The query runs on a fresh pipeline, so it is answered while the main pipeline is busy
    (e.g. a handler waiting for QEMU); the answering handlers only read their own state.
    """
    return await component.call_all(StatusQuery())


def _first(parts: Iterable[StatusPart], kind: type[P], default: P) -> P:
    return next((p for p in parts if isinstance(p, kind)), default)


def _path(value: Path | None) -> str | None:
    return None if value is None else str(value)


def _value(value: Any) -> Any:
    return None if value is None else value.value


class Status:
    """The answers to one :class:`StatusQuery` plus the event log (see the module docstring).

    Args:
        parts: the answers (:func:`ask`).
        log: the API's event log (errors, counters, event numbers).
    """

    def __init__(self, parts: Iterable[StatusPart], log: EventLog) -> None:
        parts = list(parts)
        self.log = log
        self.runner = _first(parts, RunnerStatus,
                             RunnerStatus(vm=None, state=RunState.INITIALIZING))
        self.processes = _first(parts, ProcessStatus, ProcessStatus())
        self.shutdown = _first(parts, ShutdownStatus, ShutdownStatus())
        self.ram = _first(parts, RamStatus, RamStatus())
        self.cpus = _first(parts, CpuStatus, CpuStatus())
        self.cdrom = _first(parts, CdromStatus, CdromStatus())
        self.guest_agent = _first(parts, GuestAgentStatus, GuestAgentStatus())
        self.config = _first(parts, ConfigStatus, ConfigStatus())
        self.console = _first(parts, ConsoleStatus, ConsoleStatus())
        self.vmop = _first(parts, VmopAgentStatus, VmopAgentStatus())
        self.pause = _first(parts, PauseStatus, PauseStatus())
        self.panic = _first(parts, PanicStatus, PanicStatus())
        self.disk_errors = _first(parts, DiskErrorStatus, DiskErrorStatus())
        self.stats = _first(parts, VmStatsStatus, VmStatsStatus())
        self.serial = _first(parts, SerialConsoleStatus, SerialConsoleStatus())
        self.guest = _first(parts, GuestFactsStatus, GuestFactsStatus())

    @property
    def state(self) -> RunState:
        """The runner's state."""
        return self.runner.state

    @property
    def ready(self) -> bool:
        """The VM runs: booting or booted, and not paused (by QEMU or the operator)
        (``GET /ready``)."""
        return self.state.vm_active and not self.pause.paused

    @property
    def remaining(self) -> float | None:
        """Seconds left in the graceful shutdown phase (while it runs)."""
        remaining = self.shutdown.remaining
        if remaining is None or self.state is RunState.STOPPED:
            return None
        return max(0.0, remaining)

    def document(self) -> dict[str, Any]:
        """The ``GET /status`` document."""
        runner, shutdown, ram, cpus = self.runner, self.shutdown, self.ram, self.cpus
        counters = self.log.counters
        remaining = self.remaining
        deadline = (None if remaining is None or shutdown.deadline is None
                    else round(time.time() - time.monotonic() + shutdown.deadline, 3))
        last_plan = self.config.last_plan
        return {
            "vm": runner.vm,
            "state": runner.state.value,
            "stateReason": runner.reason,
            "stateSince": round(self.log.created if runner.since is None else runner.since, 3),
            "qemuPid": self.processes.pid(ProcessRole.QEMU),
            "runnerPid": os.getpid(),
            "runnerSince": round(self.log.created, 3),
            "paused": (None if not self.pause.paused else
                       {"reason": self.pause.reason, "detail": self.pause.detail,
                        "since": self.pause.since}),
            "shutdown": {
                "rung": _value(shutdown.rung),
                "rungs": [rung.value for rung in shutdown.rungs],
                "detail": shutdown.detail,
                "deadline": deadline,
                "remaining": None if remaining is None else round(remaining, 1),
                "duration": (None if counters.shutdown_seconds is None
                             else round(counters.shutdown_seconds, 3)),
            },
            "ram": {"maximum": ram.maximum, "requested": ram.requested,
                    "actual": ram.actual, "outcome": _value(ram.outcome)},
            "cpus": {"maximum": cpus.maximum, "requested": cpus.requested,
                     "present": cpus.present, "outcome": _value(cpus.outcome)},
            "cdroms": [
                {"drive": d.drive, "key": d.key, "medium": _path(d.medium),
                 "trayOpen": d.tray_open, "pending": _path(d.pending),
                 "pendingSince": d.pending_since, "lastOutcome": _value(d.last_outcome),
                 "message": d.message}
                for d in self.cdrom.drives],
            "guestAgent": {"connected": self.guest_agent.connected,
                           "osInfo": (None if self.guest_agent.os_info is None
                                      else dict(self.guest_agent.os_info))},
            "guest": guest_document(self.guest),
            "console": {"client": self.console.client,
                        "clients": [{"host": c.host, "port": c.port,
                                     "connectionId": c.connection_id,
                                     "since": round(c.since, 3)}
                                    for c in self.console.clients]},
            "vmopAgent": {"connected": self.vmop.connected,
                          "loggedInUser": self.vmop.logged_in_user,
                          "wantedUser": self.vmop.wanted_user,
                          "lastError": self.vmop.last_error},
            "config": {"generation": self.config.generation,
                       "lastPlan": None if last_plan is None else to_json(last_plan),
                       "restartPending": list(self.config.restart_pending),
                       "rejections": counters.config_rejections},
            "serialConsole": {"connected": self.serial.connected,
                              "bytesSeen": self.serial.bytes_seen,
                              "logFile": self.serial.log_file,
                              "clientPid": self.serial.client_pid},
            "errors": list(self.log.errors),
            "eventSeq": self.log.seq,
        } | self.faults()

    def faults(self) -> dict[str, Any]:
        """The ``panics`` and ``ioErrors`` entries of the status document."""
        panic = self.panic
        return {
            "panics": {
                "policy": panic.policy, "count": panic.count, "resets": panic.resets,
                "last": None if panic.last_time is None else {
                    "time": round(panic.last_time, 3), "action": panic.last_action,
                    "info": None if panic.last_info is None else dict(panic.last_info),
                    "crashLoaded": panic.last_crash_loaded}},
            "ioErrors": [
                {"drive": d.drive, "operation": d.operation, "count": d.count,
                 "action": d.action, "nospace": d.nospace, "reason": d.reason,
                 "lastTime": round(d.last_time, 3)}
                for d in self.disk_errors.drives],
        }


def guest_document(guest: GuestFactsStatus) -> dict[str, Any]:
    """The status document's ``guest``: the agent's state (``responsive``, ``unresponsive``,
    ``disconnected``), its last ping's answer and round trip, and the last facts (camelCase,
    ``null`` until known)."""
    return {"agent": guest.agent.value,
            "lastPong": None if guest.last_pong is None else round(guest.last_pong, 3),
            "pingSeconds": (None if guest.ping_seconds is None
                            else round(guest.ping_seconds, 4)),
            "facts": None if guest.facts is None else to_json(guest.facts)}
