"""The four API calls the runner makes, over lightkube (imported here, and only here).

The Role the runner needs (contract §1) allows exactly these: ``vms`` get (the object's
generation, uid, status), ``vms/status`` patch (a JSON **merge** patch: lightkube's default,
strategic merge, is a 415 on custom resources), ``vms`` patch (the JSON patch of
``/spec/vm/state``), ``events.k8s.io`` ``events`` create. Never an update (PUT).

Every failure is a :class:`KubeProblem` with the HTTP status (0: no answer) and a message
naming what failed; the writer decides about retries.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx2
from lightkube import ApiError, AsyncClient, ConfigError, KubeConfig
from lightkube.generic_resource import create_namespaced_resource
from lightkube.types import PatchType

from vmrunner.kube.errors import KubeProblem
from vmrunner.kube.settings import KubeSettings

VirtualMachine = create_namespaced_resource(
    "vmoperator.jdrupes.org", "v1", "VirtualMachine", "vms")
EventV1 = create_namespaced_resource("events.k8s.io", "v1", "Event", "events")
FIELD_MANAGER = "vm-runner"


def _config(settings: KubeSettings) -> KubeConfig:
    if settings.mode == "kubeconfig":
        assert settings.kubeconfig is not None
        return KubeConfig.from_file(settings.kubeconfig)
    # the token is read from its file again on a 401: kubelet rotates it
    return KubeConfig.from_service_account(settings.service_account_dir)


class KubeApi:
    """The runner's client for one ``VirtualMachine``."""

    def __init__(self, settings: KubeSettings) -> None:
        self.settings = settings
        if not logging.getLogger().isEnabledFor(logging.DEBUG):
            # httpx2 logs every request at INFO: one line per status write is noise
            logging.getLogger("httpx2").setLevel(logging.WARNING)
        try:
            config = _config(settings)
            self._client = AsyncClient(
                config.get(context_name=settings.context) if settings.context else config,
                namespace=settings.namespace, field_manager=FIELD_MANAGER,
                timeout=httpx2.Timeout(settings.request_timeout), trust_env=False)
        except (ConfigError, OSError, KeyError, ValueError) as exc:
            raise KubeProblem("configuration", -1, f"{type(exc).__name__}: {exc}") from None

    async def _call(self, what: str, call: Any) -> Any:
        try:
            return await call
        except ApiError as exc:
            status = exc.status
            raise KubeProblem(what, int(status.code or 0),
                              f"{status.code} {status.reason}: {status.message}") from None
        except httpx2.TimeoutException:
            raise KubeProblem(what, 0, f"no answer within {self.settings.request_timeout:g} s"
                              ) from None
        except (httpx2.HTTPError, OSError) as exc:
            raise KubeProblem(what, 0, f"{type(exc).__name__}: {exc}") from None
        except ConfigError as exc:
            raise KubeProblem(what, -1, f"ConfigError: {exc}") from None

    async def get_vm(self) -> dict[str, Any]:
        """``GET`` the VirtualMachine (a plain dict)."""
        obj = await self._call("get VirtualMachine",
                               self._client.get(VirtualMachine, self.settings.vm_name))
        return dict(obj)

    async def patch_status(self, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch ``vms/status`` with ``patch`` (``{"status": ..., "metadata": ...}``);
        returns the patched object."""
        obj = await self._call("patch VirtualMachine status", self._client.patch(
            VirtualMachine.Status, self.settings.vm_name, patch, patch_type=PatchType.MERGE))
        return dict(obj)

    async def patch_spec(self, operations: list[dict[str, Any]]) -> None:
        """JSON-patch the VirtualMachine (``operations``: RFC 6902)."""
        await self._call("patch VirtualMachine spec", self._client.patch(
            VirtualMachine, self.settings.vm_name, operations, patch_type=PatchType.JSON))

    async def create_event(self, body: dict[str, Any]) -> None:
        """Create an ``events.k8s.io/v1`` Event."""
        await self._call("create Event", self._client.create(EventV1(**body)))

    async def close(self) -> None:
        """Close the connections."""
        await self._client.close()
