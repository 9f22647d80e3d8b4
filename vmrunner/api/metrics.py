"""``GET /metrics``: the status (:class:`~vmrunner.api.status.Status`: the components' answers
and the event log's counters) as Prometheus text (prometheus-client).

Metric families (all prefixed ``vmrunner_``): ``state`` (one series per state, 1 for the
current one), ``ram_bytes{kind=maximum|requested|actual}`` (balloon target and actual),
``vcpus{kind=maximum|requested|present}``, ``shutdown_rung`` (one series per rung, 1 for each
rung reached), ``shutdown_remaining_seconds``, ``shutdown_duration_seconds``,
``qmp_commands_total{command}``, ``qmp_errors_total{command}``,
``qmp_command_seconds_total{command}``, ``config_reloads_total``,
``config_rejections_total``, ``guest_agent_connected``, ``cdrom_pending{drive}``,
``cdrom_tray_open{drive}``, ``errors`` (kept recent errors), ``console_connected`` and
``console_client_info{host}`` (the SPICE console client), ``console_sessions``,
``vmop_agent_connected`` and ``logged_in_user_info{user}`` (auto-login),
``guest_panics_total``, ``guest_panic_resets_total`` and
``block_io_errors_total{drive,operation}`` (:func:`fault_families`); the guest's facts
(:func:`guest_families`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from vmrunner.events import Rung, RunState

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from .status import Status

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def families(status: Status) -> Iterator[Metric]:
    """The metric families of ``status``."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    state = GaugeMetricFamily("vmrunner_state", "The runner's state (1: current)",
                              labels=["state"])
    for value in RunState:
        state.add_metric([value.value], 1.0 if status.state is value else 0.0)
    yield state

    ram = GaugeMetricFamily("vmrunner_ram_bytes", "Guest RAM: maximum, requested (balloon "
                            "target) and actual (balloon)", labels=["kind"])
    ram_status = status.ram
    for kind, size in (("maximum", ram_status.maximum), ("requested", ram_status.requested),
                       ("actual", ram_status.actual)):
        if size is not None:
            ram.add_metric([kind], float(size))
    yield ram

    cpus = GaugeMetricFamily("vmrunner_vcpus", "vCPUs: maximum, requested and present",
                             labels=["kind"])
    for kind, count in (("maximum", status.cpus.maximum),
                        ("requested", status.cpus.requested),
                        ("present", status.cpus.present)):
        if count is not None:
            cpus.add_metric([kind], float(count))
    yield cpus

    rungs = GaugeMetricFamily("vmrunner_shutdown_rung", "Shutdown ladder rungs reached "
                              "(1: reached)", labels=["rung"])
    for rung in Rung:
        rungs.add_metric([rung.value], 1.0 if rung in status.shutdown.rungs else 0.0)
    yield rungs
    counters = status.log.counters
    if status.remaining is not None:
        yield GaugeMetricFamily("vmrunner_shutdown_remaining_seconds",
                                "Seconds left before the forced stop", value=status.remaining)
    if counters.shutdown_seconds is not None:
        yield GaugeMetricFamily("vmrunner_shutdown_duration_seconds",
                                "From the start of the shutdown to stopped",
                                value=counters.shutdown_seconds)

    commands = CounterMetricFamily("vmrunner_qmp_commands", "QMP commands executed",
                                   labels=["command"])
    errors = CounterMetricFamily("vmrunner_qmp_errors", "QMP commands that failed",
                                 labels=["command"])
    seconds = CounterMetricFamily("vmrunner_qmp_command_seconds",
                                  "Time spent waiting for QMP answers", labels=["command"])
    for name in sorted(counters.qmp_commands):
        commands.add_metric([name], float(counters.qmp_commands[name]))
        errors.add_metric([name], float(counters.qmp_errors.get(name, 0)))
        seconds.add_metric([name], counters.qmp_seconds.get(name, 0.0))
    yield commands
    yield errors
    yield seconds
    yield CounterMetricFamily("vmrunner_config_reloads", "Configuration changes applied",
                              value=float(counters.config_reloads))
    yield CounterMetricFamily("vmrunner_config_rejections", "Configuration changes rejected",
                              value=float(counters.config_rejections))
    yield GaugeMetricFamily("vmrunner_guest_agent_connected", "qemu-ga answers (1) or not",
                            value=1.0 if status.guest_agent.connected else 0.0)
    console = status.console
    yield GaugeMetricFamily("vmrunner_console_connected", "A SPICE console client is connected",
                            value=0.0 if console.client is None else 1.0)
    client = GaugeMetricFamily("vmrunner_console_client_info", "The SPICE console client's host",
                               labels=["host"])
    if console.client is not None:
        client.add_metric([console.client], 1.0)
    yield client
    yield GaugeMetricFamily("vmrunner_console_sessions", "Connected SPICE sessions",
                            value=float(len(console.clients)))
    yield GaugeMetricFamily("vmrunner_vmop_agent_connected",
                            "The guest's auto-login agent runs (1) or not",
                            value=1.0 if status.vmop.connected else 0.0)
    user = GaugeMetricFamily("vmrunner_logged_in_user_info",
                             "The user the guest's agent confirmed logged in", labels=["user"])
    if status.vmop.logged_in_user is not None:
        user.add_metric([status.vmop.logged_in_user], 1.0)
    yield user
    pending = GaugeMetricFamily("vmrunner_cdrom_pending", "A CD change waits for the guest",
                                labels=["drive"])
    tray = GaugeMetricFamily("vmrunner_cdrom_tray_open", "The CD tray is open",
                             labels=["drive"])
    for cd in status.cdrom.drives:
        pending.add_metric([cd.drive], 0.0 if cd.pending is None else 1.0)
        tray.add_metric([cd.drive], 1.0 if cd.tray_open else 0.0)
    yield pending
    yield tray
    yield GaugeMetricFamily("vmrunner_errors", "Recent errors kept for /status",
                            value=float(len(status.log.errors)))
    yield from fault_families(status)
    yield from vm_families(status)
    yield from guest_families(status)


