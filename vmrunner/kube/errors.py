"""The failure of one API call (importable without the client)."""

from __future__ import annotations


class KubeProblem(Exception):
    """A failed call: ``status`` is the HTTP status (0: no answer in time or no connection,
    -1: the client cannot be set up); ``what`` names the call."""

    def __init__(self, what: str, status: int, message: str) -> None:
        super().__init__(f"{what}: {message}")
        self.what = what
        self.status = status
        self.message = message
