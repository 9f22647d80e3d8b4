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


async def _recovered(runner: RunnerProcess, count: int) -> None:
    """The runner has logged ``count`` recovery lines in all (the last may follow the write
    by a moment)."""
    for _ in range(50):
        if len(_recoveries(runner)) >= count:
            break
        await asyncio.sleep(0.1)
    assert len(_recoveries(runner)) == count, runner.log_text()


async def _one_recovery(runner: RunnerProcess) -> None:
    """The runner logged exactly one recovery line."""
    await _recovered(runner, 1)


def _booted(status: dict[str, Any]) -> bool:
    return cond(status, "Booted") == ("True", "VmBooted")


async def _stop(runner: RunnerProcess, limit: float = 60) -> float:
    """TERM; the runner must exit 0; returns how long it took."""
    began = time.monotonic()
    runner.signal()
    assert await runner.wait(limit) == 0, runner.log_tail()
    return time.monotonic() - began


async def test_down_at_start_then_back_then_killed(
        vmdir: Path, kube_api: KubeApiServer, guest_image: GuestImage, accel: AccelVerdict,
        runners: list[RunnerProcess]) -> None:
    """Down while the VM boots, then up: the first status written is the current truth.
    Then killed: the VM goes on, and a TERM is not held up by the server."""
    kube_api.create_vm(VM)
    kube_api.stop()
    runner = kube_runner(vmdir, guest_image, kube_api, accel=str(accel.accel), runner=FAST,
                         maximumCpus=2, currentCpus=1)
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
    finally:
        history.close()
    assert_role_only(kube_api)
    kube_api.kill()
    guest_config(vmdir, guest_image, accel=str(accel.accel), name=VM, runner=FAST,
                 maximumCpus=2, currentCpus=2)
    await _sleep_for_retries(3)
    assert runner.proc is not None and runner.proc.returncode is None
    took = await _stop(runner)
    # the guest's power-off plus the bounded final write (2 s), nothing more
    assert took < 20, took
    assert "not written within 2 s" in runner.log_text()


async def test_slow_deleted_invalid_and_conflict_while_running(
        vmdir: Path, kube_api: KubeApiServer, guest_image: GuestImage, accel: AccelVerdict,
        runners: list[RunnerProcess]) -> None:
    """One running VM while the server misbehaves in turn (each fault: one log line, one
    recovery line, the status catches up):

    * slow: the server takes connections but answers nothing;
    * 404: the VirtualMachine was deleted, then created again;
    * 422: a CRD whose schema refuses the runner's status, then fixed;
    * 409: the manager changed the object since the runner read it; the runner re-reads and
      writes its conditions without losing the manager's change.
    """
    kube_api.create_vm(VM, {"vm": {"state": "Running", "currentCpus": 1}})
    history = VmHistory(kube_api)

    def edit(**vm: Any) -> None:
        guest_config(vmdir, guest_image, accel=str(accel.accel), name=VM, runner=FAST,
                     maximumCpus=3, **vm)

    try:
        runner = kube_runner(vmdir, guest_image, kube_api, accel=str(accel.accel),
                             runner=FAST, maximumCpus=3, currentCpus=1)
        runners.append(runner)
        await runner.start()
        await runner.wait_ready(BOOT)
        await history.until(_booted, 60)

        kube_api.pause()
        edit(currentCpus=2)
        await _sleep_for_retries(6)
        lines = _problem_lines(runner)
        assert len(lines) == 1 and "no answer within 2 s" in lines[0], lines
        kube_api.resume()
        await history.until(lambda s: s.get("cpus") == 2 and _booted(s), 60)
        await _recovered(runner, 1)

        kube_api.delete_vm(VM)
        ram = history.last["status"]["ram"]
        # a change of the runner's state while the object is gone: the balloon
        edit(currentCpus=2, currentRam="224 MiB")
        await _sleep_for_retries(4)
        lines = _problem_lines(runner)[1:]
        assert len(lines) == 1 and "404" in lines[0] and "does not exist" in lines[0], lines
        kube_api.create_vm(VM)
        await history.until(lambda s: s.get("ram") not in (None, ram) and _booted(s), 60)
        await _recovered(runner, 2)

        # the schema now allows at most two vCPUs; the runner's three are refused
        _crd_cpus_maximum(kube_api, 2)
        edit(currentCpus=3, currentRam="224 MiB")
        await _sleep_for_retries(4)
        lines = [line for line in _problem_lines(runner) if "422" in line]
        assert len(lines) == 1 and "cpus" in lines[0], runner.log_text()
        assert kube_api.get_vm(VM)["status"]["cpus"] == 2
        _crd_cpus_maximum(kube_api, None)
        await history.until(lambda s: s.get("cpus") == 3, 60)
        await _recovered(runner, 3)

        # the manager writes (the runner's copy is now stale), then the runner's conditions
        # change (the stop): its patch carries the old resourceVersion → 409 → re-read →
        # written, the manager's change kept
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
        assert len(_problem_lines(runner)) == 3, runner.log_text()
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
