"""The Kubernetes test bed is a real API server: patch types, schema validation, watch,
restarts on the same port, a stalled server, the audit log, and the Events stand-in."""

from __future__ import annotations

import base64
import datetime
import http.client
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from vmrunner.testing.apiserver import KubeApiServer
from vmrunner.testing.kubeclient import JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, KubeClient

from .conftest import KubeApiFactory

NOW = "2026-12-03T12:00:00Z"


def condition(type_: str, status: str, reason: str, generation: int = 1) -> dict[str, Any]:
    return {"type": type_, "status": status, "observedGeneration": generation,
            "reason": reason, "message": reason, "lastTransitionTime": NOW}


def client_from_kubeconfig(path: Path, tmp: Path) -> KubeClient:
    """A client built only from what the kubeconfig file says (as the runner would)."""
    config = yaml.safe_load(path.read_text())
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    files = {}
    for key, data in (("ca", cluster["certificate-authority-data"]),
                      ("crt", user["client-certificate-data"]),
                      ("key", user["client-key-data"])):
        files[key] = tmp / f"kc.{key}"
        files[key].write_bytes(base64.b64decode(data))
    port = int(cluster["server"].rsplit(":", 1)[1])
    assert cluster["server"] == f"https://127.0.0.1:{port}"
    return KubeClient(port, files["ca"], files["crt"], files["key"])


def test_status_merge_patch_changes_only_the_given_fields(kube_api: KubeApiServer) -> None:
    created = kube_api.create_vm("vm1", {"vm": {"state": "Running", "maximumRam": "1Gi"}})
    assert created["metadata"]["generation"] == 1
    manager = kube_api.patch_vm("vm1", {"status": {"consoleUser": "alice"}}, status=True)
    assert manager.status == 200, manager.body
    runner = kube_api.patch_vm("vm1", {"status": {
        "runnerVersion": "0.1", "cpus": 2, "ram": "1Gi", "displayPasswordSerial": -1,
        "conditions": [condition("Running", "False", "RunnerStarted")]}}, status=True)
    assert runner.status == 200, runner.body
    status = kube_api.get_vm("vm1")["status"]
    assert status["consoleUser"] == "alice"  # the manager's field survived the runner's patch
    assert status["cpus"] == 2 and status["ram"] == "1Gi"
    assert status["conditions"][0]["reason"] == "RunnerStarted"
    # the status subresource ignores spec changes, and the main resource ignores status
    kube_api.patch_vm("vm1", {"spec": {"vm": {"state": "Stopped"}}}, status=True)
    kube_api.patch_vm("vm1", {"status": {"cpus": 7}})
    vm = kube_api.get_vm("vm1")
    assert vm["spec"]["vm"]["state"] == "Running"
    assert vm["status"]["cpus"] == 2
    assert vm["metadata"]["generation"] == 1  # status writes never bump the generation


def test_patch_types_behave_as_on_a_cluster(kube_api: KubeApiServer) -> None:
    kube_api.create_vm("vm1")
    # the reference's whole-/status JSON patch (which the runner must avoid): "replace" needs
    # an existing /status (422 on a new VM without CRD defaults), "add" replaces it as well
    whole = [{"op": "replace", "path": "/status", "value": {"cpus": 1}}]
    missing = kube_api.patch_vm("vm1", whole, status=True, content_type=JSON_PATCH)
    assert missing.status == 422, missing.body
    added = kube_api.patch_vm("vm1", [{**whole[0], "op": "add"}], status=True,
                              content_type=JSON_PATCH)
    assert added.status == 200, added.body
    replaced = kube_api.patch_vm("vm1", whole, status=True, content_type=JSON_PATCH)
    assert replaced.status == 200, replaced.body
    # a dict sent as a JSON patch (kubernetes_asyncio's default for dicts) is a 400
    wrong = kube_api.patch_vm("vm1", {"status": {"cpus": 2}}, status=True,
                              content_type=JSON_PATCH)
    assert wrong.status == 400, wrong.body
    # custom resources do not support strategic merge patch (lightkube's default): 415
    strategic = kube_api.patch_vm("vm1", {"status": {"cpus": 2}}, status=True,
                                  content_type=STRATEGIC_PATCH)
    assert strategic.status == 415, strategic.body
    # the contract's spec patch after a guest power-off
    stop = kube_api.patch_vm("vm1", [{"op": "replace", "path": "/spec/vm/state",
                                      "value": "Stopped"}], content_type=JSON_PATCH)
    assert stop.status == 200, stop.body
    vm = kube_api.get_vm("vm1")
    assert vm["spec"]["vm"]["state"] == "Stopped" and vm["metadata"]["generation"] == 2


