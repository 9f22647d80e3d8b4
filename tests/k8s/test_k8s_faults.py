"""The API server misbehaves (issue 13, item 6), the runner and its VM do not: the real runner
on the test guest against the real API server, which the test stops, pauses, restarts, or
makes answer 404, 409 and 422.

In every case: the VM keeps running and stops gracefully on TERM (exit 0), the runner logs
one line per problem (not per retry) and one when it recovers, and the status catches up
with the current truth (never an older state written last).
"""

from __future__ import annotations

import asyncio
import copy
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.apiserver import VM_CRD, KubeApiServer
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.runnerproc import RunnerProcess, guest_config, scratch_dir

from .runner_support import (
    BOOT,
    ROLE,
    VM,
    VmHistory,
    assert_role_only,
    cond,
    kube_runner,
    with_access_webhook,
)

pytestmark = [pytest.mark.guest, pytest.mark.k8s]

FAST = {"/Kubernetes": {"requestTimeout": 2, "finalWriteTimeout": 2}}
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


@pytest.fixture
def vmdir() -> Iterator[Path]:
    with scratch_dir("k8f") as path:
        yield path


def _problem_lines(runner: RunnerProcess) -> list[str]:
    return [line for line in runner.log_text().splitlines()
            if "Kubernetes: default/tg: " in line and "WARNING" in line]


def _recoveries(runner: RunnerProcess) -> list[str]:
    return re.findall(r"Kubernetes: default/tg written again after \d+ failed attempt",
                      runner.log_text())


async def _one_recovery(runner: RunnerProcess) -> None:
    """The runner logged exactly one recovery line (it may follow the write by a moment)."""
    for _ in range(50):
        if _recoveries(runner):
            break
        await asyncio.sleep(0.1)
    assert len(_recoveries(runner)) == 1, runner.log_text()


def _booted(status: dict[str, Any]) -> bool:
    return cond(status, "Booted") == ("True", "VmBooted")


async def _booted_runner(vmdir: Path, kube_api: KubeApiServer, guest_image: GuestImage,
                         accel: AccelVerdict, runners: list[RunnerProcess],
                         history: VmHistory) -> RunnerProcess:
    """The runner on the test guest (2 vCPU slots, 1 plugged) with the API server up, once
    the status shows the guest booted."""
    runner = kube_runner(vmdir, guest_image, kube_api, accel=str(accel.accel), runner=FAST,
                         maximumCpus=2, currentCpus=1)
    runners.append(runner)
    await runner.start()
    await runner.wait_ready(BOOT)
    await history.until(_booted, 60)
    return runner


async def _stop(runner: RunnerProcess, limit: float = 60) -> float:
    """TERM; the runner must exit 0; returns how long it took."""
    began = time.monotonic()
    runner.signal()
    assert await runner.wait(limit) == 0, runner.log_tail()
    return time.monotonic() - began


async def test_down_at_start_then_back(
        vmdir: Path, kube_api: KubeApiServer, guest_image: GuestImage, accel: AccelVerdict,
        runners: list[RunnerProcess]) -> None:
    kube_api.create_vm(VM)
    kube_api.stop()
    runner = kube_runner(vmdir, guest_image, kube_api, accel=str(accel.accel), runner=FAST)
    runners.append(runner)
    await runner.start()
    await runner.wait_ready(BOOT)  # the VM boots while the server is down
    assert len(_problem_lines(runner)) == 1, runner.log_text()
    assert "does not answer" in _problem_lines(runner)[0]
    await _sleep_for_retries()
    assert len(_problem_lines(runner)) == 1, "one line per problem, not per retry"
    kube_api.start_apiserver()
    history = VmHistory(kube_api)
    try:
        await history.until(_booted, 60)
        await _one_recovery(runner)
        # the first status written was already the current truth: no older state ever
        statuses = [s for s in history.statuses() if s.get("conditions")]
        assert _booted(statuses[0]), statuses[0]
        assert all(_booted(s) for s in statuses)
        await _stop(runner)
        assert cond(kube_api.get_vm(VM)["status"], "Running") == ("False", "VmStopped")
    finally:
        history.close()
    assert_role_only(kube_api)


async def test_down_and_slow_while_running(
        vmdir: Path, kube_api: KubeApiServer, guest_image: GuestImage, accel: AccelVerdict,
        runners: list[RunnerProcess]) -> None:
    kube_api.create_vm(VM, {"vm": {"state": "Running", "currentCpus": 1}})
    history = VmHistory(kube_api)
    try:
        runner = await _booted_runner(vmdir, kube_api, guest_image, accel, runners, history)
        # slow: the server takes connections but answers nothing
        kube_api.pause()
        guest_config(vmdir, guest_image, accel=str(accel.accel), name=VM, runner=FAST,
                     maximumCpus=2, currentCpus=2)
        await _sleep_for_retries(6)
        lines = _problem_lines(runner)
        assert len(lines) == 1 and "no answer within 2 s" in lines[0], lines
        kube_api.resume()
        await history.until(lambda s: s.get("cpus") == 2 and _booted(s), 60)
        await _one_recovery(runner)
        # down: the server is gone; the VM goes on, and a TERM is not held up by it
        kube_api.kill()
        guest_config(vmdir, guest_image, accel=str(accel.accel), name=VM, runner=FAST,
                     maximumCpus=2, currentCpus=1)
        await _sleep_for_retries(3)
        assert runner.proc is not None and runner.proc.returncode is None
        took = await _stop(runner)
        # the guest's power-off plus the bounded final write (2 s), nothing more
        assert took < 20, took
        assert "not written within 2 s" in runner.log_text()
    finally:
        history.close()


