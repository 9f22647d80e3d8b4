"""The four API calls the runner makes (imported only by the writer's task).

The Role the runner needs (contract §1) allows exactly these: ``vms`` get (the object's
generation, uid, status), ``vms/status`` patch (a JSON **merge** patch), ``vms`` patch (the
JSON patch of ``/spec/vm/state``), ``events.k8s.io`` ``events`` create. Never an update
(PUT). Every failure is a :class:`~vmrunner.kube.errors.KubeProblem`.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

from vmrunner.kube.credentials import from_kubeconfig, in_cluster
from vmrunner.kube.errors import KubeProblem
from vmrunner.kube.http import JsonClient
from vmrunner.kube.settings import KubeSettings

VM_PATH = "/apis/vmoperator.jdrupes.org/v1/namespaces/{namespace}/vms/{name}"
EVENTS_PATH = "/apis/events.k8s.io/v1/namespaces/{namespace}/events"
FIELD_MANAGER = "vm-runner"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class KubeApi:
    """The runner's client for one ``VirtualMachine``.

    :raise KubeProblem: (status -1) the credentials cannot be loaded.
    """

    def __init__(self, settings: KubeSettings) -> None:
        self.settings = settings
        if settings.mode == "kubeconfig":
            assert settings.kubeconfig is not None
            endpoint = from_kubeconfig(settings.kubeconfig, settings.context)
        else:
            endpoint = in_cluster(settings.service_account_dir, os.environ)
        self._client = JsonClient(endpoint, settings.request_timeout)
        quote = urllib.parse.quote
        self._vm = VM_PATH.format(namespace=quote(settings.namespace),
                                  name=quote(settings.vm_name))
        self._events = EVENTS_PATH.format(namespace=quote(settings.namespace))
        self._manager = f"?fieldManager={FIELD_MANAGER}"

    async def get_vm(self) -> dict[str, Any]:
        """``GET`` the VirtualMachine."""
        return _object(await self._client.request("get VirtualMachine", "GET", self._vm))

    async def patch_status(self, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch ``vms/status`` with ``patch`` (``{"status": ..., "metadata": ...}``);
        returns the patched object."""
        return _object(await self._client.request(
            "patch VirtualMachine status", "PATCH", f"{self._vm}/status{self._manager}",
            patch, content_type=MERGE_PATCH))

    async def patch_spec(self, operations: list[dict[str, Any]]) -> None:
        """JSON-patch the VirtualMachine (``operations``: RFC 6902)."""
        await self._client.request("patch VirtualMachine spec", "PATCH",
                                   self._vm + self._manager, operations,
                                   content_type=JSON_PATCH)

    async def create_event(self, body: dict[str, Any]) -> None:
        """Create an ``events.k8s.io/v1`` Event."""
        await self._client.request("create Event", "POST", self._events + self._manager,
                                   body)

    async def close(self) -> None:
        """Close the connection."""
        await self._client.close()


def _object(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise KubeProblem("read the answer", 0, f"not a JSON object: {str(answer)[:200]}")
    return answer
