"""Where the Kubernetes API server and the ``VirtualMachine`` are: decided at build time.

Kubernetes mode is on when (in this order):

1. the ``/Runner/Kubernetes`` node (or the CLI's ``--kubeconfig``) names a kubeconfig: out of
   cluster, for development; the namespace is the node's ``namespace``, else the
   kubeconfig context's, else ``default``;
2. the runner is in a pod: ``<serviceAccountDir>/token`` and ``.../namespace`` exist and
   ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT`` are set; the namespace is the
   file's (the manager never writes it into the configuration).

``enabled: false`` switches it off in either case. The VM object's name is ``vmName``,
else ``/Runner/vm/name``. This module imports no client code (the stand-alone runner pays
nothing for Kubernetes support).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

KUBE_NODE = "/Runner/Kubernetes"
"""The configuration node of the Kubernetes settings (and the component's path)."""
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeNode(BaseModel):
    """The ``/Runner/Kubernetes`` node (every key optional)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True,
                              extra="forbid")

    enabled: bool = True
    """``false``: never write to Kubernetes, even in a pod."""
    kubeconfig: Path | None = None
    """A kubeconfig file (relative: to the configuration file's directory): use this API
    server and user instead of the pod's service account."""
    context: str | None = None
    """The kubeconfig context (default: its ``current-context``)."""
    namespace: str | None = None
    """The VM object's namespace (default: the service account's, or the context's)."""
    vm_name: str | None = None
    """The ``VirtualMachine``'s name (default: ``/Runner/vm/name``)."""
    service_account_dir: Path = SERVICE_ACCOUNT_DIR
    """Where the pod's token, CA and namespace files are."""
    request_timeout: float = Field(default=10.0, gt=0)
    """Seconds one API request may take before it counts as failed (and is retried)."""
    final_write_timeout: float = Field(default=3.0, ge=0)
    """Seconds the runner waits, after the VM has stopped, for the last status, Events and
    spec patch to be written before it exits (the shutdown ladder never waits for them)."""


class KubeSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Resolved: how to reach the API server and which ``VirtualMachine`` is ours."""

    mode: Literal["in-cluster", "kubeconfig"]
    vm_name: str
    namespace: str
    kubeconfig: Path | None = None
    context: str | None = None
    service_account_dir: Path = SERVICE_ACCOUNT_DIR
    request_timeout: float = 10.0
    final_write_timeout: float = 3.0

    def describe(self) -> str:
        """One line for the log: where the status goes."""
        where = ("the pod's service account" if self.mode == "in-cluster"
                 else f"kubeconfig {self.kubeconfig}"
                 + (f" (context {self.context})" if self.context else ""))
        return f"VirtualMachine {self.namespace}/{self.vm_name} through {where}"


class KubeSettingsError(Exception):
    """The Kubernetes settings are unusable; ``problems`` name each key path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_node(values: Mapping[str, Any] | None) -> KubeNode:
    """Validate the ``/Runner/Kubernetes`` node; errors name ``/Runner/Kubernetes/<key>``."""
    try:
        return KubeNode.model_validate(dict(values or {}))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            path = "/".join(str(part) for part in error["loc"])
            message = error["msg"]
            if error["type"] == "extra_forbidden":
                keys = [f.alias or n for n, f in KubeNode.model_fields.items()]
                close = difflib.get_close_matches(path, keys, n=1, cutoff=0.6)
                message = "unknown key" + (f" (did you mean '{close[0]}'?)" if close else "")
            problems.append(f"{KUBE_NODE}/{path}: {message}")
        raise KubeSettingsError(problems) from None


def in_cluster(service_account_dir: Path, environ: Mapping[str, str]) -> bool:
    """Whether this process runs in a pod with a service account."""
    return ((service_account_dir / "token").is_file()
            and (service_account_dir / "namespace").is_file()
            and bool(environ.get("KUBERNETES_SERVICE_HOST"))
            and bool(environ.get("KUBERNETES_SERVICE_PORT")))


def resolve(node: KubeNode, *, vm_name: str, base_dir: Path,
            environ: Mapping[str, str] | None = None) -> KubeSettings | None:
    """The settings for this runner, ``None`` when Kubernetes mode is off.

    :raise KubeSettingsError: the kubeconfig is missing, or the namespace file unreadable.
    """
    env = os.environ if environ is None else environ
    if not node.enabled:
        return None
    name = node.vm_name or vm_name
    common: dict[str, Any] = {"vm_name": name, "request_timeout": node.request_timeout,
                              "final_write_timeout": node.final_write_timeout,
                              "service_account_dir": node.service_account_dir}
    if node.kubeconfig is not None:
        path = node.kubeconfig if node.kubeconfig.is_absolute() else base_dir / node.kubeconfig
        if not path.is_file():
            raise KubeSettingsError([f"{KUBE_NODE}/kubeconfig: {path}: no such file"])
        namespace = node.namespace or _context_namespace(path, node.context) or "default"
        return KubeSettings(mode="kubeconfig", namespace=namespace, kubeconfig=path,
                            context=node.context, **common)
    if not in_cluster(node.service_account_dir, env):
        return None
    try:
        namespace = (node.service_account_dir / "namespace").read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KubeSettingsError([f"{KUBE_NODE}: cannot read the namespace file: {exc}"]) \
            from None
    return KubeSettings(mode="in-cluster", namespace=node.namespace or namespace, **common)


def _context_namespace(path: Path, context: str | None) -> str | None:
    """The namespace of ``context`` (default: the current one) in the kubeconfig, if any."""
    import yaml

    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # the client reports an unusable kubeconfig when it loads it
    if not isinstance(document, dict):
        return None
    wanted = context or document.get("current-context")
    for entry in document.get("contexts") or ():
        if isinstance(entry, dict) and entry.get("name") == wanted:
            namespace = (entry.get("context") or {}).get("namespace")
            return namespace if isinstance(namespace, str) else None
    return None
