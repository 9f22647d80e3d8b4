"""Whether KVM can run a stock guest here, and why not: ``/dev/kvm`` read-write **and** a
hardware KVM module (``kvm_intel``/``kvm_amd``) loaded. ``/dev/kvm`` alone is not enough:
other hypervisor modules (e.g. ``kvm_pvm``) provide it too and cannot run stock kernels.
Pure inspection of the host; no probe boot (``vmrunner.testing.accel`` adds one)."""

from __future__ import annotations

import os
from pathlib import Path

HW_KVM_MODULES = ("kvm_intel", "kvm_amd")
SYS_MODULE = Path("/sys/module")
DEV_KVM = Path("/dev/kvm")


def hardware_kvm_module(sys_module: Path = SYS_MODULE) -> str | None:
    """Name of the loaded hardware KVM module, if any."""
    return next((m for m in HW_KVM_MODULES if (sys_module / m).is_dir()), None)


def kvm_verdict(dev_kvm: Path = DEV_KVM, sys_module: Path = SYS_MODULE) -> tuple[bool, str]:
    """(usable, reason): the reason names what is missing, or the module that serves KVM."""
    if not dev_kvm.exists():
        return False, f"{dev_kvm} does not exist (no KVM module loaded, or not passed through)"
    if not os.access(dev_kvm, os.R_OK | os.W_OK):
        return False, f"{dev_kvm} is not readable and writable by this user (uid {os.getuid()})"
    module = hardware_kvm_module(sys_module)
    if module is None:
        others = sorted(p.name for p in sys_module.glob("kvm*")) if sys_module.is_dir() else []
        return False, (f"{dev_kvm} exists but no {'/'.join(HW_KVM_MODULES)} module is loaded "
                       f"(found: {', '.join(others) or 'none'})")
    return True, f"{module} loaded, {dev_kvm} read-write"
