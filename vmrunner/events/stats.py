"""The StatsCollector's answer to :class:`~vmrunner.events.status.StatusQuery`: what
``GET /metrics`` shows of the VM's resource use (:mod:`vmrunner.components.stats`).

QMP-sourced fields (drives, vCPU threads, guest memory) are the last sample, taken on a timer
(``sampled_at``, Unix time); ``/proc`` fields are read when the query is answered.
"""

from __future__ import annotations

import math

import msgspec

from vmrunner.events.qmp import ExecuteQmp
from vmrunner.events.status import StatusPart


class SampleQmp(ExecuteQmp, frozen=True, kw_only=True):
    """A QMP command of the statistics sampler: answered by the QemuMonitor and counted in the
    QMP metrics like any :class:`ExecuteQmp`, but kept out of the event stream and the
    observers (a few every ``interval`` s would crowd out the events that matter)."""

    observable = False


SHUTDOWN_BUCKETS: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
                                       600.0, 900.0, math.inf)
"""Upper bounds in seconds of the shutdown histogram (``powerdownTimeout`` defaults to 900)."""


class ShutdownHistogram(msgspec.Struct, frozen=True, kw_only=True):
    """The durations of completed shutdowns: cumulative counts, one per
    :data:`SHUTDOWN_BUCKETS` bound, and their sum (seconds)."""

    counts: tuple[int, ...] = (0,) * len(SHUTDOWN_BUCKETS)
    total: float = 0.0

    @property
    def count(self) -> int:
        """Observations so far (the ``+Inf`` bucket)."""
        return self.counts[-1]

    def observe(self, seconds: float) -> ShutdownHistogram:
        """This histogram with one more shutdown of ``seconds``."""
        counts = tuple(c + (1 if seconds <= bound else 0)
                       for c, bound in zip(self.counts, SHUTDOWN_BUCKETS, strict=True))
        return ShutdownHistogram(counts=counts, total=self.total + seconds)


class DriveStats(msgspec.Struct, frozen=True, kw_only=True):
    """One block device's totals from ``query-blockstats`` (``drive``: its qdev id, else its
    node name); times in nanoseconds as QEMU counts them."""

    drive: str
    rd_bytes: int = 0
    wr_bytes: int = 0
    rd_operations: int = 0
    wr_operations: int = 0
    flush_operations: int = 0
    rd_total_time_ns: int = 0
    wr_total_time_ns: int = 0
    flush_total_time_ns: int = 0


class VcpuTimes(msgspec.Struct, frozen=True, kw_only=True):
    """One vCPU's thread: CPU seconds (user, system) read from ``/proc``."""

    vcpu: int
    thread_id: int
    user: float
    system: float


class NicStats(msgspec.Struct, frozen=True, kw_only=True):
    """One tap interface's counters from the host side (``/proc/<qemu pid>/net/dev``):
    ``rx`` is what the guest sent, ``tx`` what it was sent."""

    interface: str
    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int


class VmStatsStatus(StatusPart, frozen=True, kw_only=True):
    """The StatsCollector's view (see the module docstring); ``None``: not known (yet).

    ``guest_memory`` holds the balloon driver's ``stat-*`` values that the guest reports
    (``-1``, not reported, is left out), keyed by QEMU's name; ``guest_memory_updated`` is
    the guest's own ``last-update`` (Unix time, 0: never)."""

    uuid: str | None = None
    qemu_version: str | None = None
    qemu_pid: int | None = None
    qemu_started: float | None = None
    qemu_cpu_user: float | None = None
    qemu_cpu_system: float | None = None
    qemu_resident_bytes: int | None = None
    vcpus: tuple[VcpuTimes, ...] = ()
    drives: tuple[DriveStats, ...] = ()
    nics: tuple[NicStats, ...] = ()
    user_networks: int = 0
    """NICs on QEMU's user networking: no host interface, no counters."""
    guest_memory: tuple[tuple[str, int], ...] = ()
    guest_memory_updated: float | None = None
    sampled_at: float | None = None
    sample_seconds: float | None = None
    """How long the last QMP sample took."""
    histogram: ShutdownHistogram = ShutdownHistogram()
    """The shutdowns of this VM so far, across runner processes."""
