"""The Events the runner creates (contract §4) and the spec patch rule, end to end: the real
runner on the test guest against the real API server (Events through the stand-in CRD for
``events.k8s.io/v1``)."""

from __future__ import annotations

import datetime
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.apiserver import KubeApiServer
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.runnerproc import RunnerProcess, scratch_dir
from vmrunner.testing.spice import LINK_OK, spice_session

from .runner_support import (
    BOOT,
    VM,
    VmHistory,
    assert_role_only,
    cond,
    kube_runner,
    skip_without_spice,
)

pytestmark = [pytest.mark.guest, pytest.mark.k8s]

MICRO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.fixture
def vmdir() -> Iterator[Path]:
    with scratch_dir("k8e") as path:
        yield path


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _in_order(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(events, key=lambda e: e["eventTime"])


@skip_without_spice
async def test_state_and_console_events(
        vmdir: Path, kube_api: KubeApiServer, guest_image: GuestImage, accel: AccelVerdict,
        runners: list[RunnerProcess]) -> None:
    uid = kube_api.create_vm(VM)["metadata"]["uid"]
    port = _port()
    (vmdir / "display-password").write_text("secret")
    runner = kube_runner(vmdir, guest_image, kube_api, accel=str(accel.accel), display={
        "spice": {"port": port, "address": "127.0.0.1", "passwordFile": "display-password"}})
    runners.append(runner)
    history = VmHistory(kube_api)
    try:
        before = datetime.datetime.now(datetime.UTC)
        await runner.start()
        await runner.wait_ready(BOOT)
        await history.until(lambda s: cond(s, "Booted")[0] == "True")
        async with spice_session("127.0.0.1", port, "secret") as result:
            assert result == LINK_OK
            await history.until(lambda s: s.get("consoleClient") == "127.0.0.1")
        await history.until(lambda s: cond(s, "ConsoleConnected")[1] == "Disconnected")
        runner.signal()
        assert await runner.wait(60) == 0, runner.log_tail()
        after = datetime.datetime.now(datetime.UTC)
    finally:
        history.close()

    events = _in_order(kube_api.events())
    assert [(e["action"], e["reason"]) for e in events] == [
        ("StatusUpdate", "RunnerStarted"), ("StatusUpdate", "VmStarted"),
        ("StatusUpdate", "VmBooted"),
        ("ConsoleConnectionUpdate", "Connection from 127.0.0.1"),
        ("ConsoleConnectionUpdate", "Disconnected from 127.0.0.1"),
        ("StatusUpdate", "VmTerminating"), ("StatusUpdate", "VmStopped")]
    for event in events:
        assert event["apiVersion"] == "events.k8s.io/v1" and event["kind"] == "Event"
        assert event["type"] == "Normal"
        assert event["reportingController"] == "vmoperator.jdrupes.org/vm-runner"
        assert event["reportingInstance"] == VM
        assert event["metadata"]["generateName"] == f"{VM}-"
        assert event["metadata"]["name"].startswith(f"{VM}-")
        assert event["regarding"] == {"apiVersion": "vmoperator.jdrupes.org/v1",
                                      "kind": "VirtualMachine", "name": VM,
                                      "namespace": "default", "uid": uid}
        assert MICRO.fullmatch(event["eventTime"]), event["eventTime"]
        when = datetime.datetime.strptime(event["eventTime"], "%Y-%m-%dT%H:%M:%S.%fZ") \
            .replace(tzinfo=datetime.UTC)
        assert before <= when <= after
        assert event["note"]
    console = [e for e in events if e["action"] == "ConsoleConnectionUpdate"]
    assert [e["note"] for e in console] == [e["reason"] for e in console]
    assert kube_api.get_vm(VM)["spec"]["vm"]["state"] == "Running"
    assert_role_only(kube_api)


async def test_guest_poweroff_without_guest_shutdown_stops_keeps_the_spec(
        vmdir: Path, kube_api: KubeApiServer, guest_image: GuestImage, accel: AccelVerdict,
        runners: list[RunnerProcess]) -> None:
    """The spec patch is tied to ``guestShutdownStops``: without it a guest power-off leaves
    ``spec.vm.state`` alone (the manager starts the VM again)."""
    kube_api.create_vm(VM)
    runner = kube_runner(vmdir, guest_image, kube_api, accel=str(accel.accel),
                         runner={"guestShutdownStops": False})
    runners.append(runner)
    await runner.start()
    await runner.wait_ready(BOOT)
    assert runner.console is not None
    await runner.console.send_line("@1 tg poweroff")
    assert await runner.wait(60) == 0, runner.log_tail()
    vm = kube_api.get_vm(VM)
    assert vm["spec"]["vm"]["state"] == "Running"
    assert cond(vm["status"], "Running") == ("False", "VmStopped")
    assert [e["reason"] for e in _in_order(kube_api.events())][-1] == "VmStopped"
    assert not [r for r in kube_api.audit("vmrunner") if r.resource == "vms"
                and r.subresource == "" and r.verb == "patch"]