def fault_families(status: Status) -> Iterator[Metric]:
    """Guest panics (and the resets of ``onPanic: reset``) and failed disk requests."""
    from prometheus_client.core import CounterMetricFamily

    yield CounterMetricFamily("vmrunner_guest_panics", "Guest kernel panics reported by QEMU",
                              value=float(status.panic.count))
    yield CounterMetricFamily("vmrunner_guest_panic_resets",
                              "Resets made by onPanic: reset", value=float(status.panic.resets))
    errors = CounterMetricFamily("vmrunner_block_io_errors", "Failed disk requests "
                                 "(BLOCK_IO_ERROR)", labels=["drive", "operation"])
    for drive in status.disk_errors.drives:
        errors.add_metric([drive.drive, drive.operation], float(drive.count))
    yield errors


# -- the VM's resource use (StatsCollector) and the runner's own record ---------------------

GUEST_MEMORY_BYTES = {"stat-free-memory": "free", "stat-total-memory": "total",
                      "stat-available-memory": "available", "stat-disk-caches": "disk_caches"}
"""Balloon stats that are sizes: ``vmrunner_guest_memory_bytes{kind}``."""
GUEST_MEMORY_COUNTERS = {
    "stat-swap-in": ("vmrunner_guest_swap_in_bytes", "Bytes the guest swapped in"),
    "stat-swap-out": ("vmrunner_guest_swap_out_bytes", "Bytes the guest swapped out"),
    "stat-major-faults": ("vmrunner_guest_major_page_faults", "The guest's major page faults"),
    "stat-minor-faults": ("vmrunner_guest_minor_page_faults", "The guest's minor page faults"),
    "stat-htlb-pgalloc": ("vmrunner_guest_hugetlb_allocations",
                          "The guest's successful huge page allocations"),
    "stat-htlb-pgfail": ("vmrunner_guest_hugetlb_failures",
                         "The guest's failed huge page allocations"),
}
"""Balloon stats that only grow: one counter family each."""


def vm_families(status: Status) -> Iterator[Metric]:
    """The VM's identity and resource use, errors by kind, the shutdown histogram."""
    yield from _identity_families(status)
    yield from _qemu_process_families(status)
    yield from _drive_families(status)
    yield from _nic_families(status)
    yield from _guest_memory_families(status)
    yield from _runner_error_families(status)
    yield from _shutdown_histogram_families(status)


