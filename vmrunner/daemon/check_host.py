"""``vmrunner check --host``: can this host run the VM? In the manner of ``virt-host-validate``.

One line per check, ``PASS``, ``WARN`` or ``FAIL``, then the subject and why::

    PASS  qemu: /usr/bin/qemu-system-x86_64: QEMU emulator version 7.2.22 (...)
    WARN  kvm: /dev/kvm exists but no kvm_intel/kvm_amd module is loaded (found: kvm, kvm_pvm)

Checks: QEMU and swtpm (found as the standard template finds them, with their versions),
``/dev/kvm``, OVMF (per firmware kind) and, for each tap NIC of the configuration, the bridge
and QEMU's bridge helper's ``bridge.conf``. Without a configuration (none at the default
path) the checks are generic and a missing piece is a WARN; with one, what it needs (``useTpm``
→ swtpm, ``accelerator: kvm`` → KVM, a UEFI ``firmware`` → OVMF, a tap NIC → its bridge) is a
FAIL when missing. Exit code: 0 without FAIL, 7 (``ExitCode.HOST_ERROR``) with one, 2 when
the named configuration is invalid.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal, TextIO

import msgspec

from vmrunner.components.exit_codes import ExitCode
from vmrunner.config.model import RunnerConfig
from vmrunner.vmtypes.errors import FirmwareNotFoundError
from vmrunner.vmtypes.firmware import CANDIDATES, find_firmware
from vmrunner.vmtypes.kvm import kvm_verdict

Status = Literal["PASS", "WARN", "FAIL"]

QEMU_CANDIDATES = ("/usr/bin/qemu-system-x86_64", "/usr/libexec/qemu-kvm", "qemu-system-x86_64")
"""As the standard template lists them (``templates/Standard-VM.yaml.mako``)."""
SWTPM_CANDIDATES = ("/usr/bin/swtpm", "swtpm")
BRIDGE_HELPERS = (Path("/usr/lib/qemu/qemu-bridge-helper"),
                  Path("/usr/libexec/qemu-bridge-helper"))
BRIDGE_CONF = Path("/etc/qemu/bridge.conf")
SYS_NET = Path("/sys/class/net")
DEFAULT_BRIDGE = "br0"
"""QEMU's bridge helper's default when a tap NIC names none."""


class Check(msgspec.Struct, frozen=True):
    """One line of the report."""

    status: Status
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.status:<4}  {self.subject}: {self.detail}"


def _find(candidates: Sequence[str]) -> str | None:
    for candidate in candidates:
        found = shutil.which(candidate) if "/" not in candidate else (
            candidate if os.access(candidate, os.X_OK) else None)
        if found is not None:
            return found
    return None


def _version(executable: str) -> str:
    try:
        done = subprocess.run([executable, "--version"], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"--version failed: {exc}"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0].split(", Copyright")[0] if lines else f"--version exit {done.returncode}"


def _program(name: str, candidates: Sequence[str], needed: bool, why: str) -> Check:
    found = _find(candidates)
    if found is None:
        return Check("FAIL" if needed else "WARN", name,
                     f"not found (tried {', '.join(candidates)}); {why}")
    return Check("PASS", name, f"{found}: {_version(found)}")


def _kvm(config: RunnerConfig | None) -> Check:
    usable, reason = kvm_verdict()
    if usable:
        return Check("PASS", "kvm", reason)
    needed = config is not None and config.vm.accelerator == "kvm"
    return Check("FAIL" if needed else "WARN", "kvm",
                 reason + ("; /Runner/vm/accelerator is kvm (use tcg or auto here)" if needed
                           else "; guests run under TCG (emulation, much slower)"))


def _firmware(config: RunnerConfig | None) -> Iterator[Check]:
    kinds = [config.vm.firmware] if config is not None else ["uefi", "secure"]
    for kind in kinds:
        if not CANDIDATES.get(kind):
            continue
        try:
            files = find_firmware(kind)
        except FirmwareNotFoundError as exc:
            yield Check("FAIL" if config is not None else "WARN", f"ovmf ({kind})",
                        f"{exc} (Debian: apt install ovmf)")
            continue
        assert files is not None
        yield Check("PASS", f"ovmf ({kind})", f"{files.code} + {files.vars_template}")


def bridge_conf_allows(bridge: str, conf: Path, seen: set[Path]) -> bool | None:
    """Whether the helper's ACL file allows ``bridge`` (``None``: cannot read it)."""
    if conf in seen:
        return False
    seen.add(conf)
    try:
        lines = conf.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        words = line.split("#", 1)[0].split()
        if len(words) != 2:
            continue
        if words[0] == "allow" and words[1] in (bridge, "all"):
            return True
        if words[0] == "include":
            for included in sorted(Path("/").glob(words[1].lstrip("/"))):
                if bridge_conf_allows(bridge, included, seen):
                    return True
    return False


def _bridges(config: RunnerConfig) -> Iterator[Check]:
    for index, nic in enumerate(config.vm.network):
        if nic.type != "tap":
            continue
        bridge = nic.bridge or DEFAULT_BRIDGE
        subject = f"bridge {bridge} (/Runner/vm/network/{index})"
        if not (SYS_NET / bridge / "bridge").is_dir():
            what = "is not a bridge" if (SYS_NET / bridge).exists() else "does not exist"
            yield Check("FAIL", subject, f"{bridge} {what} (create it, or use 'type: user')")
            continue
        helper = next((h for h in BRIDGE_HELPERS if h.exists()), None)
        if helper is None:
            yield Check("FAIL", subject, "exists, but QEMU's qemu-bridge-helper is not "
                        f"installed (tried {', '.join(map(str, BRIDGE_HELPERS))})")
            continue
        allowed = bridge_conf_allows(bridge, BRIDGE_CONF, set())
        if allowed is None:
            yield Check("FAIL", subject, f"exists, but {BRIDGE_CONF} cannot be read: the "
                        f"bridge helper refuses every bridge (add 'allow {bridge}')")
        elif not allowed:
            yield Check("FAIL", subject, f"exists, but {BRIDGE_CONF} does not allow it "
                        f"(add 'allow {bridge}')")
        else:
            yield Check("PASS", subject, f"a bridge, allowed in {BRIDGE_CONF} ({helper})")


def host_checks(config: RunnerConfig | None) -> list[Check]:
    """Every check, for ``config`` (``None``: generic)."""
    tpm = config is not None and config.vm.use_tpm
    checks = [
        _program("qemu", QEMU_CANDIDATES, True, "Debian: apt install qemu-system-x86"),
        _program("swtpm", SWTPM_CANDIDATES, tpm,
                 "needed for useTpm (Debian: apt install swtpm swtpm-tools)"),
        _kvm(config),
        *_firmware(config),
    ]
    if config is not None:
        checks += _bridges(config)
    return checks


def host_main(config_file: Path, *, optional: bool, out: TextIO = sys.stdout) -> int:
    """Print the checks for ``config_file`` (generic when ``optional`` and it is absent);
    return the exit code (see the module docstring)."""
    from vmrunner.config.validate import load_config

    config = None
    if optional and not config_file.exists():
        print(f"(no configuration at {config_file}: generic checks; pass -c/--config "
              "to check what a VM needs)", file=out)
    else:
        validation = load_config(config_file)
        if not validation.ok or validation.config is None:
            for problem in validation.errors:
                print(problem, file=out)
            return ExitCode.CONFIG_ERROR
        config = validation.config
    checks = host_checks(config)
    for check in checks:
        print(check, file=out)
    return ExitCode.HOST_ERROR if any(c.status == "FAIL" for c in checks) else ExitCode.OK
