"""What Linux tells about a running process and its network interfaces, read from ``/proc``
(cheap: a few small reads, done at scrape time).

Invariants: every reader returns ``None`` (or an empty result) when the process, thread or
interface is gone or the file cannot be parsed; none raises for a vanished process. CPU times
are seconds (clock ticks divided by ``SC_CLK_TCK``), memory sizes bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

PROC = Path("/proc")
TUN_DEVICE = "/dev/net/tun"
NIC_COUNTERS = ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets")


class CpuTimes(msgspec.Struct, frozen=True):
    """User and system CPU seconds of a process or thread."""

    user: float
    system: float


def _ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def cpu_times(pid: int, tid: int | None = None) -> CpuTimes | None:
    """``utime``/``stime`` of process ``pid`` (or its thread ``tid``) from ``stat``."""
    base = PROC / str(pid) if tid is None else PROC / str(pid) / "task" / str(tid)
    text = _read(base / "stat")
    if text is None:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = text[text.rfind(")") + 2:].split()
    try:
        utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    except (IndexError, ValueError):
        return None
    ticks = _ticks()
    return CpuTimes(user=utime / ticks, system=stime / ticks)


def resident_bytes(pid: int) -> int | None:
    """``VmRSS`` of ``pid`` in bytes (``status`` gives kB)."""
    text = _read(PROC / str(pid) / "status")
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            parts = line.split()
            try:
                return int(parts[1]) * 1024
            except (IndexError, ValueError):
                return None
    return None


def tap_interfaces(pid: int) -> list[str]:
    """The names of the tun/tap interfaces whose file descriptors ``pid`` holds, in fd order
    (the kernel's ``iff:`` line in ``fdinfo``; qemu-bridge-helper passes QEMU such an fd)."""
    fd_dir = PROC / str(pid) / "fd"
    try:
        fds = sorted(int(name) for name in os.listdir(fd_dir) if name.isdecimal())
    except OSError:
        return []
    names: list[str] = []
    for fd in fds:
        try:
            if os.readlink(fd_dir / str(fd)) != TUN_DEVICE:
                continue
        except OSError:
            continue
        info = _read(PROC / str(pid) / "fdinfo" / str(fd)) or ""
        for line in info.splitlines():
            if line.startswith("iff:"):
                name = line[4:].strip()
                if name and name not in names:
                    names.append(name)
    return names


def nic_counters(pid: int) -> dict[str, dict[str, int]]:
    """:data:`NIC_COUNTERS` of every interface in the network namespace of ``pid``, by name,
    from ``/proc/<pid>/net/dev`` (that process's namespace, unlike ``/sys/class/net``, which
    shows the namespace it was mounted in). Counts are from the host's side: a tap's rx is
    what the guest sent."""
    text = _read(PROC / str(pid) / "net" / "dev")
    found: dict[str, dict[str, int]] = {}
    for line in (text or "").splitlines()[2:]:
        name, sep, numbers = line.partition(":")
        fields = numbers.split()
        if not sep or len(fields) < 16:
            continue
        try:
            found[name.strip()] = {"rx_bytes": int(fields[0]), "rx_packets": int(fields[1]),
                                   "tx_bytes": int(fields[8]), "tx_packets": int(fields[9])}
        except ValueError:
            continue
    return found