BAD_STATUS: list[tuple[dict[str, Any], str]] = [
    ({"conditions": [condition("Running", "Unknown", "VmStarted")]},
     "status.conditions[0].status"),
    ({"conditions": [condition("Runing", "True", "VmStarted")]}, "status.conditions[0].type"),
    ({"conditions": [{**condition("Running", "True", "VmStarted"),
                      "lastTransitionTime": "yesterday"}]},
     "status.conditions[0].lastTransitionTime"),
    ({"conditions": [{"type": "Running", "status": "True"}]}, "status.conditions[0].reason"),
    ({"conditions": [condition("Running", "True", "VmStarted"),
                     condition("Running", "False", "VmStopped")]}, "status.conditions[1]"),
    ({"ram": 1073741824}, "status.ram"),
    ({"displayPasswordSerial": -2}, "status.displayPasswordSerial"),
]


def test_a_status_outside_the_schema_is_a_422_naming_the_field(
        kube_api: KubeApiServer) -> None:
    kube_api.create_vm("vm1")
    for status, field in BAD_STATUS:
        resp = kube_api.patch_vm("vm1", {"status": status}, status=True)
        assert resp.status == 422, (status, resp.body)
        assert field in resp.body["message"], resp.body["message"]
    assert "status" not in kube_api.get_vm("vm1")
    good = kube_api.patch_vm("vm1", {"status": {"conditions": [
        condition(type_, "True", "VmBooted") for type_ in (
            "Running", "Booted", "VmopAgentConnected", "UserLoggedIn", "ConsoleConnected")]}},
        status=True)
    assert good.status == 200, good.body


def test_a_spec_state_outside_the_enum_is_a_422(kube_api: KubeApiServer) -> None:
    resp = kube_api.client.request("POST", kube_api.vm_path(), {
        "apiVersion": "vmoperator.jdrupes.org/v1", "kind": "VirtualMachine",
        "metadata": {"name": "vm1"}, "spec": {"vm": {"state": "Paused"}}})
    assert resp.status == 422 and "spec.vm.state" in resp.body["message"], resp.body


def test_conflict_and_not_found(kube_api: KubeApiServer) -> None:
    old = kube_api.create_vm("vm1")["metadata"]["resourceVersion"]
    kube_api.patch_vm("vm1", {"status": {"cpus": 1}}, status=True)
    stale = kube_api.patch_vm("vm1", {"metadata": {"resourceVersion": old},
                                      "status": {"cpus": 2}}, status=True)
    assert stale.status == 409, stale.body
    kube_api.delete_vm("vm1")
    gone = kube_api.patch_vm("vm1", {"status": {"cpus": 2}}, status=True)
    assert gone.status == 404, gone.body


def test_a_watch_sees_a_status_change(kube_api: KubeApiServer) -> None:
    version = kube_api.create_vm("vm1")["metadata"]["resourceVersion"]
    with kube_api.watch_vms(resource_version=version) as watch:
        sent = time.monotonic()
        kube_api.patch_vm("vm1", {"status": {"cpus": 3}}, status=True)
        event = watch.wait_for(lambda e: e.object.get("status", {}).get("cpus") == 3)
    assert event.type == "MODIFIED"
    assert event.object["metadata"]["name"] == "vm1"
    assert event.received - sent < 2.0


def test_restart_keeps_the_data_and_the_port(kube_api: KubeApiServer) -> None:
    uid = kube_api.create_vm("vm1")["metadata"]["uid"]
    port = kube_api.port
    kube_api.stop()
    assert not kube_api.running
    with pytest.raises(ConnectionRefusedError):
        kube_api.get_vm("vm1")
    kube_api.start_apiserver()
    assert kube_api.port == port
    assert kube_api.get_vm("vm1")["metadata"]["uid"] == uid
    kube_api.kill()
    with pytest.raises(ConnectionRefusedError):
        kube_api.get_vm("vm1")
    kube_api.restart()
    assert kube_api.get_vm("vm1")["metadata"]["uid"] == uid


