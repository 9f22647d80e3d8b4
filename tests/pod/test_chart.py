"""The Helm chart: lint, render, offline schema validation, values schema, computed fields."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from vmrunner.components.exit_codes import ExitCode

from .conftest import ImageBuild, Tools
from .support import CHART, config_map, documents, helm, one, pod_spec, podman, render, values_file

pytestmark = pytest.mark.pod

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "statefulset-device-plugin-disks": {
        "workload": "StatefulSet",
        "kvm": {"mode": "devicePlugin"},
        "hostNetwork": True,
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
        "logFormat": "json",
        "vm": {"name": "vm1", "powerdownTimeout": 120, "currentRam": "1 GiB",
               "maximumRam": "2 GiB", "network": [{"type": "tap", "bridge": "br0"}],
               "drives": [{"type": "raw", "resource": "/dev/system-disk", "bootindex": 0},
                          {"type": "ide-cd", "file": "/var/local/disks/images/boot.iso"}]},
        "runner": {"guestShutdownStops": True, "cloudInit": {"userData": {"users": []}}},
        "disks": [
            {"name": "system", "devicePath": "/dev/system-disk",
             "volume": {"persistentVolumeClaim": {"claimName": "vm1-system"}}},
            {"name": "images", "volumeMode": "Filesystem", "mountPath": "/var/local/disks/images",
             "readOnly": True,
             "volume": {"hostPath": {"path": "/var/lib/vm-images", "type": "Directory"}}},
        ],
        "dataVolume": {"persistentVolumeClaim": {"claimName": "vm1-data"}},
        "templates": {"files": {"My-VM.yaml.mako": "# an extra VM type\n"}},
    },
    "tcg-no-kvm": {
        "kvm": {"mode": "none"},
        "terminationGracePeriod": {"seconds": 600},
        "vm": {"accelerator": "tcg", "powerdownTimeout": 60, "useTpm": True,
               "firmware": "secure-4m"},
        "templates": {"volume": {"configMap": {"name": "site-vm-types"}}},
        "dataVolume": {"hostPath": {"path": "/var/lib/vms/x", "type": "DirectoryOrCreate"}},
    },
    "vmoperator-rbac": {"vmoperator": {"enabled": True}},
    "operator-pieces": {
        "workload": "StatefulSet", "imagePullSecrets": [{"name": "regcred"}],
        "priorityClassName": "vm-critical", "nodeSelector": {"kvm": "true"},
        "tolerations": [{"key": "vms", "operator": "Exists", "effect": "NoSchedule"}],
        "metrics": {"enabled": True, "tokenSecret": {"name": "vm1-api-token"},
                    "podMonitor": {"enabled": True, "labels": {"release": "prom"}}},
    },
    "privileged-tap": {"kvm": {"mode": "privileged"}, "hostNetwork": True,
                       "vm": {"network": [{"bridge": "br0"}]}},
}

# The runner's rules of the VM-Operator contract (vmoperator-contract.md, section 1): read and
# patch its VirtualMachine, patch only the status subresource (no update), create Events.
CONTRACT_RULES = [
    {"apiGroups": ["vmoperator.jdrupes.org"], "resources": ["vms"],
     "verbs": ["get", "list", "patch"]},
    {"apiGroups": ["vmoperator.jdrupes.org"], "resources": ["vms/status"], "verbs": ["patch"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]},
]
RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding")


def _render(tools: Tools, values: dict[str, Any]) -> list[dict[str, Any]]:
    return documents(render(tools.helm, values))


def _keys_named(name: str, node: object) -> list[object]:
    """Every value of a mapping key ``name`` anywhere in ``node``."""
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == name] + [
            found for v in node.values() for found in _keys_named(name, v)]
    if isinstance(node, list):
        return [found for item in node for found in _keys_named(name, item)]
    return []


def _fails(tools: Tools, values: dict[str, Any]) -> str:
    path = values_file(values)
    try:
        result = helm(tools.helm, "template", "x", str(CHART), "-f", str(path), check=False)
    finally:
        path.unlink()
    assert result.returncode != 0, f"rendered although it should not:\n{result.stdout}"
    return result.stderr


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_lint_strict(tools: Tools, variant: str) -> None:
    path = values_file(VARIANTS[variant])
    try:
        result = helm(tools.helm, "lint", "--strict", str(CHART), "-f", str(path))
    finally:
        path.unlink()
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_manifests_validate_offline(tools: Tools, variant: str) -> None:
    manifest = render(tools.helm, VARIANTS[variant])
    assert not _keys_named("subPath", documents(manifest))  # never updated by the kubelet
    for version in ("1.28.0", "1.34.0"):
        result = subprocess.run([tools.kubernetes_validate, "--strict", "--quiet",
                                 "-k", version, "-"], input=manifest, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr


def test_validator_catches_a_broken_manifest(tools: Tools) -> None:
    """Control: the offline validator does reject a pod without a required field."""
    docs = _render(tools, {})
    pod = one(docs, "Pod")
    del pod["spec"]["containers"][0]["volumeMounts"][0]["mountPath"]
    result = subprocess.run([tools.kubernetes_validate, "--strict", "--quiet", "-"],
                            input=yaml.safe_dump(pod), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0
    assert "mountPath" in result.stdout + result.stderr


def test_config_map_holds_the_vm_section(tools: Tools) -> None:
    values = VARIANTS["statefulset-device-plugin-disks"]
    docs = _render(tools, values)
    config = yaml.safe_load(config_map(docs)["data"]["config.yaml"])
    runner = config["/Runner"]
    defaults = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))["vm"]
    assert runner["vm"] == {**defaults, **values["vm"]}
    assert runner["dataDir"] == "/var/local/vm-data"
    assert runner["runtimeDir"] == "/run/vmrunner"
    assert runner["guestShutdownStops"] is True
    spec = pod_spec(docs)
    mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
    assert mounts["config"]["mountPath"] == "/etc/opt/vmrunner"
    assert mounts["templates"]["mountPath"] == "/opt/vmrunner/templates"
    assert spec["containers"][0]["volumeDevices"] == [
        {"name": "disk-system", "devicePath": "/dev/system-disk"}]
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"


def test_vm_name_defaults_to_the_release(tools: Tools) -> None:
    config = yaml.safe_load(config_map(_render(tools, {}))["data"]["config.yaml"])
    assert config["/Runner"]["vm"]["name"] == "vmtest-vmrunner"


@pytest.mark.parametrize(("values", "expected"), [
    ({}, 900 + 15),
    ({"vm": {"powerdownTimeout": 0}}, 15),
    ({"vm": {"powerdownTimeout": 60}, "terminationGracePeriod": {"margin": 30}}, 90),
    ({"vm": {"powerdownTimeout": 60}, "terminationGracePeriod": {"seconds": 600}}, 600),
])
def test_grace_period_covers_the_powerdown_timeout(tools: Tools, values: dict[str, Any],
                                                   expected: int) -> None:
    spec = pod_spec(_render(tools, values))
    assert spec["terminationGracePeriodSeconds"] == expected
    # the runner compares powerdownTimeout with it (vmrunner.daemon.grace)
    assert spec["containers"][0]["env"] == [
        {"name": "VMRUNNER_TERMINATION_GRACE_PERIOD", "value": str(expected)}]


def test_grace_period_shorter_than_the_timeout_is_refused(tools: Tools) -> None:
    error = _fails(tools, {"vm": {"powerdownTimeout": 300},
                           "terminationGracePeriod": {"seconds": 100}})
    assert "terminationGracePeriod.seconds: 100 is less than" in error


def test_kvm_modes(tools: Tools) -> None:
    container = pod_spec(_render(tools, {"kvm": {"mode": "privileged"}}))["containers"][0]
    assert container["securityContext"] == {"privileged": True}
    assert "devices.kubevirt.io/kvm" not in container["resources"]["limits"]
    container = pod_spec(_render(tools, {}))["containers"][0]
    assert container["resources"]["limits"]["devices.kubevirt.io/kvm"] == 1
    assert "privileged" not in container["securityContext"]
    error = _fails(tools, {"kvm": {"mode": "none"}})
    assert "set vm.accelerator to tcg or auto" in error


@pytest.mark.parametrize(("values", "message"), [
    ({"vm": {"powerdownTimeout": -5}}, "at '/vm/powerdownTimeout': minimum"),
    ({"vm": {"maximumCpus": "two"}}, "at '/vm/maximumCpus': got string, want integer"),
    ({"kvm": {"mode": "kvm"}}, "at '/kvm/mode'"),
    ({"workload": "Deployment"}, "at '/workload'"),
    ({"runner": {"dataDir": "/x"}}, "at '/runner'"),
    ({"dataVolume": {"emptyDir": {}, "hostPath": {"path": "/x"}}}, "at '/dataVolume'"),
    ({"disks": [{"name": "Bad_Name", "volume": {"emptyDir": {}}}]}, "at '/disks/0/name'"),
    ({"replicas": 2}, "additional properties 'replicas' not allowed"),
    ({"vmoperator": {"enabled": True, "serviceAccountName": "Vm_Runner"}},
     "at '/vmoperator/serviceAccountName'"),
    ({"vmoperator": {"enabled": "yes"}}, "at '/vmoperator/enabled': got string, want boolean"),
    ({"vmoperator": {"rules": []}}, "additional properties 'rules' not allowed"),
])
def test_values_schema_rejects(tools: Tools, values: dict[str, Any], message: str) -> None:
    assert message in _fails(tools, values)


def test_probes_are_curl_on_the_api_socket(tools: Tools) -> None:
    """No shell and no Python per probe: curl asks GET /live or /ready on the API socket."""
    container = pod_spec(_render(tools, {}))["containers"][0]
    for probe, which in (("startupProbe", "live"), ("readinessProbe", "ready"),
                         ("livenessProbe", "live")):
        assert container[probe]["exec"]["command"] == [
            "/usr/bin/curl", "-fsS", "-o", "/dev/null", "--max-time", "4", "--unix-socket",
            "/run/vmrunner/api.sock", f"http://localhost/{which}"]
        assert container[probe]["timeoutSeconds"] == 5


@pytest.mark.parametrize("variant", ["defaults", "tcg-no-kvm", "operator-pieces"])
def test_config_passes_the_runner_check_in_the_image(tools: Tools, image: ImageBuild,
                                                     variant: str) -> None:
    """``vmrunner check --strict`` in the image accepts the rendered config.yaml (with
    ``--no-host-files``: the Secrets and volumes it names are mounted only in the pod)."""
    config = config_map(_render(tools, VARIANTS[variant]))["data"]["config.yaml"]
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "config.yaml").write_text(config, encoding="utf-8")
        result = podman("run", "--rm", "--network", "none",
                        "-v", f"{tmp}:/etc/opt/vmrunner:ro", image.tag,
                        "check", "--strict", "--no-host-files",
                        "-c", "/etc/opt/vmrunner/config.yaml", check=False)
    assert result.returncode == ExitCode.OK, result.stdout + result.stderr


def test_no_rbac_unless_vmoperator_is_enabled(tools: Tools) -> None:
    for variant in ("defaults", "statefulset-device-plugin-disks"):
        kinds = [d["kind"] for d in _render(tools, VARIANTS[variant])]
        assert not set(kinds) & set(RBAC_KINDS), (variant, kinds)


def test_vmoperator_rbac_is_exactly_the_contract(tools: Tools) -> None:
    """The ServiceAccount VM-Operator's pods run as, the contract's Role and its binding;
    no VM of the chart's own (the manager makes the pods and ConfigMaps)."""
    docs = documents(render(tools.helm, VARIANTS["vmoperator-rbac"], extra=("-n", "vms")))
    assert sorted(d["kind"] for d in docs) == sorted(RBAC_KINDS)
    account, role, binding = (one(docs, kind) for kind in RBAC_KINDS)
    assert account["metadata"]["name"] == "vm-runner"
    assert "automountServiceAccountToken" not in account  # the runner reads the token
    assert role["rules"] == CONTRACT_RULES
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "vm-runner",
                                    "namespace": "vms"}]


def test_vmoperator_service_account_name_is_configurable(tools: Tools) -> None:
    docs = _render(tools, {"vmoperator": {"enabled": True, "serviceAccountName": "vmop-runner"}})
    assert one(docs, "ServiceAccount")["metadata"]["name"] == "vmop-runner"
    assert one(docs, "RoleBinding")["subjects"][0]["name"] == "vmop-runner"
    assert one(docs, "RoleBinding")["roleRef"]["name"] == one(docs, "Role")["metadata"]["name"]
