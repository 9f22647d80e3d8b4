"""StatsCollector: the VM's resource use for ``GET /metrics``, and the shutdown histogram.

Its node ``/Runner/StatsCollector`` may set ``interval`` (s, default 5: how often QMP is
sampled), ``guestStatsInterval`` (s, default 5; 0: off: the balloon driver's
``guest-stats-polling-interval``) and ``textfileDirectory`` (where the shutdown histogram is
written; default: the VM's dataDir).

Invariants:

* A scrape never waits for QMP: ``query-blockstats``, ``query-cpus-fast`` (the vCPU thread
  ids) and the balloon's ``guest-stats`` are sampled by a task this component owns, every
  ``interval`` s from ``MonitorReady`` until the monitor closes, as
  :class:`~vmrunner.events.stats.SampleQmp` (kept out of the event stream);
  :class:`StatusQuery` is answered from the last sample. ``/proc`` (QEMU's CPU time and
  RSS, each vCPU thread's CPU time, the tap counters in QEMU's network namespace) is read
  when the query is answered.
* A sample part that QEMU refuses is logged once and left empty; the others go on. A VM type
  without ``balloon0`` refuses the polling interval: logged once, the guest memory is not
  asked for until ``guestStatsInterval`` changes. A sample that fails otherwise is logged
  once per failing streak; the sampler goes on.
* Tap NICs are found from QEMU's side (the tun fds it holds, scanned by the sampler); user
  networking has no host interface and no counters (counted in ``user_networks``).
* Each shutdown (``terminating`` to ``stopped``) adds one observation to the histogram in
  ``<textfileDirectory>/vmrunner-<vm>.prom`` (:mod:`.shutdown_histogram`), read back at the
  next start, so it spans runner processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

from vmrunner.components.base import BusComponent
from vmrunner.components.shutdown_histogram import load, save
from vmrunner.core import Channel, Configurable, Stopped, handler
from vmrunner.events import (
    MonitorClosed,
    MonitorReady,
    ProcessExited,
    ProcessRole,
    QemuStarted,
    QmpReply,
    RunnerStateChanged,
    RunState,
    VmPrepared,
)
from vmrunner.events.stats import (
    DriveStats,
    NicStats,
    SampleQmp,
    ShutdownHistogram,
    VcpuTimes,
    VmStatsStatus,
)
from vmrunner.events.status import StatusQuery
from vmrunner.proc import procfs
from vmrunner.protocols.qmp import QmpDisconnected, commands
from vmrunner.protocols.qmp.commands import QmpCommand

_log = logging.getLogger(__name__)

BALLOON_PATH = "/machine/peripheral/balloon0"
"""The balloon's QOM path (``id=balloon0`` in the standard VM type)."""
DRIVE_FIELDS = ("rd_bytes", "wr_bytes", "rd_operations", "wr_operations", "flush_operations",
                "rd_total_time_ns", "wr_total_time_ns", "flush_total_time_ns")


class StatsConfig(BaseModel):
    """``/Runner/StatsCollector``: how often the VM's statistics are sampled."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True,
                              extra="ignore")

    interval: float = Field(5.0, gt=0, le=3600)
    """Seconds between QMP samples (block I/O, vCPU threads, guest memory)."""
    guest_stats_interval: int = Field(5, ge=0, le=3600)
    """Seconds between the guest balloon driver's memory reports; 0: not asked for."""
    textfile_directory: Path | None = None
    """Where ``vmrunner-<vm>.prom`` (the shutdown histogram) is written; unset: the dataDir.
    A relative path is taken relative to the configuration file's directory."""

    @field_validator("textfile_directory")
    @classmethod
    def _relative_to_the_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        base = (info.context or {}).get("base_dir")
        if value is not None and base is not None and not value.is_absolute():
            return Path(base) / value
        return value


def _drive_name(entry: dict[str, Any]) -> str:
    qdev = str(entry.get("qdev") or "")
    if qdev.startswith("/machine/peripheral/"):
        return qdev.removeprefix("/machine/peripheral/").split("/", 1)[0]
    return str(entry.get("device") or entry.get("node-name") or qdev or "?")


def drives_of(reply: Any) -> tuple[DriveStats, ...]:
    """The :class:`DriveStats` of a ``query-blockstats`` answer (devices without a name and
    an empty CD drive's zeros are kept: the drive exists)."""
    drives: list[DriveStats] = []
    for entry in reply if isinstance(reply, list) else []:
        stats = entry.get("stats") if isinstance(entry, dict) else None
        if not isinstance(stats, dict):
            continue
        values = {f: int(stats.get(f, 0)) for f in DRIVE_FIELDS}
        drives.append(DriveStats(drive=_drive_name(entry), **values))
    return tuple(drives)


