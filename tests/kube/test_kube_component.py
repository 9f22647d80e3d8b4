"""KubeStatusWriter's mappings from the runner's bus events to the desired status, with the
real bus (scripted events; the writer's task has a dead API server address and writes
nothing; tests/k8s/ run the whole thing against a real server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from vmrunner.components.base import BusComponent
from vmrunner.config.model import RunnerConfig
from vmrunner.core import Start
from vmrunner.events import (
    ConfigureQemu,
    ConsoleConnected,
    ConsoleDisconnected,
    LoginFailed,
    QmpBalloonChange,
    RunnerStateChanged,
    RunState,
    UserLoggedIn,
    VmopAgentConnected,
    VmopAgentDisconnected,
)
from vmrunner.kube.component import KubeStatusWriter
from vmrunner.kube.settings import KubeSettings

MIB = 1 << 20
CONFIG = RunnerConfig.model_validate({"vm": {
    "name": "t", "maximumRam": "256 MiB", "currentRam": "128 MiB",
    "display": {"loggedInUser": "alice"}}})


@pytest_asyncio.fixture
async def tree(tmp_path: Path) -> AsyncIterator[tuple[BusComponent, KubeStatusWriter]]:
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text("not: a kubeconfig\n")
    settings = KubeSettings(mode="kubeconfig", vm_name="t", namespace="n",
                            kubeconfig=kubeconfig, final_write_timeout=0.2)
    root = BusComponent(name="Root")
    writer = root.attach(KubeStatusWriter(settings, tmp_path, ram_interval=0.5))
    await root.fire(Start())
    await root.fire(RunnerStateChanged(old=RunState.INITIALIZING, new=RunState.STARTING,
                                       reason="RunnerStarted", message="started"))
    await root.fire(RunnerStateChanged(old=RunState.STARTING, new=RunState.BOOTING,
                                       reason="VmStarted", message="running"))
    await root.fire(ConfigureQemu(config=CONFIG, state=RunState.BOOTING, initial=False))
    yield root, writer
    await root.component_tree.tasks.shutdown()


def _cond(writer: KubeStatusWriter, type_: str) -> tuple[bool, str, str]:
    c = writer.desired.conditions[type_]
    return c.status, c.reason, c.message


async def test_ram_at_most_every_interval_unless_the_target_is_reached(
        tree: tuple[BusComponent, KubeStatusWriter]) -> None:
    root, writer = tree
    fields = writer.desired.fields
    await root.fire(QmpBalloonChange(timestamp=0, actual=200 * MIB))
    assert fields["ram"] == "200Mi"  # the last write is older than the interval
    await root.fire(QmpBalloonChange(timestamp=0, actual=180 * MIB))
    await root.fire(QmpBalloonChange(timestamp=0, actual=170 * MIB))
    assert fields["ram"] == "200Mi"  # held back...
    await asyncio.sleep(0.7)
    assert fields["ram"] == "170Mi"  # ...and the latest written once the interval is over
    await root.fire(QmpBalloonChange(timestamp=0, actual=128 * MIB))
    assert fields["ram"] == "128Mi"  # the target: at once


async def test_vmop_agent_and_login(tree: tuple[BusComponent, KubeStatusWriter]) -> None:
    root, writer = tree
    assert _cond(writer, "UserLoggedIn")[:2] == (False, "VmopAgentDisconnected")
    await root.fire(VmopAgentConnected())
    assert _cond(writer, "VmopAgentConnected")[:2] == (True, "VmopAgentStarted")
    assert _cond(writer, "UserLoggedIn") == (False, "Processing", "Logging in alice")
    await root.fire(LoginFailed(code=451, text="no", user="alice"))
    assert _cond(writer, "UserLoggedIn") == (False, "Processing",
                                             "Login of alice refused: 451 no")
    await root.fire(UserLoggedIn(user="alice"))
    assert _cond(writer, "UserLoggedIn")[:2] == (True, "LoggedIn")
    assert writer.desired.fields["loggedInUser"] == "alice"
    await root.fire(VmopAgentDisconnected(reason="the agent quit"))
    assert _cond(writer, "VmopAgentConnected") == (
        False, "VmopAgentDisconnected", "The VM operator agent is not running (the agent quit)")
    assert _cond(writer, "UserLoggedIn")[:2] == (False, "VmopAgentDisconnected")
    assert writer.desired.fields["loggedInUser"] is None


async def test_console_sessions_and_events(
        tree: tuple[BusComponent, KubeStatusWriter]) -> None:
    root, writer = tree
    await root.fire(ConsoleConnected(host="10.0.0.1", connection_id=1))
    await root.fire(ConsoleConnected(host="10.0.0.2", connection_id=2))
    await root.fire(ConsoleDisconnected(host="10.0.0.2", connection_id=2,
                                        console_client="10.0.0.1"))
    assert writer.desired.fields["consoleClient"] == "10.0.0.1"
    assert _cond(writer, "ConsoleConnected") == (True, "Connected", "Connection from 10.0.0.1")
    await root.fire(ConsoleDisconnected(host="10.0.0.1", connection_id=1))
    assert _cond(writer, "ConsoleConnected") == (False, "Disconnected",
                                                 "Disconnected from 10.0.0.1")
    assert [(e.action, e.reason) for e in writer.writer.events][-4:] == [
        ("ConsoleConnectionUpdate", "Connection from 10.0.0.1"),
        ("ConsoleConnectionUpdate", "Connection from 10.0.0.2"),
        ("ConsoleConnectionUpdate", "Disconnected from 10.0.0.2"),
        ("ConsoleConnectionUpdate", "Disconnected from 10.0.0.1")]


async def test_stopped_resets_what_belongs_to_the_running_vm(
        tree: tuple[BusComponent, KubeStatusWriter]) -> None:
    root, writer = tree
    await root.fire(RunnerStateChanged(old=RunState.BOOTING, new=RunState.TERMINATING,
                                       reason="VmTerminating", message="stopping"))
    assert _cond(writer, "Running")[:2] == (True, "VmTerminating")
    assert _cond(writer, "Booted")[:2] == (False, "VmTerminating")
    await root.fire(RunnerStateChanged(old=RunState.TERMINATING, new=RunState.STOPPED,
                                       reason="VmStopped", message="stopped"))
    fields = writer.desired.fields
    assert (fields["cpus"], fields["ram"], fields["osinfo"], fields["consoleClient"]) == (
        0, "0", None, "")
    for type_ in ("Running", "Booted", "ConsoleConnected", "VmopAgentConnected",
                  "UserLoggedIn"):
        assert _cond(writer, type_)[:2] == (False, "VmStopped"), type_
    assert [e.reason for e in writer.writer.events] == [
        "RunnerStarted", "VmStarted", "VmTerminating", "VmStopped"]
    assert not writer.writer.stop_spec  # not a guest power-off
