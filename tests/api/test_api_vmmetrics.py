"""The per-VM metric families (issue 16, item 1) rendered from a status, without a VM: names,
types, labels and units; absent values stay absent; the example Grafana dashboard asks only for
series that the runner can emit; the StatsCollector's node is validated with key paths.

The status parts are built by hand here (the real guest's are checked in
``test_api_vmstats.py``); the EventLog, the renderer and prometheus-client's parser are real.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from vmrunner import __version__
from vmrunner.api.eventlog import ERROR_KINDS, EventLog
from vmrunner.api.metrics import render
from vmrunner.api.status import Status
from vmrunner.components.stats import StatsCollector, drives_of, guest_memory_of
from vmrunner.events import RamStatus, RunnerStatus, RunState, StatusPart
from vmrunner.events.stats import (
    SHUTDOWN_BUCKETS,
    DriveStats,
    NicStats,
    ShutdownHistogram,
    VcpuTimes,
    VmStatsStatus,
)

DASHBOARD = Path(__file__).resolve().parents[2] / "examples" / "grafana-dashboard.json"

FULL = VmStatsStatus(
    uuid="4a0a3a0e-0000-4000-8000-000000000001", qemu_version="7.2.22", qemu_pid=4242,
    qemu_started=1_700_000_000.5, qemu_cpu_user=12.5, qemu_cpu_system=3.25,
    qemu_resident_bytes=300 * 2**20,
    vcpus=(VcpuTimes(vcpu=0, thread_id=4243, user=5.0, system=0.5),
           VcpuTimes(vcpu=1, thread_id=4244, user=2.0, system=0.25)),
    drives=(DriveStats(drive="disk0", rd_bytes=4096, wr_bytes=512, rd_operations=2,
                       wr_operations=1, flush_operations=1, rd_total_time_ns=1_500_000,
                       wr_total_time_ns=2_000_000_000, flush_total_time_ns=7),),
    nics=(NicStats(interface="tap3", rx_bytes=100, tx_bytes=200, rx_packets=1, tx_packets=2),),
    guest_memory=(("stat-available-memory", 150 * 2**20), ("stat-disk-caches", 2**20),
                  ("stat-free-memory", 100 * 2**20), ("stat-htlb-pgalloc", 0),
                  ("stat-htlb-pgfail", 0), ("stat-major-faults", 7),
                  ("stat-minor-faults", 9000), ("stat-oom-kills", 1), ("stat-swap-in", 0),
                  ("stat-swap-out", 4096), ("stat-total-memory", 200 * 2**20)),
    guest_memory_updated=1_700_000_100.0, sampled_at=1_700_000_101.0, sample_seconds=0.004,
    histogram=ShutdownHistogram().observe(3.0).observe(45.0))

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _scrape(stats: VmStatsStatus, log: EventLog | None = None,
            *parts: StatusPart) -> tuple[Samples, dict[str, str]]:
    log = log or EventLog()
    status = Status([RunnerStatus(vm="web1", state=RunState.BOOTED), stats, *parts], log)
    families = list(text_string_to_metric_families(render(status).decode()))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in families for s in family.samples}
    return samples, {family.name: family.type for family in families}


def test_every_vm_family_from_a_full_status() -> None:
    samples, types = _scrape(FULL)
    assert samples[("vmrunner_info", (("qemu_version", "7.2.22"), ("uuid", FULL.uuid),
                                      ("version", __version__), ("vm", "web1")))] == 1.0
    assert samples[("vmrunner_qemu_start_time_seconds", ())] == 1_700_000_000.5
    assert samples[("vmrunner_qemu_cpu_seconds_total", (("mode", "system"),))] == 3.25
    assert samples[("vmrunner_qemu_resident_memory_bytes", ())] == 300 * 2**20
    assert samples[("vmrunner_vcpu_seconds_total", (("mode", "user"), ("vcpu", "1")))] == 2.0
    disk = (("drive", "disk0"),)
    assert samples[("vmrunner_drive_read_bytes_total", disk)] == 4096
    assert samples[("vmrunner_drive_writes_total", disk)] == 1
    assert samples[("vmrunner_drive_write_time_seconds_total", disk)] == 2.0  # ns to s
    assert samples[("vmrunner_drive_read_time_seconds_total", disk)] == 0.0015
    tap = (("interface", "tap3"),)
    assert samples[("vmrunner_network_receive_bytes_total", tap)] == 100
    assert samples[("vmrunner_network_transmit_packets_total", tap)] == 2
    assert samples[("vmrunner_guest_memory_bytes", (("kind", "total"),))] == 200 * 2**20
    assert samples[("vmrunner_guest_memory_bytes", (("kind", "disk_caches"),))] == 2**20
    assert samples[("vmrunner_guest_swap_out_bytes_total", ())] == 4096
    assert samples[("vmrunner_guest_minor_page_faults_total", ())] == 9000
    # a statistic without a family of its own is still shown, under QEMU's name
    assert samples[("vmrunner_guest_memory_stat", (("stat", "stat-oom-kills"),))] == 1
    assert samples[("vmrunner_shutdown_seconds_count", ())] == 2
    assert samples[("vmrunner_shutdown_seconds_sum", ())] == 48.0
    assert samples[("vmrunner_shutdown_seconds_bucket", (("le", "5.0"),))] == 1
    assert samples[("vmrunner_shutdown_seconds_bucket", (("le", "60.0"),))] == 2
    assert types["vmrunner_shutdown_seconds"] == "histogram"
    assert types["vmrunner_drive_read_bytes"] == "counter"
    assert types["vmrunner_guest_memory_bytes"] == "gauge"
    for kind in ERROR_KINDS:  # every kind from 0, so a rate() sees the first one
        assert samples[("vmrunner_runner_errors_total", (("kind", kind),))] == 0


def test_unknown_values_are_absent_not_zero() -> None:
    samples, _ = _scrape(VmStatsStatus())
    names = {name for name, _ in samples}
    for absent in ("vmrunner_qemu_cpu_seconds_total", "vmrunner_qemu_resident_memory_bytes",
                   "vmrunner_qemu_start_time_seconds", "vmrunner_vcpu_seconds_total",
                   "vmrunner_drive_read_bytes_total", "vmrunner_network_receive_bytes_total",
                   "vmrunner_guest_memory_bytes", "vmrunner_guest_swap_in_bytes_total",
                   "vmrunner_stats_sample_timestamp_seconds"):
        assert absent not in names, absent
    assert samples[("vmrunner_info", (("qemu_version", ""), ("uuid", ""),
                                      ("version", __version__), ("vm", "web1")))] == 1.0
    assert samples[("vmrunner_shutdown_seconds_count", ())] == 0


def test_errors_are_counted_by_kind() -> None:
    log = EventLog()
    log._error("configuration rejected: /Runner/vm/currentRam: bad", "config")
    log._error("qemu exited with 1", "process")
    log._error("something")
    samples, _ = _scrape(FULL, log)
    errors = {dict(labels)["kind"]: value for (name, labels), value in samples.items()
              if name == "vmrunner_runner_errors_total"}
    assert errors == {"config": 1, "process": 1, "other": 1, "start": 0, "change": 0,
                      "internal": 0}


def test_qmp_answers_become_drive_and_memory_records() -> None:
    answer = [{"device": "", "node-name": "disk0", "qdev": "/machine/peripheral/disk0/"
               "virtio-backend", "stats": {"rd_bytes": 10, "wr_operations": 2,
                                           "flush_total_time_ns": 5}},
              {"device": "", "node-name": "fw-code", "stats": {"rd_bytes": 1}},
              {"device": "x", "no": "stats"}]
    assert drives_of(answer) == (
        DriveStats(drive="disk0", rd_bytes=10, wr_operations=2, flush_total_time_ns=5),
        DriveStats(drive="fw-code", rd_bytes=1))
    assert drives_of(None) == ()
    memory, updated = guest_memory_of({"stats": {"stat-total-memory": 5,
                                                 "stat-swap-in": -1},
                                       "last-update": 17})
    assert memory == (("stat-total-memory", 5),)  # -1: the guest does not report it
    assert updated == 17.0
    assert guest_memory_of({"stats": {}, "last-update": 0}) == ((), 0.0)


def test_the_dashboard_asks_only_for_series_the_runner_emits() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"]
              if isinstance(v.get("query"), dict)]
    used = {name for expr in exprs for name in re.findall(r"\bvmrunner_[a-z_]+", expr)}
    log = EventLog()  # a runner that has sent a QMP command and knows its RAM
    log.counters.qmp_commands["cont"] = 1
    samples, _ = _scrape(FULL, log, RamStatus(maximum=2**30, requested=2**29, actual=2**29))
    emitted = {name for name, _ in samples}
    assert used, "no queries found"
    assert used <= emitted, sorted(used - emitted)
    # the panels cover the VM's resource use, not only the runner's state
    for family in ("vmrunner_drive_read_bytes_total", "vmrunner_vcpu_seconds_total",
                   "vmrunner_guest_memory_bytes", "vmrunner_network_receive_bytes_total",
                   "vmrunner_shutdown_seconds_bucket"):
        assert family in used, family
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


def test_the_collector_node_is_validated_with_key_paths(tmp_path: Path) -> None:
    collector = StatsCollector()
    path = "/Runner/StatsCollector"
    bad = collector.validate_config(path, {"interval": 0, "guestStatsInterval": -1},
                                    {"base_dir": tmp_path})
    assert any(e.startswith(f"{path}/interval:") for e in bad.errors), bad.errors
    assert any(e.startswith(f"{path}/guestStatsInterval:") for e in bad.errors), bad.errors
    typo = collector.validate_config(path, {"intervall": 3}, {"base_dir": tmp_path})
    assert not typo.errors
    assert any("intervall" in w and "interval" in w for w in typo.warnings), typo.warnings
    good = collector.validate_config(path, {"textfileDirectory": "prom"},
                                     {"base_dir": tmp_path})
    assert good.config is not None and good.config.textfile_directory == tmp_path / "prom"
    assert len(SHUTDOWN_BUCKETS) == len(ShutdownHistogram().counts)
