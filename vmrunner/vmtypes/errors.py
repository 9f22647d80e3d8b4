"""Exceptions of the VM type layer (templates, firmware, state directories).

- :class:`VmTypeError`: base; ``str(exc)`` is one complete, user-facing line.
  - :class:`TemplateError`: a template cannot be found, rendered or understood; names the
    template file and line, and the configuration key when one is missing.
  - :class:`FirmwareNotFoundError`: no firmware files for the configured ``vm.firmware``.
  - :class:`StateError`: a directory or state file cannot be used; names the key
    (``/Runner/dataDir``).
    - :class:`HostStateError`: the same, caused by the host rather than the configuration
      (a full or read-only filesystem, an I/O error): retrying later may work.
"""

from __future__ import annotations

import errno
from pathlib import Path

HOST_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.ENOMEM})
"""``OSError.errno`` values that are the host's condition, not the configuration's."""


class VmTypeError(Exception):
    """Base of the errors raised while turning a configuration into command lines."""


class TemplateError(VmTypeError):
    """A template problem; ``template``/``line`` locate it, ``key`` names a config key."""

    def __init__(
        self,
        message: str,
        *,
        template: Path | str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.message = message
        self.template = template
        self.line = line
        self.key = key
        where = ""
        if template is not None:
            where = f"{template}:{line}: " if line is not None else f"{template}: "
        super().__init__(f"{where}{message}")


class TemplateKeyError(TemplateError):
    """The template used a configuration key that is unset or does not exist."""


class FirmwareNotFoundError(VmTypeError):
    """None of the firmware candidates for ``kind`` exists."""

    def __init__(self, kind: str, candidates: list[tuple[str, str]]) -> None:
        tried = "; ".join(f"{code} + {vars_}" for code, vars_ in candidates)
        super().__init__(f"/Runner/vm/firmware: no firmware files for '{kind}' (tried {tried})")
        self.kind = kind


class StateError(VmTypeError):
    """A state directory or file cannot be used; ``key`` is the responsible config key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


class HostStateError(StateError):
    """A :class:`StateError` caused by the host (:data:`HOST_ERRNOS`)."""


def state_error(key: str, message: str, cause: OSError) -> StateError:
    """``StateError(key, message)``, or a :class:`HostStateError` if ``cause`` is the host's."""
    kind = HostStateError if cause.errno in HOST_ERRNOS else StateError
    return kind(key, message)