async def test_vm_deleted_then_recreated(
        vmdir: Path, kube_api: KubeApiServer, guest_image: GuestImage, accel: AccelVerdict,
        runners: list[RunnerProcess]) -> None:
    kube_api.create_vm(VM)
    history = VmHistory(kube_api)
    try:
        runner = await _booted_runner(vmdir, kube_api, guest_image, accel, runners, history)
        kube_api.delete_vm(VM)
        # a change of the runner's state while the object is gone (SIGTERM would end it, so a
        # status source that does not stop the VM: a new vCPU count)
        guest_config(vmdir, guest_image, accel=str(accel.accel), name=VM, runner=FAST,
                     maximumCpus=2, currentCpus=2)
        await _sleep_for_retries(4)
        lines = _problem_lines(runner)
        assert len(lines) == 1 and "404" in lines[0] and "does not exist" in lines[0], lines
        kube_api.create_vm(VM)
        await history.until(lambda s: s.get("cpus") == 2 and _booted(s), 60)
        await _one_recovery(runner)
        await _stop(runner)
    finally:
        history.close()


async def test_conflict_and_invalid(
        vmdir: Path, kube_api: KubeApiServer, guest_image: GuestImage, accel: AccelVerdict,
        runners: list[RunnerProcess]) -> None:
    """409: the manager changed the object since the runner read it; the runner re-reads
    and writes its conditions without losing the manager's change. 422: a CRD whose schema
    refuses the runner's status; once the CRD is fixed, the status catches up."""
    kube_api.create_vm(VM)
    history = VmHistory(kube_api)
    try:
        runner = await _booted_runner(vmdir, kube_api, guest_image, accel, runners, history)
        # 422: the schema now allows at most one vCPU; the runner's two are refused
        _crd_cpus_maximum(kube_api, 1)
        guest_config(vmdir, guest_image, accel=str(accel.accel), name=VM, runner=FAST,
                     maximumCpus=2, currentCpus=1)
        await history.until(lambda s: s.get("cpus") == 1)
        guest_config(vmdir, guest_image, accel=str(accel.accel), name=VM, runner=FAST,
                     maximumCpus=2, currentCpus=2)
        await _sleep_for_retries(4)
        lines = [line for line in _problem_lines(runner) if "422" in line]
        assert len(lines) == 1 and "cpus" in lines[0], runner.log_text()
        assert kube_api.get_vm(VM)["status"]["cpus"] == 1
        _crd_cpus_maximum(kube_api, None)
        await history.until(lambda s: s.get("cpus") == 2, 60)
        await _one_recovery(runner)
        # 409: the manager writes (the runner's copy is now stale), then the runner's
        # conditions change (the stop): its patch carries the old resourceVersion → 409 →
        # re-read → written, the manager's change kept
        assert kube_api.patch_vm(VM, {"status": {"consoleUser": "bob"}}, status=True).status \
            == 200
        await _stop(runner)
        status = kube_api.get_vm(VM)["status"]
        assert cond(status, "Running") == ("False", "VmStopped")
        assert status["consoleUser"] == "bob"
        conflicts = [r for r in kube_api.audit("vmrunner")
                     if r.subresource == "status" and r.code == 409]
        assert conflicts, "the stale write was not refused"
        assert not [line for line in _problem_lines(runner) if "409" in line]
    finally:
        history.close()
    assert_role_only(kube_api)


async def test_forbidden_then_granted(
        vmdir: Path, kube_api_factory: Any, guest_image: GuestImage, accel: AccelVerdict,
        runners: list[RunnerProcess]) -> None:
    """403: the runner's identity may not patch ``vms/status`` (missing RBAC); one line
    naming the Role; once the permission is granted, the status catches up."""
    api, webhook = with_access_webhook(kube_api_factory)
    try:
        _client, kubeconfig = api.client_for("limited", ("vm-runners",))
        webhook.roles["limited"] = set(ROLE) - {("patch", "vms", "status")}
        api.create_vm(VM)
        history = VmHistory(api)
        runner = kube_runner(vmdir, guest_image, api, accel=str(accel.accel), runner=FAST,
                             kubeconfig=kubeconfig)
        runners.append(runner)
        try:
            await runner.start()
            await runner.wait_ready(BOOT)
            await _sleep_for_retries(3)
            lines = _problem_lines(runner)
            assert len(lines) == 1 and "403" in lines[0] and "Role" in lines[0], lines
            assert "conditions" not in (api.get_vm(VM).get("status") or {})
            webhook.roles["limited"].add(("patch", "vms", "status"))
            await history.until(_booted, 60)  # after the API server's 10 s denial cache
            await _one_recovery(runner)
            await _stop(runner)
            assert cond(api.get_vm(VM)["status"], "Running") == ("False", "VmStopped")
        finally:
            history.close()
    finally:
        webhook.close()


def _crd_cpus_maximum(api: KubeApiServer, maximum: int | None) -> None:
    """Update the VirtualMachine CRD: ``status.cpus`` at most ``maximum`` (None: as
    shipped)."""
    shipped = yaml.safe_load(VM_CRD.read_text())
    name = shipped["metadata"]["name"]
    current = api.client.call("GET", f"{CRD_PATH}/{name}")
    crd = copy.deepcopy(current)
    crd["spec"]["versions"] = shipped["spec"]["versions"]
    cpus = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"][
        "properties"]["cpus"]
    if maximum is not None:
        cpus["maximum"] = maximum
    response = api.client.request("PUT", f"{CRD_PATH}/{name}", crd)
    assert response.status == 200, response
    time.sleep(0.5)  # the new schema takes effect at once; a moment for the handler swap


async def _sleep_for_retries(seconds: float = 4) -> None:
    import asyncio

    await asyncio.sleep(seconds)
