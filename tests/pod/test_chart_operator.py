"""The pieces cluster operators expect (``helm template`` only): pull secrets, priority,
scheduling, PodDisruptionBudget, Service, metrics port and PodMonitor, labels, NOTES.txt.

The manifests of these values are also linted and validated offline against Kubernetes 1.28
and 1.34 (variant ``operator-pieces`` in test_chart.py).
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from .conftest import Tools
from .support import CHART, config_map, documents, helm, one, pod_spec, render, values_file

pytestmark = pytest.mark.pod

METRICS = {"enabled": True, "tokenSecret": {"name": "vm1-api-token"},
           "podMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prom"}}}
SELECTOR = {"app.kubernetes.io/name": "vmrunner", "app.kubernetes.io/instance": "vmtest"}
# ports of Prometheus's exporter range (9100-9999, all allocated) are taken by other exporters
EXPORTER_RANGE = range(9100, 10000)


def _docs(tools: Tools, values: dict[str, Any]) -> list[dict[str, Any]]:
    return documents(render(tools.helm, values))


def test_scheduling_and_pull_values_reach_the_pod(tools: Tools) -> None:
    values = {"imagePullSecrets": [{"name": "regcred"}], "priorityClassName": "vm-critical",
              "nodeSelector": {"kvm": "true"},
              "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                  "nodeSelectorTerms": [{"matchExpressions": [
                      {"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
              "tolerations": [{"key": "vms", "operator": "Exists", "effect": "NoSchedule"}]}
    for workload in ("Pod", "StatefulSet"):
        spec = pod_spec(_docs(tools, {**values, "workload": workload}))
        for key, value in values.items():
            assert spec[key] == value, (workload, key)


def _refused(tools: Tools, values: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """``helm template`` with ``values``, which must fail."""
    path = values_file(values)
    try:
        result = helm(tools.helm, "template", "x", str(CHART), "-f", str(path), check=False)
    finally:
        path.unlink()
    assert result.returncode != 0, result.stdout
    return result


def test_image_pull_secrets_are_schema_checked(tools: Tools) -> None:
    result = _refused(tools, {"imagePullSecrets": ["regcred"]})
    assert "at '/imagePullSecrets/0'" in result.stderr


def test_statefulset_gets_the_service_it_names(tools: Tools) -> None:
    docs = _docs(tools, {"workload": "StatefulSet"})
    service, statefulset = one(docs, "Service"), one(docs, "StatefulSet")
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == SELECTOR
    assert "ports" not in service["spec"]  # no metrics: a bare governing Service


def test_a_bare_pod_without_metrics_gets_no_service(tools: Tools) -> None:
    assert not [d for d in _docs(tools, {}) if d["kind"] == "Service"]


def test_pod_disruption_budget_blocks_evicting_a_running_vm(tools: Tools) -> None:
    for workload in ("Pod", "StatefulSet"):
        docs = _docs(tools, {"workload": workload})
        budget = one(docs, "PodDisruptionBudget")["spec"]
        assert budget == {"minAvailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow",
                          "selector": {"matchLabels": SELECTOR}}
        pod_labels = (one(docs, "Pod")["metadata"]["labels"] if workload == "Pod" else
                      one(docs, "StatefulSet")["spec"]["template"]["metadata"]["labels"])
        assert SELECTOR.items() <= pod_labels.items()
    docs = _docs(tools, {"podDisruptionBudget": {"enabled": False}})
    assert not [d for d in docs if d["kind"] == "PodDisruptionBudget"]


def test_metrics_listener_port_token_and_pod_monitor(tools: Tools) -> None:
    docs = _docs(tools, {"workload": "StatefulSet", "metrics": METRICS})
    api = yaml.safe_load(config_map(docs)["data"]["config.yaml"])["/Runner"]["/Api"]
    assert api == {"listen": "0.0.0.0:19187", "tokenFile": "/etc/opt/vmrunner-api/token"}
    spec = pod_spec(docs)
    container = spec["containers"][0]
    assert container["ports"] == [{"name": "metrics", "containerPort": 19187,
                                   "protocol": "TCP"}]
    assert {"name": "api-token", "mountPath": "/etc/opt/vmrunner-api", "readOnly": True} \
        in container["volumeMounts"]
    assert {"name": "api-token", "secret": {"secretName": "vm1-api-token",
                                            "defaultMode": 0o400}} in spec["volumes"]
    assert one(docs, "Service")["spec"]["ports"] == [
        {"name": "metrics", "port": 19187, "targetPort": "metrics", "protocol": "TCP"}]
    monitor = one(docs, "PodMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"] == {"matchLabels": SELECTOR}
    assert monitor["spec"]["podMetricsEndpoints"] == [{
        "port": "metrics", "path": "/metrics", "interval": "15s",
        "authorization": {"type": "Bearer",
                          "credentials": {"name": "vm1-api-token", "key": "token"}}}]
    assert 19187 not in EXPORTER_RANGE


def test_metrics_need_a_token_secret(tools: Tools) -> None:
    result = _refused(tools, {"metrics": {"enabled": True}})
    assert "metrics.tokenSecret.name: the metrics listener needs a Secret" in result.stderr


def test_user_api_keys_survive_the_metrics_listener(tools: Tools) -> None:
    docs = _docs(tools, {"metrics": METRICS, "runner": {"/Api": {"enabled": True}}})
    api = yaml.safe_load(config_map(docs)["data"]["config.yaml"])["/Runner"]["/Api"]
    assert api["enabled"] is True and api["listen"] == "0.0.0.0:19187"


def test_every_object_carries_the_standard_labels(tools: Tools) -> None:
    docs = _docs(tools, {"workload": "StatefulSet", "metrics": METRICS,
                         "templates": {"files": {"x.yaml.mako": "# x\n"}}})
    assert len(docs) == 6
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert SELECTOR.items() <= labels.items(), doc["kind"]
        assert labels["app.kubernetes.io/component"] == "vm-runner"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/version"] == "0.1.0"


@pytest.mark.parametrize(("values", "expected"), [
    ({}, ["logs -f vmtest-vmrunner", "gracefully, within 915 s", "PodDisruptionBudget",
          "device plugin resource devices.kubevirt.io/kvm"]),
    ({"workload": "StatefulSet", "kvm": {"mode": "privileged"}},
     ["logs -f vmtest-vmrunner-0", "WARNING: kvm.mode privileged"]),
    ({"metrics": METRICS}, ["GET /metrics on port 19187", "Secret\nvm1-api-token"]),
])
def test_notes(tools: Tools, values: dict[str, Any], expected: list[str]) -> None:
    path = values_file(values)
    try:
        notes = helm(tools.helm, "install", "vmtest", str(CHART), "--dry-run=client",
                     "-f", str(path)).stdout
    finally:
        path.unlink()
    notes = notes[notes.index("NOTES:"):]
    for text in expected:
        assert text in notes
