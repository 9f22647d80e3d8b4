"""Decide between KVM and TCG by a real probe, not by the mere existence of /dev/kvm.

On some hosts ``/dev/kvm`` is served by a software hypervisor (e.g. ``kvm_pvm``) that
cannot run a stock guest kernel.  KVM is chosen only when a hardware KVM module
(``kvm_intel``/``kvm_amd``) is loaded and, if a boot probe is given, the test guest
really boots with it.  The verdict is cached per host boot (``boot_id``).
``VMRUNNER_ACCEL=kvm|tcg`` overrides the probe.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec

from vmrunner.vmtypes.kvm import HW_KVM_MODULES, hardware_kvm_module, kvm_verdict

Accel = Literal["kvm", "tcg"]
__all__ = ["HW_KVM_MODULES", "AccelVerdict", "decide_accel", "hardware_kvm_module"]

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


class AccelVerdict(msgspec.Struct, frozen=True):
    """The accelerator to use and why."""

    accel: Accel
    reason: str

    @property
    def label(self) -> str:
        return self.accel.upper()

    def qemu_args(self) -> list[str]:
        if self.accel == "kvm":
            return ["-accel", "kvm", "-cpu", "host"]
        return ["-accel", "tcg", "-cpu", "max"]


def _static_verdict() -> AccelVerdict:
    usable, reason = kvm_verdict()
    return AccelVerdict("kvm" if usable else "tcg", reason)


def _boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return "unknown"


def decide_accel(cache_file: Path | None = None,
                 boot_probe: Callable[[], bool] | None = None) -> AccelVerdict:
    """Pick KVM or TCG.

    ``boot_probe`` (called only when KVM looks usable) boots the guest with KVM and
    says whether it came up; without it a loaded hardware module is taken as proof.
    The verdict is stored in ``cache_file`` (if given) for the current host boot.
    """
    forced = os.environ.get("VMRUNNER_ACCEL", "").lower()
    if forced in ("kvm", "tcg"):
        return AccelVerdict("kvm" if forced == "kvm" else "tcg", "VMRUNNER_ACCEL")
    if forced:
        raise ValueError(f"VMRUNNER_ACCEL: {forced!r} is not kvm or tcg")
    boot = _boot_id()
    if cache_file is not None:
        try:
            cached = json.loads(cache_file.read_text())
            if cached.get("boot_id") == boot and cached.get("accel") in ("kvm", "tcg"):
                return AccelVerdict(cached["accel"], cached["reason"] + " (cached)")
        except (OSError, ValueError):
            pass
    verdict = _static_verdict()
    if verdict.accel == "kvm" and boot_probe is not None:
        verdict = (AccelVerdict("kvm", f"{verdict.reason}; guest boot probe passed")
                   if boot_probe() else
                   AccelVerdict("tcg", f"{verdict.reason}, but the guest did not boot with KVM"))
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps({"boot_id": boot, "accel": verdict.accel,
                                          "reason": verdict.reason}) + "\n")
    return verdict
