"""Errors raised by the QMP client (:mod:`vmrunner.protocols.qmp.client`)."""

from __future__ import annotations


class QmpError(Exception):
    """Base class of every QMP client error."""


class QmpConnectError(QmpError):
    """The monitor socket could not be connected or the QMP session not established."""


class QmpDisconnected(QmpError):
    """The connection is gone (QEMU exited or closed the socket) or was never made."""


class QmpTimeout(QmpError):
    """A command got no reply within its timeout."""


class QmpExecuteError(QmpError):
    """QEMU answered a command with an error response."""

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        super().__init__(f"{command}: {error_class}: {desc}")
        self.command = command
        """The QMP command name that failed (e.g. ``blockdev-open-tray``)."""
        self.error_class = error_class
        """QEMU's error class (``GenericError``, ``CommandNotFound``, ``DeviceNotFound``...)."""
        self.desc = desc
        """QEMU's human readable description."""
