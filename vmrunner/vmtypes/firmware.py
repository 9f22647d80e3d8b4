"""Firmware files per ``vm.firmware`` kind: OVMF code + matching variable-store template.

Candidates are (code, vars) *pairs*, so code and variable store always come from the same
build; the first pair whose two files exist wins. Debian's ``/usr/share/OVMF`` names come
first, then Fedora's ``/usr/share/edk2/ovmf`` and Arch's ``/usr/share/edk2/x64``.
``bios`` (SeaBIOS, built into QEMU) needs no files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import msgspec

from vmrunner.vmtypes.errors import FirmwareNotFoundError

_DEB = "/usr/share/OVMF"
_FED = "/usr/share/edk2/ovmf"
_FED4 = "/usr/share/edk2/ovmf-4m"
_ARCH = "/usr/share/edk2/x64"

_UEFI_2M = (
    (f"{_DEB}/OVMF_CODE.fd", f"{_DEB}/OVMF_VARS.fd"),
    (f"{_FED}/OVMF_CODE.fd", f"{_FED}/OVMF_VARS.fd"),
    (f"{_ARCH}/OVMF_CODE.fd", f"{_ARCH}/OVMF_VARS.fd"),
)
_UEFI_4M = (
    (f"{_DEB}/OVMF_CODE_4M.fd", f"{_DEB}/OVMF_VARS_4M.fd"),
    (f"{_FED4}/OVMF_CODE.fd", f"{_FED4}/OVMF_VARS.fd"),
    (f"{_ARCH}/OVMF_CODE.4m.fd", f"{_ARCH}/OVMF_VARS.4m.fd"),
)
_SECURE_2M = (
    (f"{_DEB}/OVMF_CODE.secboot.fd", f"{_DEB}/OVMF_VARS.ms.fd"),
    (f"{_FED}/OVMF_CODE.secboot.fd", f"{_FED}/OVMF_VARS.secboot.fd"),
    (f"{_ARCH}/OVMF_CODE.secboot.fd", f"{_ARCH}/OVMF_VARS.fd"),
)
_SECURE_4M = (
    (f"{_DEB}/OVMF_CODE_4M.secboot.fd", f"{_DEB}/OVMF_VARS_4M.ms.fd"),
    (f"{_DEB}/OVMF_CODE_4M.ms.fd", f"{_DEB}/OVMF_VARS_4M.ms.fd"),
    (f"{_FED4}/OVMF_CODE.secboot.fd", f"{_FED4}/OVMF_VARS.secboot.fd"),
    (f"{_ARCH}/OVMF_CODE.secboot.4m.fd", f"{_ARCH}/OVMF_VARS.4m.fd"),
)

CANDIDATES: Mapping[str, Sequence[tuple[str, str]]] = {
    "bios": (),
    # plain "uefi" prefers the 2 MiB build (as the reference does) and falls back to 4 MiB
    "uefi": _UEFI_2M + _UEFI_4M,
    "uefi-4m": _UEFI_4M,
    "secure": _SECURE_2M + _SECURE_4M,
    "secure-4m": _SECURE_4M,
}
"""(code, vars template) candidates per firmware kind, best first."""

SECURE_KINDS = frozenset({"secure", "secure-4m"})
"""Kinds that need SMM and a secure pflash."""


class FirmwareFiles(msgspec.Struct, frozen=True):
    """The chosen firmware: read-only code and the template for the per-VM variable store."""

    code: Path
    vars_template: Path
    secure: bool


def find_firmware(
    kind: str, candidates: Mapping[str, Sequence[tuple[str, str]]] = CANDIDATES
) -> FirmwareFiles | None:
    """The firmware files for ``kind``; ``None`` for ``bios``.

    Raises :class:`FirmwareNotFoundError` when no candidate pair exists.
    """
    pairs = list(candidates.get(kind, ()))
    if not pairs:
        return None
    for code, vars_template in pairs:
        if os.path.isfile(code) and os.path.isfile(vars_template):
            return FirmwareFiles(Path(code), Path(vars_template), kind in SECURE_KINDS)
    raise FirmwareNotFoundError(kind, pairs)


def assumed_firmware(
    kind: str, candidates: Mapping[str, Sequence[tuple[str, str]]] = CANDIDATES
) -> FirmwareFiles | None:
    """The first candidate for ``kind`` whether it exists or not (a configuration checked for
    another host); ``None`` for ``bios``."""
    pairs = list(candidates.get(kind, ()))
    if not pairs:
        return None
    code, vars_template = pairs[0]
    return FirmwareFiles(Path(code), Path(vars_template), kind in SECURE_KINDS)
