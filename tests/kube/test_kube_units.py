"""Unit tests of the pure parts of vmrunner.kube: quantities, the status merge patch, the
Event bodies and the settings (no API server needed; tests/k8s/ use a real one)."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest

from vmrunner.kube.quantity import quantity
from vmrunner.kube.records import EventRecord, event_body, micro_time
from vmrunner.kube.settings import KubeSettingsError, parse_node, resolve
from vmrunner.kube.status import DesiredStatus, status_patch

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(seconds=90)


@pytest.mark.parametrize(("size", "text"), [
    (0, "0"), (2 << 30, "2Gi"), (10**9, "1G"), (1536 << 20, "1536Mi"), (977 * 1024, "977Ki"),
    (2000, "2k"), (1001, "1001"), (4 << 40, "4Ti")])
def test_quantity(size: int, text: str) -> None:
    assert quantity(size) == text


def test_quantity_refuses_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        quantity(-1)


def _desired() -> DesiredStatus:
    desired = DesiredStatus()
    desired.set("cpus", 2)
    desired.set("ram", "1Gi")
    desired.condition("Running", True, "VmStarted", "started")
    return desired


def test_patch_holds_only_owned_differences() -> None:
    server = {"cpus": 2, "ram": "512Mi", "consoleUser": "alice", "assignment": {"pool": "p"}}
    patch = status_patch(_desired(), server, 7, T0)
    assert set(patch) == {"ram", "conditions"}
    assert patch["ram"] == "1Gi"
    assert patch["conditions"] == [{"type": "Running", "status": "True", "reason": "VmStarted",
                                    "message": "started", "lastTransitionTime":
                                    "2026-01-01T00:00:00Z", "observedGeneration": 7}]


def test_nothing_to_write_when_server_matches() -> None:
    desired = _desired()
    server = {"cpus": 2, "ram": "1Gi", "conditions": status_patch(desired, {}, 7, T0)
              ["conditions"]}
    assert status_patch(desired, server, 7, T1) == {}


def test_transition_time_changes_only_on_a_flip() -> None:
    desired = _desired()
    first = status_patch(desired, {}, 1, T0)["conditions"]
    desired.condition("Running", True, "VmBooted", "booted")
    same = status_patch(desired, {"conditions": first}, 2, T1)["conditions"][0]
    assert same["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert (same["reason"], same["observedGeneration"]) == ("VmBooted", 2)
    desired.condition("Running", False, "VmStopped", "stopped")
    flipped = status_patch(desired, {"conditions": first}, 2, T1)["conditions"][0]
    assert flipped["lastTransitionTime"] == "2026-01-01T00:01:30Z"


def test_foreign_conditions_are_kept_and_missing_ones_created() -> None:
    desired = _desired()
    desired.condition("Booted", False, "VmStarted", "not yet")
    foreign = {"type": "Assigned", "status": "True", "reason": "Pool", "message": "",
               "lastTransitionTime": "2025-01-01T00:00:00Z"}
    conditions = status_patch(desired, {"conditions": [foreign]}, 1, T0)["conditions"]
    assert conditions[0] == foreign
    assert [c["type"] for c in conditions[1:]] == ["Running", "Booted"]


def test_removed_fields_are_nulled_and_osinfo_replaced_exactly() -> None:
    desired = DesiredStatus()
    desired.set("loggedInUser", None)
    desired.set("osinfo", {"id": "debian", "version-id": "12"})
    server = {"loggedInUser": "bob", "osinfo": {"id": "fedora", "kernel-release": "6.1"}}
    assert status_patch(desired, server, None, T0) == {
        "loggedInUser": None,
        "osinfo": {"kernel-release": None, "id": "debian", "version-id": "12"}}
    desired.set("osinfo", None)
    assert "osinfo" not in status_patch(desired, {}, None, T0)


def test_unowned_names_are_refused() -> None:
    desired = DesiredStatus()
    with pytest.raises(KeyError):
        desired.set("consoleUser", "x")
    with pytest.raises(KeyError):
        desired.condition("Assigned", True, "x", "y")


def test_event_body() -> None:
    moment = datetime.datetime(2026, 1, 1, 0, 0, 0, 5, tzinfo=datetime.UTC)
    body = event_body(EventRecord(action="StatusUpdate", reason="VmBooted", note="booted",
                                  time=moment), vm_name="vm1", namespace="ns", vm_uid="u-1")
    assert body == {
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"generateName": "vm1-", "namespace": "ns"},
        "eventTime": "2026-01-01T00:00:00.000005Z", "type": "Normal",
        "action": "StatusUpdate", "reason": "VmBooted", "note": "booted",
        "reportingController": "vmoperator.jdrupes.org/vm-runner",
        "reportingInstance": "vm1",
        "regarding": {"apiVersion": "vmoperator.jdrupes.org/v1", "kind": "VirtualMachine",
                      "name": "vm1", "namespace": "ns", "uid": "u-1"}}
    later = datetime.datetime(2026, 5, 6, 7, 8, 9, tzinfo=datetime.timezone(
        datetime.timedelta(hours=2)))
    assert re.fullmatch(r"2026-05-06T05:08:09\.000000Z", micro_time(later))


def _service_account(tmp_path: Path) -> Path:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("t")
    (sa / "namespace").write_text("vms\n")
    (sa / "ca.crt").write_text("")
    return sa


def test_settings_in_a_pod(tmp_path: Path) -> None:
    sa = _service_account(tmp_path)
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    node = parse_node({"serviceAccountDir": str(sa)})
    settings = resolve(node, vm_name="win10", base_dir=tmp_path, environ=env)
    assert settings is not None
    assert (settings.mode, settings.namespace, settings.vm_name) == ("in-cluster", "vms", "win10")
    assert resolve(node, vm_name="win10", base_dir=tmp_path, environ={}) is None
    off = parse_node({"serviceAccountDir": str(sa), "enabled": False})
    assert resolve(off, vm_name="win10", base_dir=tmp_path, environ=env) is None


def test_settings_from_a_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "kc").write_text(
        "current-context: dev\ncontexts:\n- name: dev\n  context: {namespace: lab}\n")
    node = parse_node({"kubeconfig": "kc", "vmName": "other"})
    settings = resolve(node, vm_name="win10", base_dir=tmp_path, environ={})
    assert settings is not None
    assert (settings.mode, settings.namespace, settings.vm_name, settings.kubeconfig) == (
        "kubeconfig", "lab", "other", tmp_path / "kc")
    node = parse_node({"kubeconfig": str(tmp_path / "kc"), "namespace": "x"})
    assert resolve(node, vm_name="a", base_dir=Path("/"), environ={}).namespace == "x"  # type: ignore[union-attr]


def test_settings_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(KubeSettingsError) as info:
        parse_node({"kubeconfg": "x", "requestTimeout": 0})
    assert sorted(info.value.problems) == [
        "/Runner/Kubernetes/kubeconfg: unknown key (did you mean 'kubeconfig'?)",
        "/Runner/Kubernetes/requestTimeout: Input should be greater than 0"]
    with pytest.raises(KubeSettingsError, match=r"/Runner/Kubernetes/kubeconfig: .*no such file"):
        resolve(parse_node({"kubeconfig": "missing"}), vm_name="a", base_dir=tmp_path,
                environ={})
