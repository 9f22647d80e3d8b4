"""Per-VM metrics against the real guest (issue 16, item 1), one boot for all of them (a
second reads the shutdown histogram back): the info metric, QEMU's CPU time and RSS, per-vCPU
thread time, per-drive I/O after the guest writes, the guest's memory as its balloon driver
reports it, runner errors by kind (a rejected ``/Runner/StatsCollector`` edit), no NIC
counters for user networking, ``promtool check metrics`` on the real scrape, the sampler's QMP
kept out of the event stream, and the shutdown histogram file written at the stop and read
back by the next runner."""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from vmrunner import __version__
from vmrunner.api.client import follow, get_json, request
from vmrunner.core import ConfigurationRejected
from vmrunner.events import MonitorReady
from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.inproc import InProcessRunner
from vmrunner.testing.prereq import require_tools
from vmrunner.testing.runnerproc import guest_config, scratch_dir

pytestmark = pytest.mark.guest

BOOT = 60.0
CMD = 30.0
EVENT = 20.0
MIB = 2**20
STANDARD_TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "Standard-VM.yaml.mako"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def vmdir() -> Iterator[Path]:
    with scratch_dir("vstat") as path:
        yield path


def _samples(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _named(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for (n, labels), value in samples.items() if n == name}


async def _scrape(api: Path) -> tuple[str, Samples]:
    code, body = await request(api, "GET", "/metrics")
    assert code == 200
    return body.decode(), _samples(body.decode())


async def _until(api: Path, what: str, ok: Any) -> Samples:
    """Scrape until ``ok(samples)`` holds (the QMP sample is taken on a timer)."""
    deadline = asyncio.get_running_loop().time() + EVENT
    while True:
        _, samples = await _scrape(api)
        if ok(samples):
            return samples
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not seen within {EVENT} s")
        await asyncio.sleep(0.2)


async def _collect(path: Path, into: list[dict[str, Any]]) -> None:
    async for record in follow(path, since=0):
        into.append(record)


async def test_vm_metrics_from_a_real_guest(vmdir: Path, guest_image: GuestImage,
                                            accel: AccelVerdict) -> None:
    disk = vmdir / "disk.raw"
    disk.write_bytes(bytes(MIB))
    stats = {"interval": 0.5, "guestStatsInterval": 1}

    def configure(node: dict[str, Any]) -> Path:
        return guest_config(vmdir, guest_image, accel=str(accel.accel), disk=disk,
                            network=[{"type": "user"}], runner={"/StatsCollector": node})

    config = configure(stats)
    api = vmdir / "run" / "api.sock"
    records: list[dict[str, Any]] = []
    async with InProcessRunner(config) as vm:
        rec, con = vm.recorder, vm.console
        stream = asyncio.ensure_future(_collect(api, records))
        ready = await rec.wait_for(MonitorReady, timeout=EVENT)
        await con.wait_ready(BOOT)
        info = (await con.check("tg info", CMD))[0]
        memtotal = int(re.search(r"memtotal_kb=(\d+)", info).group(1)) * 1024  # type: ignore[union-attr]
        status = await get_json(api, "/status")
        qemu_pid = status["qemuPid"]

        # the guest writes a sector: the drive's write counters move
        before = _named((await _scrape(api))[1], "vmrunner_drive_writes_total")
        await con.check("tg disk-mark STATS /dev/vda 3", CMD)
        samples = await _until(
            api, "the guest's write", lambda s: _named(s, "vmrunner_drive_writes_total").get(
                (("drive", "disk0"),), 0.0) > before.get((("drive", "disk0"),), 0.0))
        assert _named(samples, "vmrunner_drive_written_bytes_total")[(("drive", "disk0"),)] >= 512
        assert _named(samples, "vmrunner_drive_read_bytes_total")[(("drive", "disk0"),)] > 0
        assert _named(samples, "vmrunner_drive_reads_total")[(("drive", "disk0"),)] > 0
        assert _named(samples, "vmrunner_drive_write_time_seconds_total")[
            (("drive", "disk0"),)] > 0

        # the guest's balloon driver reports its memory: MemTotal as the guest sees it
        samples = await _until(api, "guest memory statistics", lambda s: (
            (("kind", "total"),) in _named(s, "vmrunner_guest_memory_bytes")))
        memory = _named(samples, "vmrunner_guest_memory_bytes")
        assert memory[(("kind", "total"),)] == memtotal
        assert 0 < memory[(("kind", "free"),)] < memtotal
        assert samples[("vmrunner_guest_minor_page_faults_total", ())] > 0
        assert samples[("vmrunner_guest_memory_update_timestamp_seconds", ())] > 0

        # identity, QEMU's process and its vCPU thread
        text, samples = await _scrape(api)
        version = ".".join(map(str, ready.version or ()))
        uuid = (vmdir / "data" / "uuid.txt").read_text().strip()
        assert _named(samples, "vmrunner_info") == {
            (("qemu_version", version), ("uuid", uuid), ("version", __version__),
             ("vm", "tg")): 1.0}
        assert samples[("vmrunner_start_time_seconds", ())] == pytest.approx(
            status["runnerSince"], abs=0.01)
        cpu = _named(samples, "vmrunner_qemu_cpu_seconds_total")
        assert cpu[(("mode", "user"),)] + cpu[(("mode", "system"),)] > 0.5  # booting on TCG
        vcpu = _named(samples, "vmrunner_vcpu_seconds_total")
        assert {labels[1][1] for labels in vcpu} == {"0"}  # one vCPU, thread found
        assert 0 < sum(vcpu.values()) <= sum(cpu.values()) + 0.05
        rss = samples[("vmrunner_qemu_resident_memory_bytes", ())]
        status_file = await asyncio.to_thread(Path(f"/proc/{qemu_pid}/status").read_text)
        vm_rss = int(re.search(r"VmRSS:\s+(\d+)", status_file).group(1)) * 1024  # type: ignore[union-attr]
        assert abs(rss - vm_rss) < 0.2 * vm_rss
        # user networking: no host interface, no counters
        assert not _named(samples, "vmrunner_network_receive_bytes_total")
        assert samples[("vmrunner_runner_errors_total", (("kind", "config"),))] == 0
        # the sampler's QMP commands are counted, but kept out of the event stream
        assert samples[("vmrunner_qmp_commands_total", (("command", "query-blockstats"),))] > 2
        assert samples[("vmrunner_qmp_commands_total", (("command", "qom-get"),))] > 2
        sent = [r["data"]["command"] for r in records if r["type"] == "ExecuteQmp"]
        assert "cont" in str(sent) and "query-blockstats" not in str(sent), sent
        assert not [r for r in records if r["type"] == "SampleQmp"]

        # promtool, the Prometheus project's own linter, on this real scrape
        require_tools("promtool")
        lint = await asyncio.create_subprocess_exec(
            "promtool", "check", "metrics", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)
        out, _ = await asyncio.wait_for(lint.communicate(text.encode()), CMD)
        assert lint.returncode == 0, out.decode()

        # a bad edit of the collector's node is rejected with its key path, and counted
        configure({"interval": 0, "guestStatsInterval": 1})
        rejected = await rec.wait_for(ConfigurationRejected, timeout=EVENT)
        assert any(e.startswith("/Runner/StatsCollector/interval:") for e in rejected.errors)
        samples = await _until(api, "the config error", lambda s: s.get(
            ("vmrunner_runner_errors_total", (("kind", "config"),))) == 1)
        assert samples[("vmrunner_shutdown_seconds_count", ())] == 0
        assert await vm.stop() == 0
        stream.cancel()

    # the shutdown is kept in the textfile, for node_exporter, beyond this runner
    textfile = vmdir / "data" / "vmrunner-tg.prom"
    kept = _samples(textfile.read_text())
    assert kept[("vmrunner_shutdown_seconds_count", (("vm", "tg"),))] == 1
    first = kept[("vmrunner_shutdown_seconds_sum", (("vm", "tg"),))]
    assert 0 < first < 30

    # the next runner of the VM shows it from its start and adds its own shutdown
    async with InProcessRunner(configure(stats)) as vm:
        await vm.recorder.wait_for(MonitorReady, timeout=EVENT)
        samples = (await _scrape(api))[1]
        assert samples[("vmrunner_shutdown_seconds_count", ())] == 1
        assert samples[("vmrunner_shutdown_seconds_sum", ())] == first
        await vm.console.wait_ready(BOOT)
        assert await vm.stop() == 0
    kept = _samples(textfile.read_text())
    assert kept[("vmrunner_shutdown_seconds_count", (("vm", "tg"),))] == 2


async def test_a_vm_type_without_a_balloon_loses_only_the_guest_memory(
        vmdir: Path, guest_image: GuestImage, accel: AccelVerdict,
        caplog: pytest.LogCaptureFixture) -> None:
    """A VM type of one's own without ``balloon0``: QEMU refuses the balloon's polling
    interval, that is logged once and not asked again, and the other statistics go on."""
    templates = vmdir / "templates"
    templates.mkdir()
    text = await asyncio.to_thread(STANDARD_TEMPLATE.read_text)
    balloon = "    - -device\n    - virtio-balloon-pci,id=balloon0\n"
    assert text.count(balloon) == 1
    (templates / "NoBalloon.yaml.mako").write_text(text.replace(balloon, ""))
    disk = vmdir / "disk.raw"
    disk.write_bytes(bytes(MIB))
    config = guest_config(vmdir, guest_image, accel=str(accel.accel), disk=disk,
                          runner={"template": "NoBalloon.yaml.mako",
                                  "templateDirs": [str(templates)],
                                  "/StatsCollector": {"interval": 0.3}})
    api = vmdir / "run" / "api.sock"
    with caplog.at_level(logging.WARNING, logger="vmrunner.components.stats"):
        async with InProcessRunner(config) as vm:
            await vm.console.wait_ready(BOOT)
            await asyncio.sleep(1.5)  # several samples
            samples = await _until(api, "a sample", lambda s: (
                "vmrunner_stats_sample_timestamp_seconds", ()) in s)
            assert _named(samples, "vmrunner_drive_reads_total")[(("drive", "disk0"),)] > 0
            assert _named(samples, "vmrunner_vcpu_seconds_total")
            assert not _named(samples, "vmrunner_guest_memory_bytes")
            assert samples[("vmrunner_qmp_errors_total", (("command", "qom-set"),))] == 1
            assert ("vmrunner_qmp_commands_total", (("command", "qom-get"),)) not in samples
            assert await vm.stop() == 0
    refused = [r.getMessage() for r in caplog.records if "QEMU refused" in r.getMessage()]
    assert len(refused) == 1 and "guest-stats-polling-interval" in refused[0], refused