def _identity_families(status: Status) -> Iterator[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    from vmrunner import __version__

    stats = status.stats
    info = GaugeMetricFamily("vmrunner_info", "The VM and the software that runs it (always 1)",
                             labels=["vm", "uuid", "version", "qemu_version"])
    info.add_metric([status.runner.vm or "", stats.uuid or "", __version__,
                     stats.qemu_version or ""], 1.0)
    yield info
    yield GaugeMetricFamily("vmrunner_start_time_seconds",
                            "When the runner process started (Unix time)",
                            value=status.log.created)
    if stats.qemu_started is not None:
        yield GaugeMetricFamily("vmrunner_qemu_start_time_seconds",
                                "When the running QEMU process started (Unix time)",
                                value=stats.qemu_started)
    if stats.sampled_at is not None:
        yield GaugeMetricFamily("vmrunner_stats_sample_timestamp_seconds",
                                "When QMP was last sampled for block, vCPU and guest memory "
                                "statistics (Unix time)", value=stats.sampled_at)
    if stats.sample_seconds is not None:
        yield GaugeMetricFamily("vmrunner_stats_sample_duration_seconds",
                                "How long the last QMP sample took",
                                value=stats.sample_seconds)


def _qemu_process_families(status: Status) -> Iterator[Metric]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    stats = status.stats
    if stats.qemu_cpu_user is not None and stats.qemu_cpu_system is not None:
        cpu = CounterMetricFamily("vmrunner_qemu_cpu_seconds",
                                  "CPU time of the QEMU process (all its threads)",
                                  labels=["mode"])
        cpu.add_metric(["user"], stats.qemu_cpu_user)
        cpu.add_metric(["system"], stats.qemu_cpu_system)
        yield cpu
    if stats.qemu_resident_bytes is not None:
        yield GaugeMetricFamily("vmrunner_qemu_resident_memory_bytes",
                                "Resident memory of the QEMU process (VmRSS)",
                                value=float(stats.qemu_resident_bytes))
    vcpu = CounterMetricFamily("vmrunner_vcpu_seconds",
                               "CPU time of each vCPU's QEMU thread", labels=["vcpu", "mode"])
    for times in stats.vcpus:
        vcpu.add_metric([str(times.vcpu), "user"], times.user)
        vcpu.add_metric([str(times.vcpu), "system"], times.system)
    yield vcpu


def _drive_families(status: Status) -> Iterator[Metric]:
    from prometheus_client.core import CounterMetricFamily

    drives = status.stats.drives
    specs = (("vmrunner_drive_read_bytes", "Bytes read from the drive", "rd_bytes", 1.0),
             ("vmrunner_drive_written_bytes", "Bytes written to the drive", "wr_bytes", 1.0),
             ("vmrunner_drive_reads", "Read operations on the drive", "rd_operations", 1.0),
             ("vmrunner_drive_writes", "Write operations on the drive", "wr_operations", 1.0),
             ("vmrunner_drive_flushes", "Flush operations on the drive", "flush_operations",
              1.0),
             ("vmrunner_drive_read_time_seconds", "Total time of the drive's reads",
              "rd_total_time_ns", 1e-9),
             ("vmrunner_drive_write_time_seconds", "Total time of the drive's writes",
              "wr_total_time_ns", 1e-9),
             ("vmrunner_drive_flush_time_seconds", "Total time of the drive's flushes",
              "flush_total_time_ns", 1e-9))
    for name, text, field, scale in specs:
        family = CounterMetricFamily(name, text, labels=["drive"])
        for drive in drives:
            family.add_metric([drive.drive], getattr(drive, field) * scale)
        yield family


def _nic_families(status: Status) -> Iterator[Metric]:
    from prometheus_client.core import CounterMetricFamily

    specs = (("vmrunner_network_receive_bytes", "Bytes the host received from the guest on "
              "the tap interface", "rx_bytes"),
             ("vmrunner_network_transmit_bytes", "Bytes the host sent to the guest on the tap "
              "interface", "tx_bytes"),
             ("vmrunner_network_receive_packets", "Packets the host received from the guest on "
              "the tap interface", "rx_packets"),
             ("vmrunner_network_transmit_packets", "Packets the host sent to the guest on the "
              "tap interface", "tx_packets"))
    for name, text, field in specs:
        family = CounterMetricFamily(name, text, labels=["interface"])
        for nic in status.stats.nics:
            family.add_metric([nic.interface], float(getattr(nic, field)))
        yield family


def _guest_memory_families(status: Status) -> Iterator[Metric]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    stats = status.stats
    values = dict(stats.guest_memory)
    sizes = GaugeMetricFamily("vmrunner_guest_memory_bytes",
                              "The guest's memory as its balloon driver reports it",
                              labels=["kind"])
    for key, kind in GUEST_MEMORY_BYTES.items():
        if key in values:
            sizes.add_metric([kind], float(values[key]))
    yield sizes
    for key, (name, text) in GUEST_MEMORY_COUNTERS.items():
        if key in values:
            yield CounterMetricFamily(name, text, value=float(values[key]))
    other = GaugeMetricFamily("vmrunner_guest_memory_stat",
                              "Other balloon statistics of the guest, as QEMU names them",
                              labels=["stat"])
    for key, value in sorted(values.items()):
        if key not in GUEST_MEMORY_BYTES and key not in GUEST_MEMORY_COUNTERS:
            other.add_metric([key], float(value))
    yield other
    if stats.guest_memory_updated:
        yield GaugeMetricFamily("vmrunner_guest_memory_update_timestamp_seconds",
                                "When the guest last reported its memory statistics "
                                "(Unix time)", value=stats.guest_memory_updated)


def _runner_error_families(status: Status) -> Iterator[Metric]:
    from prometheus_client.core import CounterMetricFamily

    errors = CounterMetricFamily("vmrunner_runner_errors", "Errors the runner recorded, by kind",
                                 labels=["kind"])
    for kind, count in sorted(status.log.counters.errors_by_kind.items()):
        errors.add_metric([kind], float(count))
    yield errors


def _shutdown_histogram_families(status: Status) -> Iterator[Metric]:
    from prometheus_client.core import HistogramMetricFamily

    from vmrunner.events.stats import SHUTDOWN_BUCKETS

    histogram = status.stats.histogram
    buckets = [("+Inf" if bound == float("inf") else repr(bound), float(count))
               for bound, count in zip(SHUTDOWN_BUCKETS, histogram.counts, strict=True)]
    yield HistogramMetricFamily("vmrunner_shutdown_seconds",
                                "Durations of the completed shutdowns of this VM, across "
                                "runner processes (also in the textfile vmrunner-<vm>.prom)",
                                buckets=buckets, sum_value=histogram.total)


def guest_families(status: Status) -> Iterator[Metric]:
    """The guest agent's responsiveness and the guest's facts: ``guest_agent_responsive``
    (1 responsive, 0 unresponsive or disconnected), ``guest_filesystem_size_bytes`` and
    ``guest_filesystem_used_bytes{mountpoint,type}``,
    ``guest_network_address_info{interface,address,family}`` (1 per address; no series
    until the agent has said)."""
    from prometheus_client.core import GaugeMetricFamily

    from vmrunner.events.guest_facts import AgentState

    guest = status.guest
    yield GaugeMetricFamily("vmrunner_guest_agent_responsive",
                            "qemu-ga answers its timed guest-ping (1) or not",
                            value=1.0 if guest.agent is AgentState.RESPONSIVE else 0.0)
    facts = guest.facts
    size = GaugeMetricFamily("vmrunner_guest_filesystem_size_bytes",
                             "Size of a filesystem mounted in the guest (qemu-ga)",
                             labels=["mountpoint", "type"])
    used = GaugeMetricFamily("vmrunner_guest_filesystem_used_bytes",
                             "Bytes used on a filesystem mounted in the guest (qemu-ga)",
                             labels=["mountpoint", "type"])
    for fs in (facts.filesystems or ()) if facts is not None else ():
        if fs.total_bytes is not None:
            size.add_metric([fs.mountpoint, fs.type], float(fs.total_bytes))
        if fs.used_bytes is not None:
            used.add_metric([fs.mountpoint, fs.type], float(fs.used_bytes))
    yield size
    yield used
    address = GaugeMetricFamily("vmrunner_guest_network_address_info",
                                "An address of a guest network interface (qemu-ga)",
                                labels=["interface", "address", "family"])
    for interface in (facts.interfaces or ()) if facts is not None else ():
        for ip in interface.addresses:
            address.add_metric([interface.name, ip.address, ip.family], 1.0)
    yield address


class _Collector:
    def __init__(self, status: Status) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        return families(self.status)


def render(status: Status) -> bytes:
    """The Prometheus text exposition of ``status`` (prometheus-client is imported at the
    first request)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(status))
    return generate_latest(registry)
