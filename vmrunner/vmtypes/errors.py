"""Exceptions of the VM type layer (templates, firmware, state directories).

- :class:`VmTypeError`: base; ``str(exc)`` is one complete, user-facing line.
  - :class:`TemplateError`: a template cannot be found, rendered or understood; names the
    template file and line, and the configuration key when one is missing.
  - :class:`FirmwareNotFoundError`: no firmware files for the configured ``vm.firmware``.
  - :class:`StateError`: a directory or state file cannot be used; names the key
    (``/Runner/dataDir``).
"""

from __future__ import annotations

from pathlib import Path


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
