"""Events of the child processes (QEMU, swtpm) the ProcessManager starts, watches and stops."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from vmrunner.core import Event

if TYPE_CHECKING:
    from pathlib import Path

    from vmrunner.proc.child import ExitStatus


class ProcessRole(enum.StrEnum):
    """The names under which the runner starts its own children (``StartProcess.name``).

    Components match a child by role (``event.name == ProcessRole.QEMU``); an embedding
    program may start children of its own under any other name.
    """

    QEMU = "qemu"
    SWTPM = "swtpm"


class StartProcess(Event[int], frozen=True, kw_only=True):
    """Start child ``name`` (no shell). Result: its pid. Failure: ``ProcessFailed``."""

    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    stale_sockets: tuple[Path, ...] = ()
    """Sockets the child will create: ones left over by an earlier run are removed first."""


class ProcessStarted(Event[None], frozen=True, kw_only=True):
    """Child ``name`` runs as ``pid``."""

    name: str
    pid: int


class ProcessFailed(Event[None], frozen=True, kw_only=True):
    """Child ``name`` could not be executed."""

    name: str
    reason: str


class ProcessExited(Event[None], frozen=True, kw_only=True):
    """Child ``name`` ended and was reaped; ``stderr_tail`` holds its last stderr lines."""

    name: str
    pid: int
    status: ExitStatus
    stderr_tail: str


class TerminateProcess(Event[None], frozen=True, kw_only=True):
    """SIGTERM child ``name``, SIGKILL after ``grace`` s, reap. Completes when it is gone."""

    name: str
    grace: float = 5.0
