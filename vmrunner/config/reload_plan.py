"""The reload plan: what a configuration change does to the running VM (pure, no bus).

:func:`classify` compares two ``/Runner`` configurations leaf by leaf (the model's values,
defaults included, camelCase key paths such as ``/Runner/vm/drives/1/file``) and puts every
changed leaf into one :class:`PlanClass`:

* ``live``: a controller applies it to the running QEMU now (``currentRam``, ``currentCpus``,
  ``powerdownTimeout``, ``onPanic``, ``resetCounter``, an ``ide-cd`` drive's ``file`` and
  ``forceAfter``, ``vm.display.loggedInUser``);
* ``next-boot``: takes effect when the guest reboots, without restarting QEMU. No key is in
  this class today: QEMU's command line is fixed for the life of the process, and the runner
  changes nothing at a guest reboot;
* ``restart``: takes effect only when the runner (and so QEMU) is started again
  (``maximumRam``, ``maximumCpus``, drives added or removed, network, firmware, template, ...).

Keys not listed as live are ``restart``, so a key added to the model later is never silently
ignored. Values under ``/Runner/cloudInit`` (user-data may hold secrets) and the deprecated
SPICE ``ticket`` (a password) are redacted.
The display password is not a configuration key: it is read from the ``display-password``
file and applied live by the DisplayController.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import msgspec

from vmrunner.config.sizes import format_memory
from vmrunner.events.config import REDACTED, PlanClass, PlanEntry

if TYPE_CHECKING:
    from vmrunner.config.model import RunnerConfig

ROOT = "/Runner"
SENSITIVE = ("/Runner/cloudInit", "/Runner/vm/display/spice/ticket")
"""Key paths (and everything below them) whose values are never shown."""


class _Rule(msgspec.Struct, frozen=True):
    klass: PlanClass
    reason: str


_LIVE_KEYS: Mapping[str, _Rule] = MappingProxyType({
    "/Runner/vm/currentRam": _Rule(PlanClass.LIVE, "balloon target, RamController"),
    "/Runner/vm/currentCpus": _Rule(
        PlanClass.LIVE, "vCPU hot-add or unplug, CpuController; under QEMU 7.2 with TCG an "
        "unplug, and re-plugging a freed slot, are refused and need a restart"),
    "/Runner/vm/powerdownTimeout": _Rule(
        PlanClass.LIVE, "shutdown deadline, PowerdownHandler; also during a shutdown"),
    "/Runner/vm/onPanic": _Rule(
        PlanClass.LIVE, "QEMU's panic action (set-action) and the runner's, PanicHandler"),
    "/Runner/resetCounter": _Rule(PlanClass.LIVE, "an increment resets the VM, ResetController"),
    "/Runner/guestShutdownStops": _Rule(
        PlanClass.LIVE, "nothing to apply to QEMU; used after a guest power-off "
        "(VM-Operator's spec patch)"),
    "/Runner/vm/display/loggedInUser": _Rule(
        PlanClass.LIVE, "login or logout through the guest's vmop agent, VmopAgent"),
})

_CD_LIVE: Mapping[str, _Rule] = MappingProxyType({
    "file": _Rule(PlanClass.LIVE, "CD-ROM medium change, CdromController"),
    "forceAfter": _Rule(PlanClass.LIVE, "used by the next CD-ROM medium change"),
})

_RESTART_GROUPS: tuple[tuple[str, str], ...] = (
    ("/Runner/vm/maximumRam", "QEMU's -m is fixed for the life of the process"),
    ("/Runner/vm/maximumCpus", "maxcpus is fixed for the life of the process"),
    ("/Runner/vm/sockets", "the CPU topology is fixed for the life of the process"),
    ("/Runner/vm/diesPerSocket", "the CPU topology is fixed for the life of the process"),
    ("/Runner/vm/coresPerDie", "the CPU topology is fixed for the life of the process"),
    ("/Runner/vm/threadsPerCore", "the CPU topology is fixed for the life of the process"),
    ("/Runner/vm/network", "network devices are fixed in QEMU's command line"),
    ("/Runner/vm/display", "display devices and SPICE options are fixed in QEMU's command "
     "line; the password changes live through the display-password file"),
    ("/Runner/vm/useTpm", "the TPM and swtpm are set up when the runner starts"),
    ("/Runner/vm/firmware", "the firmware is loaded when QEMU starts"),
    ("/Runner/vm/kernel", "QEMU loads the kernel when it starts"),
    ("/Runner/cloudInit", "the cloud-init image is made when the runner starts"),
    ("/Runner/dataDir", "used when the runner prepares the VM"),
    ("/Runner/runtimeDir", "used when the runner prepares the VM"),
    ("/Runner/template", "the VM type is rendered when the runner starts"),
    ("/Runner/templateDirs", "the VM type is rendered when the runner starts"),
    ("/Runner/updateTemplate", "used when the runner starts"),
)
_DEFAULT_RESTART = "fixed in QEMU's command line"

def classify(old: RunnerConfig, new: RunnerConfig) -> tuple[PlanEntry, ...]:
    """One :class:`PlanEntry` per leaf key whose value differs between ``old`` and ``new``,
    in key order (see the module docs)."""
    return classify_values(_dump(old), _dump(new))


def classify_values(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[PlanEntry, ...]:
    """:func:`classify` on dumped values (``model_dump(mode="json", by_alias=True)``)."""
    old_drives = _list(old.get("vm", {}), "drives")
    new_drives = _list(new.get("vm", {}), "drives")
    changes: list[tuple[str, Any, Any]] = []
    _diff(ROOT, old, new, changes)
    entries = []
    for path, before, after in sorted(changes, key=lambda c: _sort_key(c[0])):
        rule = _rule(path, old_drives, new_drives)
        entries.append(PlanEntry(path, _public(path, before), _public(path, after),
                                 rule.klass, rule.reason))
    return tuple(entries)


def _dump(config: RunnerConfig) -> dict[str, Any]:
    return config.model_dump(mode="json", by_alias=True)


def _list(values: object, key: str) -> list[Any]:
    if isinstance(values, Mapping):
        found = values.get(key)
        if isinstance(found, list):
            return found
    return []


def _diff(path: str, old: Any, new: Any, out: list[tuple[str, Any, Any]]) -> None:
    """Collect ``(path, old, new)`` for each difference: a changed scalar, or a whole
    subtree where a key or list element appears, vanishes or changes its kind."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in [*old, *(k for k in new if k not in old)]:
            sub = f"{path}/{key}"
            if key not in new or key not in old:
                out.append((sub, old.get(key), new.get(key)))
            else:
                _diff(sub, old[key], new[key], out)
    elif isinstance(old, list) and isinstance(new, list):
        for index in range(max(len(old), len(new))):
            sub = f"{path}/{index}"
            if index >= len(old) or index >= len(new):
                out.append((sub, old[index] if index < len(old) else None,
                            new[index] if index < len(new) else None))
            else:
                _diff(sub, old[index], new[index], out)
    elif not (type(old) is type(new) and old == new):
        out.append((path, old, new))


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _sort_key(path: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in path.split("/"))


