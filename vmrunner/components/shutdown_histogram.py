"""The shutdown-duration histogram that outlives the runner: ``vmrunner_shutdown_seconds`` kept
in ``vmrunner-<vm>.prom``, a Prometheus text file for node_exporter's textfile collector.

Invariants: the file holds one histogram with the label ``vm``; every completed shutdown adds
one observation to what the file held (so the counts span runner processes); the file is
replaced atomically (temporary file, then rename), never written half; an unreadable or
foreign file is started afresh (logged), never fatal.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

from vmrunner.events.stats import SHUTDOWN_BUCKETS as BUCKETS
from vmrunner.events.stats import ShutdownHistogram

_log = logging.getLogger(__name__)

NAME = "vmrunner_shutdown_seconds"


def _bound(value: float) -> str:
    return "+Inf" if math.isinf(value) else repr(value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(histogram: ShutdownHistogram, vm: str) -> str:
    """The text exposition of ``histogram`` labelled ``vm``."""
    label = f'vm="{_escape(vm)}"'
    lines = [f"# HELP {NAME} Durations of the completed shutdowns of the VM (all runs)",
             f"# TYPE {NAME} histogram"]
    lines += [f'{NAME}_bucket{{{label},le="{_bound(bound)}"}} {count}'
              for bound, count in zip(BUCKETS, histogram.counts, strict=True)]
    lines += [f"{NAME}_sum{{{label}}} {histogram.total!r}",
              f"{NAME}_count{{{label}}} {histogram.count}"]
    return "\n".join(lines) + "\n"


def load(path: Path) -> ShutdownHistogram:
    """The histogram kept in ``path`` (empty if there is none or it cannot be used)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return ShutdownHistogram()
    except (OSError, UnicodeDecodeError) as exc:
        _log.warning("%s: cannot read the shutdown histogram (%s): starting afresh", path, exc)
        return ShutdownHistogram()
    from prometheus_client.parser import text_string_to_metric_families

    buckets: dict[float, int] = {}
    total: float | None = None
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == f"{NAME}_bucket":
                    buckets[float(sample.labels["le"])] = int(sample.value)
                elif sample.name == f"{NAME}_sum":
                    total = float(sample.value)
    except (ValueError, KeyError, TypeError) as exc:
        _log.warning("%s: not a shutdown histogram (%s): starting afresh", path, exc)
        return ShutdownHistogram()
    if set(buckets) != set(BUCKETS) or total is None:
        _log.warning("%s: other buckets than %s: starting afresh", path,
                     ", ".join(_bound(b) for b in BUCKETS))
        return ShutdownHistogram()
    return ShutdownHistogram(counts=tuple(buckets[b] for b in BUCKETS), total=total)


def save(path: Path, histogram: ShutdownHistogram, vm: str) -> None:
    """Replace ``path`` with ``histogram`` (atomically; readable by its owner and group, as
    node_exporter may run as another user of the group)."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
    with os.fdopen(fd, "w") as out:
        out.write(render(histogram, vm))
    os.replace(temporary, path)
