"""The shutdown histogram's textfile (:mod:`vmrunner.components.shutdown_histogram`): what
one runner writes the next reads back and adds to; the file is valid for Prometheus' parser;
a broken or foreign file is started afresh; no temporary file is left behind."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from vmrunner.components.shutdown_histogram import load, save
from vmrunner.events.stats import ShutdownHistogram


def _samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(path.read_text()) for s in f.samples}


def test_observations_accumulate_across_runs(tmp_path: Path) -> None:
    path = tmp_path / "vmrunner-web1.prom"
    assert load(path) == ShutdownHistogram()  # no file yet
    save(path, load(path).observe(4.0), "web1")  # one runner process ...
    save(path, load(path).observe(70.0), "web1")  # ... and the next
    samples = _samples(path)
    vm = ("vm", "web1")
    assert samples[("vmrunner_shutdown_seconds_count", (vm,))] == 2
    assert samples[("vmrunner_shutdown_seconds_sum", (vm,))] == 74.0
    assert samples[("vmrunner_shutdown_seconds_bucket", (("le", "2.0"), vm))] == 0
    assert samples[("vmrunner_shutdown_seconds_bucket", (("le", "5.0"), vm))] == 1
    assert samples[("vmrunner_shutdown_seconds_bucket", (("le", "120.0"), vm))] == 2
    assert samples[("vmrunner_shutdown_seconds_bucket", (("le", "+Inf"), vm))] == 2
    assert load(path).count == 2
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert path.stat().st_mode & 0o777 == 0o640


def test_an_odd_vm_name_is_escaped(tmp_path: Path) -> None:
    path = tmp_path / "h.prom"
    save(path, ShutdownHistogram().observe(1.0), 'a"b\\c')
    assert _samples(path)[("vmrunner_shutdown_seconds_count", (("vm", 'a"b\\c'),))] == 1


@pytest.mark.parametrize("content", [
    "not prometheus at all {{{\n",
    "# TYPE vmrunner_shutdown_seconds histogram\n"
    'vmrunner_shutdown_seconds_bucket{le="7.0"} 1\nvmrunner_shutdown_seconds_sum 1\n',
    "",
])
def test_a_broken_or_foreign_file_is_started_afresh(
        tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "h.prom"
    path.write_text(content)
    with caplog.at_level(logging.WARNING):
        assert load(path) == ShutdownHistogram()
    assert "starting afresh" in caplog.text
    save(path, load(path).observe(1.0), "vm")
    assert load(path).count == 1