def test_down_at_start_then_up(kube_api_factory: KubeApiFactory, tmp_path: Path) -> None:
    api = kube_api_factory(start=False)
    runner = client_from_kubeconfig(api.kubeconfig, tmp_path)
    with pytest.raises(ConnectionRefusedError):
        runner.request("GET", api.vm_path())
    api.start_apiserver()
    assert runner.request("GET", api.vm_path()).status == 200


def test_a_paused_server_times_out_then_answers(kube_api: KubeApiServer) -> None:
    kube_api.create_vm("vm1")
    kube_api.pause()
    try:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            kube_api.client.request("GET", kube_api.vm_path(name="vm1"), timeout=1.0)
        assert 0.9 < time.monotonic() - start < 5
    finally:
        kube_api.resume()
    assert kube_api.get_vm("vm1")["metadata"]["name"] == "vm1"


def test_the_audit_log_lists_the_runners_requests(kube_api: KubeApiServer,
                                                  tmp_path: Path) -> None:
    kube_api.create_vm("vm1")
    runner = client_from_kubeconfig(kube_api.kubeconfig, tmp_path)
    assert runner.request("GET", kube_api.vm_path(name="vm1")).status == 200
    patched = runner.request("PATCH", kube_api.vm_path(name="vm1") + "/status",
                             {"status": {"cpus": 1}},
                             content_type=MERGE_PATCH)
    assert patched.status == 200
    mine = [(e.verb, e.resource, e.subresource, e.name, e.code)
            for e in kube_api.audit(user="vmrunner")]
    assert mine == [("get", "vms", "", "vm1", 200), ("patch", "vms", "status", "vm1", 200)]
    assert any(e.verb == "create" and e.user == "test-bed" for e in kube_api.audit())


def event_body(event_time: str) -> dict[str, Any]:
    return {"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"generateName": "vm1-"}, "eventTime": event_time, "type": "Normal",
            "reportingController": "vmoperator.jdrupes.org/vm-runner",
            "reportingInstance": "vm1", "action": "StatusUpdate", "reason": "VmStarted",
            "note": "started", "regarding": {"apiVersion": "vmoperator.jdrupes.org/v1",
                                             "kind": "VirtualMachine", "name": "vm1"}}


def test_the_events_stand_in_checks_the_event_time(kube_api: KubeApiServer) -> None:
    path = "/apis/events.k8s.io/v1/namespaces/default/events"
    micro = datetime.datetime(2026, 12, 3, 12, tzinfo=datetime.UTC)
    good = kube_api.client.request(
        "POST", path, event_body(micro.strftime("%Y-%m-%dT%H:%M:%S.%fZ")))
    assert good.status == 201, good.body
    assert good.body["metadata"]["name"].startswith("vm1-")
    # datetime.isoformat() (no fraction at whole seconds, "+00:00") is refused as on a cluster
    bad = kube_api.client.request("POST", path, event_body(micro.isoformat()))
    assert bad.status == 422 and "eventTime" in bad.body["message"], bad.body
    assert [e["reason"] for e in kube_api.events()] == ["VmStarted"]


def test_no_403_from_this_server_only_500_and_401(kube_api: KubeApiServer) -> None:
    """Measured (docs/design/testing.md): a user outside ``system:masters`` is authorized by the
    delegated SubjectAccessReview webhook, which is the dead address: 500, not 403; a bearer
    token nobody can review is a real 401."""
    kube_api.create_vm("vm1")
    other, _ = kube_api.client_for("other", ("developers",))
    listed = other.request("GET", kube_api.vm_path())
    assert listed.status == 500 and "subjectaccessreviews" in listed.body, listed
    patched = other.request("PATCH", kube_api.vm_path(name="vm1") + "/status",
                            {"status": {"cpus": 1}}, content_type=MERGE_PATCH)
    assert patched.status == 500, patched
    conn = http.client.HTTPSConnection(
        "127.0.0.1", kube_api.port, timeout=10,
        context=ssl.create_default_context(cafile=str(kube_api.ca.cert)))
    try:
        conn.request("GET", kube_api.vm_path(), headers={"Authorization": "Bearer stale"})
        assert conn.getresponse().status == 401
    finally:
        conn.close()
    assert [(e.verb, e.subresource, e.code) for e in kube_api.audit(user="other")] == [
        ("list", "", 500), ("patch", "status", 500)]
    # measured: a request that fails authentication does not reach the audit log
    assert not [e for e in kube_api.audit() if e.code == 401]
