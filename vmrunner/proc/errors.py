"""Errors of the child-process helpers."""

from __future__ import annotations

from collections.abc import Sequence


class ProcessError(Exception):
    """Base class of the child-process errors."""


class ProcessStartError(ProcessError):
    """A child could not be executed (missing binary, permission...)."""

    def __init__(self, name: str, argv: Sequence[str], reason: str) -> None:
        super().__init__(f"cannot start {name} ({argv[0] if argv else '?'}): {reason}")
        self.name = name
        self.argv = list(argv)


class ProcessExitedError(ProcessError):
    """A child exited while it was expected to keep running (e.g. before becoming ready)."""

    def __init__(self, name: str, status: str, stderr_tail: str) -> None:
        text = f"{name} {status}"
        if stderr_tail:
            text += f"; its last output:\n{stderr_tail}"
        super().__init__(text)
        self.name = name
        self.status = status
        self.stderr_tail = stderr_tail

