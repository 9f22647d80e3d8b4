"""The VirtualMachine status the runner writes (contract §3), end to end: ``vmrunner run
--kubeconfig`` on the test guest (real QEMU) against the real API server, every version of
the object seen through a watch.

One run goes through every phase: starting, running, booted, a display password, a console
client, auto-login, a configuration change (RAM, vCPUs, generation), then a power-off
inside the guest with ``guestShutdownStops`` (terminating, stopped, the spec patch).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vmrunner import __version__
from vmrunner.config.sizes import MIB, ram_tolerance
from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.apiserver import KubeApiServer
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.runnerproc import RunnerProcess, guest_config, scratch_dir
from vmrunner.testing.spice import LINK_OK, spice_session

from .runner_support import (
    BOOT,
    ROLE,
    VM,
    VmHistory,
    assert_role_only,
    cond,
    condition,
    kube_runner,
    manager_status,
    skip_without_spice,
    with_access_webhook,
)

pytestmark = [pytest.mark.guest, pytest.mark.k8s]

PASSWORD_WINDOW = 1.5
"""The manager waits this long for displayPasswordSerial to grow."""
_UNITS = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}


def _bytes(quantity: str) -> int:
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", quantity)
    assert match, quantity
    return int(match.group(1)) * _UNITS.get(match.group(2) or "", 1)


@pytest.fixture
def vmdir() -> Iterator[Path]:
    with scratch_dir("k8s") as path:
        yield path


def _publish(directory: Path, name: str, text: str) -> None:
    """Replace ``name`` atomically (as a Secret volume update would)."""
    tmp = directory / f".{name}.tmp"
    tmp.write_text(text)
    os.replace(tmp, directory / name)


@skip_without_spice
async def test_every_phase_of_a_run(
        vmdir: Path, kube_api: KubeApiServer, guest_image: GuestImage, accel: AccelVerdict,
        runners: list[RunnerProcess]) -> None:
    kube_api.create_vm(VM, {"vm": {"state": "Running", "currentCpus": 1}})
    # what the manager owns, and a serial from an earlier run
    manager_status(kube_api, consoleUser="alice", assignment={"pool": "p1", "user": "alice"},
                   displayPasswordSerial=5)
    history = VmHistory(kube_api)
    port = _port()
    (vmdir / "display-password").write_text("first-secret")
    vm: dict[str, Any] = {
        "maximumRam": "256 MiB", "maximumCpus": 2, "currentCpus": 1,
        "display": {"loggedInUser": "test",
                    "spice": {"port": port, "address": "127.0.0.1",
                              "passwordFile": "display-password"}}}
    keys: dict[str, Any] = {"guestShutdownStops": True,
                            "cloudInit": {"metaData": {"instance-id": "v1"}}}
    runner = kube_runner(vmdir, guest_image, kube_api, accel=str(accel.accel),
                         runner=keys, **vm)
    runners.append(runner)
    try:
        await runner.start()
        # starting: the first status written is that of the start (RunnerStarted), or, if
        # QEMU was quicker than the first write (writes coalesce), of the running VM
        first = (await history.until(lambda s: bool(s.get("conditions"))))["status"]
        assert (first["cpus"], first["ram"], first["runnerVersion"]) == (1, "256Mi",
                                                                         __version__)
        running, reason = cond(first, "Running")
        assert (running, reason) in (("False", "RunnerStarted"), ("True", "VmStarted"))
        assert cond(first, "Booted") == ("False", reason)
        assert cond(first, "ConsoleConnected") == ("False", "VmStopped")
        assert cond(first, "VmopAgentConnected") == ("False", "VmStopped")
        assert cond(first, "UserLoggedIn") == (
            ("False", "VmStopped") if reason == "RunnerStarted"
            else ("False", "VmopAgentDisconnected"))
        assert first["consoleClient"] == "" and "osinfo" not in first
        # running, then booted (the guest agent answered)
        await history.until(lambda s: cond(s, "Running") == ("True", "VmStarted"))
        await runner.wait_ready(BOOT)
        booted = (await history.until(lambda s: cond(s, "Booted") == ("True", "VmBooted")))
        status = booted["status"]
        assert cond(status, "Running") == ("True", "VmBooted")
        assert status["osinfo"]["id"], status["osinfo"]
        running_since = condition(status, "Running")["lastTransitionTime"]
        # the display password applied at the start: the earlier run's serial + 1
        status = (await history.until(lambda s: s.get("displayPasswordSerial") == 6))["status"]
        # auto-login through the vmop agent
        status = (await history.until(
            lambda s: cond(s, "UserLoggedIn") == ("True", "LoggedIn")))["status"]
        assert status["loggedInUser"] == "test"
        assert cond(status, "VmopAgentConnected") == ("True", "VmopAgentStarted")

        # a new display password: the serial grows within the manager's window
        mark = history.mark()
        changed = time.monotonic()
        _publish(vmdir, "display-password", "second-secret")
        seen, _obj = await history.until_timed(
            lambda s: s.get("displayPasswordSerial") == 7, 10, since=mark)
        latency = seen - changed
        print(f"displayPasswordSerial grew {latency * 1000:.0f} ms after the file changed")
        assert latency < PASSWORD_WINDOW

        # a console client
        async with spice_session("127.0.0.1", port, "second-secret") as result:
            assert result == LINK_OK
            status = (await history.until(
                lambda s: cond(s, "ConsoleConnected") == ("True", "Connected")))["status"]
            assert status["consoleClient"] == "127.0.0.1"
            assert condition(status, "ConsoleConnected")["message"] == \
                "Connection from 127.0.0.1"
        status = (await history.until(
            lambda s: cond(s, "ConsoleConnected") == ("False", "Disconnected")))["status"]
        assert status["consoleClient"] == ""

        # the manager changes the spec (generation 2) and the config map: RAM, vCPUs, logout
        kube_api.patch_vm(VM, {"spec": {"vm": {"currentCpus": 2}}})
        assert kube_api.get_vm(VM)["metadata"]["generation"] == 2
        vm.update(currentRam="192 MiB", currentCpus=2)
        vm["display"] = {"spice": vm["display"]["spice"]}
        keys["cloudInit"] = {"metaData": {"instance-id": "v2"}}
        guest_config(vmdir, guest_image, accel=str(accel.accel), name=VM, runner=keys, **vm)
        status = (await history.until(lambda s: s.get("cpus") == 2
                                      and condition(s, "Running").get("observedGeneration")
                                      == 2))["status"]
        assert {c["observedGeneration"] for c in status["conditions"]} == {2}
        status = (await history.until(
            lambda s: abs(_bytes(s.get("ram", "0")) - 192 * MIB) <= ram_tolerance(192 * MIB),
            60))["status"]
        # the wish changes at once, loggedInUser goes when the agent confirmed the logout
        status = (await history.until(
            lambda s: cond(s, "UserLoggedIn") == ("False", "NotRequested")
            and "loggedInUser" not in s))["status"]
        # a status that did not flip kept its transition time
        assert condition(status, "Running")["lastTransitionTime"] == running_since

        # the guest powers itself off: terminating, stopped, spec.vm.state Stopped
        assert runner.console is not None
        await runner.console.send_line("@1 tg poweroff")
        assert await runner.wait(60) == 0, runner.log_tail()
        statuses = history.statuses()
        assert any(cond(s, "Running") == ("True", "VmTerminating") for s in statuses)
        final = kube_api.get_vm(VM)
        status = final["status"]
        assert final["spec"]["vm"]["state"] == "Stopped"
        assert cond(status, "Running") == ("False", "VmStopped")
        assert cond(status, "Booted") == ("False", "VmStopped")
        for type_ in ("ConsoleConnected", "VmopAgentConnected", "UserLoggedIn"):
            assert cond(status, type_) == ("False", "VmStopped"), type_
        assert (status["cpus"], status["ram"], status["consoleClient"]) == (0, "0", "")
        assert "osinfo" not in status and "loggedInUser" not in status
        # the manager's fields were never touched
        assert status["consoleUser"] == "alice"
        assert status["assignment"] == {"pool": "p1", "user": "alice"}
        assert [c["type"] for c in status["conditions"]] == [
            "Running", "Booted", "VmopAgentConnected", "UserLoggedIn", "ConsoleConnected"]
        assert_role_only(kube_api)
    finally:
        history.close()


async def test_observed_generation_without_cloud_init_is_read_from_the_object(
        vmdir: Path, kube_api: KubeApiServer, guest_image: GuestImage, accel: AccelVerdict,
        runners: list[RunnerProcess]) -> None:
    """Without ``instance-id: v<generation>`` the runner reads the object's generation when
    it applies a configuration; a TERM stop is graceful and patches no spec."""
    kube_api.create_vm(VM)
    kube_api.patch_vm(VM, {"spec": {"vm": {"state": "Running", "maximumCpus": 1}}})
    history = VmHistory(kube_api)
    runner = kube_runner(vmdir, guest_image, kube_api, accel=str(accel.accel),
                         runner={"guestShutdownStops": True})
    runners.append(runner)
    try:
        await runner.start()
        await runner.wait_ready(BOOT)
        status = (await history.until(lambda s: cond(s, "Booted")[0] == "True"))["status"]
        assert {c["observedGeneration"] for c in status["conditions"]} == {2}
        runner.signal()
        assert await runner.wait(60) == 0, runner.log_tail()
        final = kube_api.get_vm(VM)
        assert cond(final["status"], "Running") == ("False", "VmStopped")
        assert final["spec"]["vm"]["state"] == "Running", "a TERM stop is not the guest's"
        assert_role_only(kube_api)
    finally:
        history.close()


async def test_in_a_pod_with_a_rotated_token(
        vmdir: Path, kube_api_factory: Any, guest_image: GuestImage, accel: AccelVerdict,
        runners: list[RunnerProcess], monkeypatch: pytest.MonkeyPatch) -> None:
    """In-cluster credentials: the service account's token, CA and namespace files and
    ``KUBERNETES_SERVICE_HOST/PORT``; the API server authenticates the token and authorizes
    every request against exactly the contract's Role (through the access webhook); a
    rotated token is read again."""
    api, webhook = with_access_webhook(kube_api_factory)
    try:
        user = "system:serviceaccount:default:vm-runner"
        webhook.tokens["token-a"] = user
        webhook.roles[user] = set(ROLE)
        sa = vmdir / "sa"
        sa.mkdir()
        (sa / "token").write_text("token-a")
        (sa / "namespace").write_text("default")
        shutil.copy(api.ca.cert, sa / "ca.crt")
        api.create_vm(VM)
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(api.port))
        history = VmHistory(api)
        config = guest_config(vmdir, guest_image, accel=str(accel.accel), name=VM,
                              maximumCpus=2, currentCpus=1,
                              runner={"/Kubernetes": {"serviceAccountDir": str(sa)}})
        runner = RunnerProcess(config)
        runners.append(runner)
        try:
            await runner.start()
            await runner.wait_ready(BOOT)
            await history.until(lambda s: cond(s, "Booted") == ("True", "VmBooted"))
            assert "through the pod's service account" in runner.log_text()
            # kubelet rotates the token; the old one stops working (after the API server's
            # 10 s cache of token reviews)
            _publish(sa, "token", "token-b")
            webhook.tokens = {"token-b": user}
            await asyncio.sleep(11)
            guest_config(vmdir, guest_image, accel=str(accel.accel), name=VM,
                         maximumCpus=2, currentCpus=2,
                         runner={"/Kubernetes": {"serviceAccountDir": str(sa)}})
            await history.until(lambda s: s.get("cpus") == 2, 60)
            assert "token-b" in webhook.seen_tokens
            runner.signal()
            assert await runner.wait(60) == 0, runner.log_tail()
            assert cond(api.get_vm(VM)["status"], "Running") == ("False", "VmStopped")
            assert webhook.denied == [], "the contract's Role is not enough"
        finally:
            history.close()
    finally:
        webhook.close()


def _port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