def guest_memory_of(reply: Any) -> tuple[tuple[tuple[str, int], ...], float | None]:
    """The reported ``stat-*`` values (``-1``: not reported, left out) and ``last-update``
    of a ``qom-get guest-stats`` answer."""
    if not isinstance(reply, dict):
        return (), None
    stats = reply.get("stats")
    values = tuple(sorted((str(k), int(v)) for k, v in (stats or {}).items()
                          if isinstance(v, int) and v >= 0))
    updated = reply.get("last-update")
    return values, float(updated) if isinstance(updated, int | float) else None


class StatsCollector(Configurable[StatsConfig], BusComponent):
    """Samples QEMU's statistics and keeps the shutdown histogram (see the module
    docstring)."""

    config_model = StatsConfig

    def __init__(self, channel: Channel | None = None, name: str | None = None, *,
                 interval: float = 5.0, guest_stats_interval: int = 5) -> None:
        super().__init__(channel, name)
        self.interval = interval
        self.guest_stats_interval = guest_stats_interval
        self.textfile_directory: Path | None = None
        self._vm: str | None = None
        self._uuid: str | None = None
        self._data_dir: Path | None = None
        self._user_networks = 0
        self._pid: int | None = None
        self._started: float | None = None
        self._version: str | None = None
        self._threads: tuple[tuple[int, int], ...] = ()
        self._taps: tuple[str, ...] = ()
        """QEMU's tap interfaces, found by the sampler (a scan of its fds: not per query)."""
        self._drives: tuple[DriveStats, ...] = ()
        self._guest_memory: tuple[tuple[str, int], ...] = ()
        self._guest_memory_updated: float | None = None
        self._sampled_at: float | None = None
        self._sample_seconds: float | None = None
        self._refused: set[str] = set()
        """Sample parts QEMU refused (logged once)."""
        self._sampler: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._polling_set: int | None = None
        """The guest-stats polling interval QEMU was asked to take."""
        self._balloon = False
        """QEMU took it (the VM has the balloon ``balloon0``)."""
        self._terminating: float | None = None
        self.histogram = ShutdownHistogram()

    def on_config(self, config: StatsConfig, initial: bool) -> None:
        """Keys given in the file override the constructor's arguments; applied at the next
        sample."""
        for name in config.model_fields_set:
            setattr(self, name, getattr(config, name))
        self._wake.set()

    # -- what is known from the start sequence --------------------------------------------

    @handler
    def on_prepared(self, event: VmPrepared) -> None:
        from vmrunner.vmtypes.state import read_uuid

        config = event.plan.config
        self._vm = config.vm.name
        found = read_uuid(config, event.plan.paths)
        self._uuid = None if found is None else str(found)
        self._data_dir = event.plan.paths.data_dir
        self._user_networks = sum(1 for nic in config.vm.network if nic.type == "user")
        self.histogram = load(self.histogram_file)

    @property
    def histogram_file(self) -> Path:
        """``<textfileDirectory or dataDir>/vmrunner-<vm>.prom``."""
        directory = self.textfile_directory or self._data_dir or Path(".")
        return directory / f"vmrunner-{self._vm or 'vm'}.prom"

    @handler
    def on_qemu_started(self, event: QemuStarted) -> None:
        self._pid = event.pid
        self._started = time.time()

    @handler
    def on_monitor_ready(self, event: MonitorReady) -> None:
        if event.version is not None:
            self._version = ".".join(str(part) for part in event.version)
        if self._sampler is None:
            self._sampler = self.spawn(self._sample_loop(), name="stats-sampler")

    @handler
    def on_exited(self, event: ProcessExited) -> None:
        if event.name == ProcessRole.QEMU:
            self._pid = None
            self._threads = ()
            self._taps = ()
            self._polling_set = None  # a new QEMU must be told again
            self._stop_sampler()

    @handler
    def on_monitor_closed(self, event: MonitorClosed) -> None:
        self._stop_sampler()

    @handler
    def on_stopped(self, event: Stopped) -> None:
        self._stop_sampler()

    def _stop_sampler(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            self._sampler = None

    # -- the sampler ----------------------------------------------------------------------

    async def _sample_loop(self) -> None:
        failing = False
        while True:
            started = time.monotonic()
            try:
                await self._sample()
                failing = False
            except Exception:  # an answer of an unexpected shape: keep the last good values
                if not failing:
                    _log.warning("statistics: a sample failed; trying again every %g s",
                                 self.interval, exc_info=True)
                failing = True
            self._sample_seconds = time.monotonic() - started
            self._sampled_at = time.time()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)

    async def _query(self, command: QmpCommand) -> QmpReply:
        """``command``'s reply, as :meth:`execute` but as a :class:`SampleQmp` (kept out of
        the event stream)."""
        replies = await self.fire(SampleQmp(command=command)).wait()
        return replies[0] if replies else QmpReply(
            error=QmpDisconnected(f"{command.name}: no monitor answered"))

    async def _sample(self) -> None:
        if self._pid is not None:
            self._taps = tuple(procfs.tap_interfaces(self._pid))
        if self._polling_set != self.guest_stats_interval:
            reply = await self._query(commands.QomSet(
                path=BALLOON_PATH, property="guest-stats-polling-interval",
                value=self.guest_stats_interval))
            # asked once per value (and per QEMU): a VM type without the balloon refuses it
            self._polling_set = self.guest_stats_interval
            self._balloon = self._accepted("guest-stats-polling-interval", reply.error)
        reply = await self._query(commands.QueryBlockstats())
        if self._accepted("query-blockstats", reply.error):
            self._drives = drives_of(reply.value)
        reply = await self._query(commands.QueryCpusFast())
        if self._accepted("query-cpus-fast", reply.error) and isinstance(reply.value, list):
            self._threads = tuple(sorted(
                (int(cpu["cpu-index"]), int(cpu["thread-id"])) for cpu in reply.value
                if isinstance(cpu, dict) and "thread-id" in cpu))
        if self.guest_stats_interval > 0 and self._balloon:
            reply = await self._query(commands.QomGet(path=BALLOON_PATH,
                                                       property="guest-stats"))
            if self._accepted("guest-stats", reply.error):
                self._guest_memory, self._guest_memory_updated = guest_memory_of(reply.value)
        else:
            self._guest_memory, self._guest_memory_updated = (), None

    def _accepted(self, what: str, error: Exception | None) -> bool:
        if error is None:
            self._refused.discard(what)
            return True
        if isinstance(error, QmpDisconnected):
            return False  # QEMU is going away: the sampler is stopped with it
        if what not in self._refused:
            self._refused.add(what)
            _log.warning("statistics: QEMU refused %s (%s): left out of the metrics",
                         what, error)
        return False

    # -- the shutdown histogram -----------------------------------------------------------

    @handler
    def on_state(self, event: RunnerStateChanged) -> None:
        if event.new is RunState.TERMINATING:
            self._terminating = time.monotonic()
        elif event.new is RunState.STOPPED and self._terminating is not None:
            seconds = time.monotonic() - self._terminating
            self._terminating = None
            if self._data_dir is None:
                return  # never prepared: no VM state to keep it in
            self.histogram = self.histogram.observe(seconds)
            try:
                save(self.histogram_file, self.histogram, self._vm or "")
            except OSError as exc:
                _log.warning("%s: cannot write the shutdown histogram: %s",
                             self.histogram_file, exc)

    # -- the answer -----------------------------------------------------------------------

    @handler
    def on_status_query(self, event: StatusQuery) -> VmStatsStatus:
        pid = self._pid
        cpu = None if pid is None else procfs.cpu_times(pid)
        vcpus: list[VcpuTimes] = []
        nics: list[NicStats] = []
        if pid is not None:
            for vcpu, tid in self._threads:
                times = procfs.cpu_times(pid, tid)
                if times is not None:
                    vcpus.append(VcpuTimes(vcpu=vcpu, thread_id=tid, user=times.user,
                                           system=times.system))
            counters = procfs.nic_counters(pid) if self._taps else {}
            nics = [NicStats(interface=tap, **counters[tap])
                    for tap in self._taps if tap in counters]
        return VmStatsStatus(
            uuid=self._uuid, qemu_version=self._version, qemu_pid=pid,
            qemu_started=self._started if pid is not None else None,
            qemu_cpu_user=None if cpu is None else cpu.user,
            qemu_cpu_system=None if cpu is None else cpu.system,
            qemu_resident_bytes=None if pid is None else procfs.resident_bytes(pid),
            vcpus=tuple(vcpus), drives=self._drives, nics=tuple(nics),
            user_networks=self._user_networks, guest_memory=self._guest_memory,
            guest_memory_updated=self._guest_memory_updated, sampled_at=self._sampled_at,
            sample_seconds=self._sample_seconds, histogram=self.histogram)
