"""What the end-to-end Kubernetes tests share: a real runner (``vmrunner run --kubeconfig``)
on the test guest against the real API server, and a watch that keeps every status seen."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vmrunner.testing.apiserver import AuditEvent, KubeApiServer
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.kubeclient import WatchEvent
from vmrunner.testing.runnerproc import RunnerProcess, guest_config

VM = "tg"
BOOT = 90.0
STEP = 30.0
ROLE = {("get", "vms", ""), ("list", "vms", ""), ("patch", "vms", ""),
        ("patch", "vms", "status"), ("create", "events", "")}
"""The contract's Role: (verb, resource, subresource) the runner may use."""


def has_spice() -> bool:
    probe = subprocess.run(["qemu-system-x86_64", "-spice", "help"], capture_output=True,
                           check=False)
    return b"spice options" in probe.stdout + probe.stderr


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    """The condition ``type_`` of ``status`` (``{}`` if absent)."""
    return next((c for c in status.get("conditions") or () if c.get("type") == type_), {})


def cond(status: dict[str, Any], type_: str) -> tuple[str | None, str | None]:
    """``(status, reason)`` of condition ``type_``."""
    found = condition(status, type_)
    return found.get("status"), found.get("reason")


class VmHistory:
    """Every version of the VirtualMachine a watch delivered, in order (a thread reads the
    watch; :meth:`until` waits without blocking the event loop)."""

    def __init__(self, api: KubeApiServer, name: str = VM) -> None:
        self.api = api
        self.name = name
        self.seen: list[tuple[float, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = False
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        version: str | None = None
        while not self._stop:
            try:
                with self.api.watch_vms(resource_version=version, timeout=30) as watch:
                    while not self._stop:
                        try:
                            event: WatchEvent = watch.next(0.2)
                        except TimeoutError:
                            continue
                        obj = event.object
                        version = obj.get("metadata", {}).get("resourceVersion", version)
                        if obj.get("metadata", {}).get("name") == self.name:
                            with self._changed:
                                self.seen.append((event.received, obj))
                                self._changed.notify_all()
            except Exception:  # the server is down, restarting, or dropped the watch (a CRD
                # update does): watch again from the current state
                version = None
                time.sleep(0.2)

    def statuses(self) -> list[dict[str, Any]]:
        with self._lock:
            return [obj.get("status") or {} for _t, obj in self.seen]

    @property
    def last(self) -> dict[str, Any]:
        with self._lock:
            return self.seen[-1][1] if self.seen else {}

    def _wait(self, predicate: Callable[[dict[str, Any]], bool], timeout: float,
              start: int) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        index = start
        with self._changed:
            while True:
                while index < len(self.seen):
                    received, obj = self.seen[index]
                    index += 1
                    if predicate(obj.get("status") or {}):
                        return received, obj
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no status as wanted within {timeout} s; last status: "
                        f"{(self.seen[-1][1].get('status') if self.seen else None)}")
                self._changed.wait(left)

    async def until(self, predicate: Callable[[dict[str, Any]], bool],
                    timeout: float = STEP, *, since: int = 0) -> dict[str, Any]:  # noqa: ASYNC109
        """The first version (from index ``since``) whose status satisfies ``predicate``."""
        return (await self.until_timed(predicate, timeout, since=since))[1]

    async def until_timed(self, predicate: Callable[[dict[str, Any]], bool],
                          timeout: float = STEP, *,  # noqa: ASYNC109
                          since: int = 0) -> tuple[float, dict[str, Any]]:
        """Like :meth:`until`, with the ``time.monotonic()`` the version arrived."""
        return await asyncio.to_thread(self._wait, predicate, timeout, since)

    def mark(self) -> int:
        with self._lock:
            return len(self.seen)

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=10)


def kube_runner(base: Path, image: GuestImage, api: KubeApiServer, *, accel: str,
                kubeconfig: Path | None = None, runner: dict[str, Any] | None = None,
                **vm: Any) -> RunnerProcess:
    """A runner for the test guest that writes to ``api`` through its kubeconfig (the CLI's
    ``--kubeconfig``, as a developer runs it out of cluster)."""
    config = guest_config(base, image, accel=accel, name=VM, runner=runner, **vm)
    return RunnerProcess(config, args=(
        "--kubeconfig", str(kubeconfig or api.kubeconfig), "--kube-namespace", "default"))


def runner_requests(api: KubeApiServer) -> list[AuditEvent]:
    """The requests the runner made (its client certificate's user is ``vmrunner``)."""
    return api.audit("vmrunner")


def assert_role_only(api: KubeApiServer) -> None:
    """The runner used only what the contract's Role allows, and never an update (PUT)."""
    requests = runner_requests(api)
    assert requests, "the runner made no request"
    used = {(r.verb, r.resource, r.subresource) for r in requests}
    assert used <= ROLE, f"outside the Role: {used - ROLE}"
    assert not [r for r in requests if r.verb == "update"]


def manager_status(api: KubeApiServer, **fields: Any) -> None:
    """Write status fields as the manager would (merge patch)."""
    response = api.patch_vm(VM, {"status": fields}, status=True)
    assert response.status == 200, response


skip_without_spice = pytest.mark.skipif(not has_spice(), reason="this QEMU has no SPICE")


def with_access_webhook(factory: Any, workdir_name: str = "webhook"
                        ) -> tuple[KubeApiServer, Any]:
    """A real API server whose token authentication and authorization are delegated to a
    fake :class:`~.access_webhook.AccessWebhook` (instead of a dead address)."""
    from .access_webhook import AccessWebhook

    api: KubeApiServer = factory(start=False)
    webhook = AccessWebhook(api.ca, api.workdir / workdir_name)
    # the delegation kubeconfig of the test bed (authentication, authorization): the webhook
    api.delegation_kubeconfig = webhook.kubeconfig
    api.start_apiserver()
    return api, webhook
