"""The chart's least privilege: the rendered securityContexts per mode (``helm template`` only).

docs/guide/kubernetes.md ("Security") lists each mode's securityContext; these tests pin them.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Tools
from .support import documents, pod_spec, render

pytestmark = pytest.mark.pod

NON_ROOT_POD = {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
                "seccompProfile": {"type": "RuntimeDefault"}}
ROOT_POD = {"runAsNonRoot": False, "runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}}
CONFINED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True}
NON_ROOT_CONTAINER = {**CONFINED, "runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000}
TAP = {"vm": {"network": [{"type": "tap", "bridge": "br0"}]}, "hostNetwork": True}


def _spec(tools: Tools, values: dict[str, Any]) -> dict[str, Any]:
    return pod_spec(documents(render(tools.helm, values)))


def _mounts(spec: dict[str, Any]) -> dict[str, str]:
    return {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}


def test_default_is_a_non_root_device_plugin_pod(tools: Tools) -> None:
    """No values: /dev/kvm from the device plugin, uid 1000, no capability, read-only root
    with a memory /tmp, and nothing privileged anywhere."""
    spec = _spec(tools, {})
    container = spec["containers"][0]
    assert spec["securityContext"] == NON_ROOT_POD
    assert container["securityContext"] == NON_ROOT_CONTAINER
    assert container["resources"]["limits"]["devices.kubevirt.io/kvm"] == 1
    assert "devices.kubevirt.io/tun" not in container["resources"]["limits"]
    assert _mounts(spec)["tmp"] == "/tmp"
    assert {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}} \
        in spec["volumes"]


@pytest.mark.parametrize("network", [[{"type": "tap", "bridge": "br0"}], [{"bridge": "br0"}],
                                     [{"type": "user"}, {"bridge": "br1"}]])
def test_tap_needs_root_net_admin_and_tun(tools: Tools, network: list[dict[str, str]]) -> None:
    """A tap NIC (also by the runner's default type) runs as root with NET_ADMIN only and
    requests /dev/net/tun besides /dev/kvm."""
    spec = _spec(tools, {"vm": {"network": network}})
    container = spec["containers"][0]
    assert spec["securityContext"] == ROOT_POD
    assert container["securityContext"] == {
        **CONFINED, "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}
    assert container["resources"]["limits"]["devices.kubevirt.io/kvm"] == 1
    assert container["resources"]["limits"]["devices.kubevirt.io/tun"] == 1


def test_user_networking_stays_non_root(tools: Tools) -> None:
    spec = _spec(tools, {"vm": {"network": [{"type": "user"}]}})
    assert spec["securityContext"]["runAsNonRoot"] is True


def test_privileged_is_opt_in_and_unconfined(tools: Tools) -> None:
    spec = _spec(tools, {"kvm": {"mode": "privileged"}, **TAP})
    container = spec["containers"][0]
    assert "securityContext" not in spec
    assert container["securityContext"] == {"privileged": True}
    assert not [k for k in container["resources"]["limits"] if k.startswith("devices.")]
    assert "tmp" not in _mounts(spec)


def test_no_kvm_mode_requests_no_kvm_device(tools: Tools) -> None:
    spec = _spec(tools, {"kvm": {"mode": "none"}, "vm": {"accelerator": "tcg"}})
    container = spec["containers"][0]
    assert spec["securityContext"] == NON_ROOT_POD
    assert container["securityContext"] == NON_ROOT_CONTAINER
    assert not [k for k in container["resources"]["limits"] if k.startswith("devices.")]


def test_user_values_override_the_computed_contexts(tools: Tools) -> None:
    spec = _spec(tools, {"security": {"runAsUser": 2000, "runAsGroup": 3000,
                                      "supplementalGroups": [108],
                                      "readOnlyRootFilesystem": False},
                         "securityContext": {"capabilities": {"drop": ["ALL"],
                                                              "add": ["IPC_LOCK"]}},
                         "podSecurityContext": {"fsGroupChangePolicy": "OnRootMismatch"}})
    container = spec["containers"][0]
    assert spec["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 2000, "runAsGroup": 3000, "fsGroup": 3000,
        "supplementalGroups": [108], "seccompProfile": {"type": "RuntimeDefault"},
        "fsGroupChangePolicy": "OnRootMismatch"}
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["IPC_LOCK"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is False
    assert "tmp" not in _mounts(spec)