def _rule(path: str, old_drives: list[Any], new_drives: list[Any]) -> _Rule:
    if path in _LIVE_KEYS:
        return _LIVE_KEYS[path]
    if path.startswith("/Runner/vm/drives/"):
        return _drive_rule(path, old_drives, new_drives)
    for prefix, reason in _RESTART_GROUPS:
        if path == prefix or path.startswith(prefix + "/"):
            return _Rule(PlanClass.RESTART, reason)
    return _Rule(PlanClass.RESTART, _DEFAULT_RESTART)


def _drive_rule(path: str, old_drives: list[Any], new_drives: list[Any]) -> _Rule:
    parts = path.split("/")  # "", Runner, vm, drives, N, key...
    index = int(parts[4])
    if index >= len(old_drives):
        return _Rule(PlanClass.RESTART, f"drive {index} added: adding a drive needs a restart")
    if index >= len(new_drives):
        return _Rule(PlanClass.RESTART,
                     f"drive {index} removed: removing a drive needs a restart")
    before, after = old_drives[index], new_drives[index]
    cd = all(isinstance(d, Mapping) and d.get("type") == "ide-cd" for d in (before, after))
    key = parts[5] if len(parts) > 5 else ""
    if cd and key in _CD_LIVE:
        return _CD_LIVE[key]
    if isinstance(before, Mapping) and isinstance(after, Mapping) and (
            before.get("type") != after.get("type")):
        return _Rule(PlanClass.RESTART, f"drive {index} changed its type: the drive's device "
                     "is fixed in QEMU's command line")
    return _Rule(PlanClass.RESTART, "a drive's device and backend are fixed in QEMU's "
                 "command line (only an ide-cd drive's medium changes live)")


def _sensitive(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in SENSITIVE)


def _public(path: str, value: Any) -> Any:
    if value is None:
        return None
    return REDACTED if _sensitive(path) else _freeze(value)


def describe(entry: PlanEntry) -> str:
    """``/Runner/vm/maximumRam: 1 GiB → 2 GiB: needs restart (...)``."""
    return (f"{entry.path}: {_show(entry.path, entry.old)} → {_show(entry.path, entry.new)}: "
            f"{entry.klass.label} ({entry.reason})")


def _show(path: str, value: Any) -> str:
    if value is None:
        return "(unset)"
    if path.endswith("Ram") and isinstance(value, int) and not isinstance(value, bool):
        return format_memory(value)
    if isinstance(value, str):
        return value if value == REDACTED else repr(value)
    if isinstance(value, Mapping | tuple):
        return json.dumps(_thaw(value), separators=(", ", ": "))
    return repr(value)


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items() if v is not None}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value
