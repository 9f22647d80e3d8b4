"""``status.vmrunner.guest`` (our own status field, issue 16 item 2) on the real API server.

The KubeStatusWriter runs on the real bus and writes through the runner's kubeconfig to the
real apiextensions-apiserver with our CRD; the guest-agent events are scripted (what qemu-ga
says is tested with the real guest in tests/live/test_live_guest_facts.py). Proves the CRD
keeps the field (unknown status fields would be pruned), that a vanished fact is removed on
the server (the merge patch nulls it), that the contract's fields are untouched, and that
the field goes when the VM stops.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from vmrunner.components.base import BusComponent
from vmrunner.core import Start
from vmrunner.events import (
    GuestAgentConnected,
    OsInfo,
    RunnerStateChanged,
    RunState,
)
from vmrunner.events.guest_facts import (
    GuestAgentUnresponsive,
    GuestFacts,
    GuestFactsUpdated,
    GuestFilesystem,
    GuestUser,
    IpAddress,
    NetworkInterface,
)
from vmrunner.kube.component import KubeStatusWriter
from vmrunner.kube.settings import KubeSettings
from vmrunner.testing.apiserver import KubeApiServer

from .runner_support import VmHistory

NAME = "facts"
ETH0 = NetworkInterface(name="eth0", mac="52:54:00:ab:cd:01", addresses=(
    IpAddress(address="10.0.2.15", prefix=24, family="ipv4"),))
DATA = GuestFilesystem(mountpoint="/mnt/data", type="ext4", name="vda",
                       total_bytes=24116224, used_bytes=8402944)
BOOT = GuestFilesystem(mountpoint="/boot", type="ext2", name="vda1", total_bytes=100)


def _guest(status: dict[str, Any]) -> dict[str, Any] | None:
    vmrunner = status.get("vmrunner")
    return None if vmrunner is None else vmrunner.get("guest")


async def test_guest_facts_in_the_virtual_machine_status(kube_api: KubeApiServer,
                                                         tmp_path: Path) -> None:
    kube_api.create_vm(NAME)
    history = VmHistory(kube_api, NAME)
    settings = KubeSettings(mode="kubeconfig", vm_name=NAME, namespace="default",
                            kubeconfig=kube_api.kubeconfig, final_write_timeout=5)
    root = BusComponent(name="Root")
    root.attach(KubeStatusWriter(settings, tmp_path))
    try:
        await root.fire(Start())
        for old, new in ((RunState.INITIALIZING, RunState.STARTING),
                         (RunState.STARTING, RunState.BOOTING)):
            await root.fire(RunnerStateChanged(old=old, new=new, reason="r", message="m"))
        await root.fire(GuestAgentConnected())
        await root.fire(OsInfo(info={"id": "tg"}))
        await root.fire(GuestFactsUpdated(facts=GuestFacts(
            time=1796336295.014, interfaces=(ETH0,), filesystems=(BOOT, DATA),
            users=(GuestUser(name="alice", login_time=1796336292.0),))))
        status = (await history.until(lambda s: bool(_guest(s)) and "users" in _guest(s)
                                      ))["status"]
        assert _guest(status) == {
            "agent": "responsive", "factsTime": "2026-12-03T22:18:15Z",
            "interfaces": [{"name": "eth0", "mac": "52:54:00:ab:cd:01",
                            "addresses": [{"address": "10.0.2.15", "prefix": 24,
                                           "family": "ipv4"}]}],
            "users": [{"name": "alice", "loginTime": 1796336292.0}],
            "filesystems": [{"mountpoint": "/boot", "type": "ext2", "name": "vda1",
                             "totalBytes": 100},
                            {"mountpoint": "/mnt/data", "type": "ext4", "name": "vda",
                             "totalBytes": 24116224, "usedBytes": 8402944}]}
        assert status["osinfo"] == {"id": "tg"}  # the contract's fields are untouched

        # hung, and the users command went unsupported: gone on the server, not left stale
        await root.fire(GuestAgentUnresponsive(timeout=3))
        await root.fire(GuestFactsUpdated(facts=GuestFacts(
            time=1796336300.0, interfaces=(ETH0,), filesystems=(DATA,),
            unsupported=("guest-get-users",))))
        status = (await history.until(lambda s: (_guest(s) or {}).get("unsupported")
                                      is not None))["status"]
        guest = _guest(status)
        assert guest is not None and guest["agent"] == "unresponsive"
        assert "users" not in guest and guest["unsupported"] == ["guest-get-users"]
        assert [fs["mountpoint"] for fs in guest["filesystems"]] == ["/mnt/data"]
        assert kube_api.get_vm(NAME)["status"]["vmrunner"]["guest"] == guest

        await root.fire(RunnerStateChanged(old=RunState.BOOTING, new=RunState.STOPPED,
                                           reason="VmStopped", message="stopped"))
        status = (await history.until(lambda s: "vmrunner" not in s
                                      and s.get("cpus") == 0))["status"]
        assert "osinfo" not in status
    finally:
        history.close()
        await asyncio.wait_for(root.component_tree.tasks.shutdown(), 10)
