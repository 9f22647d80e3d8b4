"""The chart's resources from the VM (``helm template`` only).

See docs/guide/kubernetes.md, "Resources".
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Tools
from .support import CHART, documents, helm, pod_spec, render, values_file

pytestmark = pytest.mark.pod

OVERHEAD = 320  # MiB, the default resourcesFromVm.memoryOverheadMiB


def _resources(tools: Tools, values: dict[str, Any]) -> dict[str, Any]:
    return dict(pod_spec(documents(render(tools.helm, values)))["containers"][0]["resources"])


@pytest.mark.parametrize(("vm", "requests", "limits"), [
    ({}, {"memory": f"{1024 + OVERHEAD}Mi", "cpu": "1100m"}, {"memory": f"{1024 + OVERHEAD}Mi"}),
    ({"maximumRam": "4 GiB", "currentRam": "2 GiB", "maximumCpus": 4, "currentCpus": 2},
     {"memory": f"{2048 + OVERHEAD}Mi", "cpu": "2100m"}, {"memory": f"{4096 + OVERHEAD}Mi"}),
    ({"maximumRam": 3221225472, "currentRam": "1.5G", "maximumCpus": 3},
     {"memory": f"{1536 + OVERHEAD}Mi", "cpu": "3100m"}, {"memory": f"{3072 + OVERHEAD}Mi"}),
    ({"maximumRam": "2000 MB"}, {"memory": f"{1908 + OVERHEAD}Mi", "cpu": "1100m"},
     {"memory": f"{1908 + OVERHEAD}Mi"}),
])
def test_requests_and_limits_follow_the_vm(tools: Tools, vm: dict[str, Any],
                                           requests: dict[str, str],
                                           limits: dict[str, str]) -> None:
    """memory request = currentRam + overhead, limit = maximumRam + overhead (MiB rounded
    up: 2000 MB is 1907.35 MiB); cpu request = currentCpus + 100m; no cpu limit."""
    resources = _resources(tools, {"vm": vm})
    assert resources["requests"] == requests
    assert resources["limits"] == {**limits, "devices.kubevirt.io/kvm": 1}


def test_explicit_resources_win_per_key(tools: Tools) -> None:
    resources = _resources(tools, {
        "vm": {"maximumRam": "2 GiB"},
        "resourcesFromVm": {"memoryOverheadMiB": 100, "cpuOverheadMillis": 0},
        "resources": {"requests": {"cpu": "3"}, "limits": {"cpu": "4"}}})
    assert resources["requests"] == {"cpu": "3", "memory": "2148Mi"}
    assert resources["limits"] == {"cpu": "4", "memory": "2148Mi",
                                   "devices.kubevirt.io/kvm": 1}


def test_computation_can_be_turned_off(tools: Tools) -> None:
    resources = _resources(tools, {"resourcesFromVm": {"enabled": False}})
    assert resources == {"limits": {"devices.kubevirt.io/kvm": 1}}


@pytest.mark.parametrize(("size", "message"), [
    ("lots", 'vm.maximumRam: cannot read "lots" as a memory size'),
    ("1 Gx", 'vm.maximumRam: unknown unit "Gx"'),
])
def test_unreadable_memory_size_names_the_key(tools: Tools, size: str, message: str) -> None:
    path = values_file({"vm": {"maximumRam": size}})
    try:
        result = helm(tools.helm, "template", "x", str(CHART), "-f", str(path),
                      check=False)
    finally:
        path.unlink()
    assert result.returncode != 0
    assert message in result.stderr
