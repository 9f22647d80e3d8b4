"""Child processes: spawning without a shell, output logging, terminate ladder, sockets."""

from __future__ import annotations

from vmrunner.proc.child import ChildProcess, ExitStatus, spawn
from vmrunner.proc.errors import (
    ProcessError,
    ProcessExitedError,
    ProcessStartError,
)
from vmrunner.proc.sockets import is_socket, remove_stale_socket, wait_for_socket

__all__ = [
    "ChildProcess",
    "ExitStatus",
    "ProcessError",
    "ProcessExitedError",
    "ProcessStartError",
    "is_socket",
    "remove_stale_socket",
    "spawn",
    "wait_for_socket",
]
