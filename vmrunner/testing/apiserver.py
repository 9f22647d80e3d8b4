"""A real Kubernetes API server for tests: etcd + ``apiextensions-apiserver`` on loopback.

Usage: ``bash scripts/k8s-apiserver.sh`` builds (once, cached) the two binaries;
:func:`find_binaries` finds them (``VMRUNNER_K8S_BIN`` or the cache). In a test, take the
``kube_api`` fixture of ``tests/k8s/conftest.py`` (a started :class:`KubeApiServer` with the
VirtualMachine and Events CRDs established; ``kube_api_factory(start=False)`` gives one whose
API is down until :meth:`KubeApiServer.start_apiserver`). Point the runner at
``api.kubeconfig`` (user ``vmrunner``, group ``system:masters``; namespace ``default``); the
tests' own calls use user ``test-bed``, so :meth:`KubeApiServer.audit` filtered by
``user="vmrunner"`` lists exactly the runner's requests (verb, resource, subresource, code).
``create_vm``/``get_vm``/``delete_vm``/``patch_vm_status`` work on ``vms`` in
``vmoperator.jdrupes.org/v1``; ``watch_vms()`` is a context manager whose events carry their
``time.monotonic()`` arrival (for latency). Faults: ``stop()``/``kill()`` then
``start_apiserver()`` (or ``restart()``) bring the API down and back on the SAME port with the
same etcd data; ``pause()``/``resume()`` (SIGSTOP/SIGCONT) make it accept connections but answer
nothing. All calls are blocking; from async code use ``asyncio.to_thread``.

What the server is (and is not): the real API machinery for CRDs and custom resources (status
subresource, patch types, schema validation with 422, watch, audit); no core group (no Pods,
core Events, Namespaces), no RBAC (``system:masters`` is allowed everything), no aggregated
discovery. Details: docs/design/testing.md, "The Kubernetes test bed".
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import yaml

from vmrunner.testing.kubecerts import (
    KeyPair,
    make_ca,
    make_client_cert,
    make_server_cert,
    write_kubeconfig,
)
from vmrunner.testing.kubeclient import MERGE_PATCH, ApiError, KubeClient, Response, Watch

REPO = Path(__file__).resolve().parents[2]
VM_CRD = REPO / "deploy" / "crd" / "vmoperator-virtualmachine.yaml"
EVENTS_CRD = REPO / "tests" / "data" / "k8s" / "events-crd.yaml"
VM_GROUP_PATH = "/apis/vmoperator.jdrupes.org/v1"
EVENTS_GROUP_PATH = "/apis/events.k8s.io/v1"
BINARIES = ("apiextensions-apiserver", "etcd")
# admission plugins that need the core informers this server does not have
DISABLED_ADMISSION = ("NamespaceLifecycle", "MutatingAdmissionWebhook",
                      "ValidatingAdmissionWebhook", "ValidatingAdmissionPolicy",
                      "MutatingAdmissionPolicy")
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
"""


def default_cache_dir() -> Path:
    return Path(os.environ.get("VMRUNNER_K8S_CACHE",
                               Path.home() / ".cache" / "vmrunner" / "k8s"))


def find_binaries() -> Path | None:
    """The directory with etcd and apiextensions-apiserver: ``VMRUNNER_K8S_BIN`` if set, else
    the newest build that ``scripts/k8s-apiserver.sh`` recorded in the cache; None if absent."""
    def complete(d: Path) -> bool:
        return all(os.access(d / b, os.X_OK) for b in BINARIES)

    if env := os.environ.get("VMRUNNER_K8S_BIN"):
        return Path(env) if complete(Path(env)) else None
    cache = default_cache_dir()
    pointers = sorted(cache.glob("current-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for pointer in pointers:
        d = cache / pointer.read_text().strip()
        if complete(d):
            return d
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class AuditEvent:
    """One request as the server's audit log (level Metadata, stage ResponseComplete) saw it."""

    verb: str
    resource: str
    subresource: str
    namespace: str
    name: str
    user: str
    code: int
    uri: str


class KubeApiServer:
    """etcd and apiextensions-apiserver in ``workdir``, on free loopback ports.

    Invariants: the API port never changes (restarts reuse it, so the kubeconfig stays
    valid); etcd keeps running across API restarts, so data survives them; :meth:`close`
    ends both processes (resuming a paused one first).
    """

    def __init__(self, bin_dir: Path, workdir: Path,
                 crds: Sequence[Path] = (VM_CRD, EVENTS_CRD)) -> None:
        self.bin_dir = bin_dir
        self.workdir = workdir
        self.crds = tuple(crds)
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self._etcd_port = free_port()
        self._etcd_peer_port = free_port()
        self._etcd: subprocess.Popen[bytes] | None = None
        self._api: subprocess.Popen[bytes] | None = None
        self._logs: list[IO[bytes]] = []
        self._paused = False
        self._crds_created = False
        certs = workdir / "pki"
        certs.mkdir(parents=True, exist_ok=True)
        self.ca = make_ca(certs)
        self._server = make_server_cert(self.ca, certs)
        self.runner_cert = make_client_cert(self.ca, certs, "vmrunner")
        self._test_cert = make_client_cert(self.ca, certs, "test-bed")
        self.kubeconfig = write_kubeconfig(workdir / "kubeconfig", self.url, self.ca.cert,
                                           self.runner_cert)
        self.delegation_kubeconfig = write_kubeconfig(
            workdir / "dead.kubeconfig", f"https://127.0.0.1:{free_port()}", self.ca.cert)
        """Where the API server delegates token authentication and authorization (read at
        each :meth:`start_apiserver`): a dead address by default, never contacted for the
        test bed's and the runner's certificates (``system:masters``); a test may point it
        at a webhook of its own before starting the server."""
        self.audit_log = workdir / "audit.log"
        self._audit_policy = workdir / "audit-policy.yaml"
        self._audit_policy.write_text(AUDIT_POLICY)
        self.client = KubeClient(self.port, self.ca.cert, self._test_cert.cert,
                                 self._test_cert.key)

    # -- processes ---------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        self._logs.append(log)
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=self.workdir)

    def start(self, *, apiserver: bool = True, timeout: float = 60.0) -> KubeApiServer:
        """Start etcd and (unless ``apiserver`` is False) the API server with the CRDs; if
        that fails, both processes are ended before the error propagates (no orphans)."""
        try:
            return self._start(apiserver, timeout)
        except BaseException:
            self.close()
            raise

    def _start(self, apiserver: bool, timeout: float) -> KubeApiServer:
        if self._etcd is None:
            peer = f"http://127.0.0.1:{self._etcd_peer_port}"
            client = f"http://127.0.0.1:{self._etcd_port}"
            self._etcd = self._spawn("etcd", [
                str(self.bin_dir / "etcd"), "--data-dir", str(self.workdir / "etcd"),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"default={peer}", "--unsafe-no-fsync",
                "--log-level", "warn"])
        if apiserver:
            self.start_apiserver(timeout=timeout)
        return self

    def start_apiserver(self, timeout: float = 60.0) -> None:
        """Start the API server on its port; wait until it serves and the CRDs are
        established (created on the first start only: etcd keeps them)."""
        if self._api is not None and self._api.poll() is None:
            raise RuntimeError("the API server is already running")
        delegation = str(self.delegation_kubeconfig)
        self._api = self._spawn("apiserver", [
            str(self.bin_dir / "apiextensions-apiserver"),
            "--etcd-servers", f"http://127.0.0.1:{self._etcd_port}",
            "--bind-address", "127.0.0.1", "--secure-port", str(self.port),
            "--tls-cert-file", str(self._server.cert),
            "--tls-private-key-file", str(self._server.key),
            "--client-ca-file", str(self.ca.cert), "--authentication-skip-lookup",
            "--authentication-kubeconfig", delegation,
            "--authorization-kubeconfig", delegation,
            "--kubeconfig", delegation,
            "--disable-admission-plugins", ",".join(DISABLED_ADMISSION),
            "--audit-log-path", str(self.audit_log),
            "--audit-policy-file", str(self._audit_policy)])
        self._wait_serving(timeout)
        for crd in self.crds:
            if self._crds_created:
                # after a restart the custom resource paths answer 404 until the server has
                # loaded the CRDs (a moment after it serves): wait for them
                self._wait_crd_serving(yaml.safe_load(crd.read_text()), timeout)
            else:
                self.apply_crd(crd, timeout)
        if not self._crds_created and self.crds:
            self._warm_up(yaml.safe_load(self.crds[0].read_text()))
        self._crds_created = True

    def _warm_up(self, crd: dict[str, Any]) -> None:
        """Absorb the fresh server's first-write delay (measured: the first create after the
        first start answers only ~2 s after the CRDs appear; later ones take ~10 ms) with a
        dry-run create, so that tests time the runner and not this warm-up."""
        spec = crd["spec"]
        version = spec["versions"][0]["name"]
        ns = "namespaces/default/" if spec["scope"] == "Namespaced" else ""
        body = {"apiVersion": f"{spec['group']}/{version}", "kind": spec["names"]["kind"],
                "metadata": {"name": "warm-up"}}
        path = f"/apis/{spec['group']}/{version}/{ns}{spec['names']['plural']}"
        self.client.request("POST", path, body, query={"dryRun": "All"})

    def _wait_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            api = self._api
            assert api is not None
            if api.poll() is not None:
                raise RuntimeError(f"apiextensions-apiserver exited with {api.returncode}; "
                                   f"see {self.workdir / 'apiserver.log'}")
            with contextlib.suppress(OSError):
                if self.client.request("GET", "/apis/apiextensions.k8s.io/v1",
                                       timeout=2).status == 200:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the API server did not serve within {timeout} s")
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the API server gracefully (SIGTERM). etcd keeps running; the port is unused
        (connections are refused) until :meth:`start_apiserver` binds it again."""
        self._end_api(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """Kill the API server (SIGKILL): connections drop without an answer."""
        self._end_api(signal.SIGKILL, 10.0)

    def restart(self, timeout: float = 60.0) -> None:
        self.stop()
        self.start_apiserver(timeout)

    def _end_api(self, sig: signal.Signals, timeout: float) -> None:
        api = self._api
        if api is None or api.poll() is not None:
            return
        api.send_signal(sig)
        if self._paused:
            self.resume()
        try:
            api.wait(timeout)
        except subprocess.TimeoutExpired:
            api.kill()
            api.wait()

    def pause(self) -> None:
        """SIGSTOP the API server: the kernel still accepts connections, nothing answers."""
        if self._api is None or self._api.poll() is not None:
            raise RuntimeError("the API server is not running")
        self._api.send_signal(signal.SIGSTOP)
        self._paused = True
        _wait_stopped(self._api.pid)

    def resume(self) -> None:
        if self._api is not None and self._paused:
            self._api.send_signal(signal.SIGCONT)
        self._paused = False

    @property
    def running(self) -> bool:
        return self._api is not None and self._api.poll() is None

    def close(self) -> None:
        self._end_api(signal.SIGTERM, 30.0)
        if self._etcd is not None and self._etcd.poll() is None:
            self._etcd.terminate()
            try:
                self._etcd.wait(30)
            except subprocess.TimeoutExpired:
                self._etcd.kill()
                self._etcd.wait()
        for log in self._logs:
            log.close()
        self._logs.clear()

    def __enter__(self) -> KubeApiServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- clients -----------------------------------------------------------------------------

    def client_for(self, user: str, groups: tuple[str, ...] = ("system:masters",)
                   ) -> tuple[KubeClient, Path]:
        """A client and a kubeconfig for another identity (e.g. one not in system:masters)."""
        pair: KeyPair = make_client_cert(self.ca, self.workdir / "pki", user, groups)
        config = write_kubeconfig(self.workdir / f"{user}.kubeconfig", self.url,
                                  self.ca.cert, pair)
        return KubeClient(self.port, self.ca.cert, pair.cert, pair.key), config

    def apply_crd(self, path: Path, timeout: float = 30.0) -> dict[str, Any]:
        """Create the CRD in ``path`` (an existing one is kept) and wait for Established."""
        crd = yaml.safe_load(path.read_text())
        base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        resp = self.client.request("POST", base, crd)
        if resp.status not in (201, 409):
            raise ApiError("POST", base, resp.status, resp.body)
        name = crd["metadata"]["name"]
        deadline = time.monotonic() + timeout
        while True:
            current: dict[str, Any] = self.client.call("GET", f"{base}/{name}")
            conditions = (current.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                self._wait_crd_serving(crd, max(0.0, deadline - time.monotonic()))
                return current
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not established within {timeout} s")
            time.sleep(0.02)

    def _wait_crd_serving(self, crd: dict[str, Any], timeout: float) -> None:
        """Wait until the CRD's collection path answers 200 (it may lag Established)."""
        spec = crd["spec"]
        path = f"/apis/{spec['group']}/{spec['versions'][0]['name']}/{spec['names']['plural']}"
        deadline = time.monotonic() + timeout
        while self.client.request("GET", path).status != 200:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} not served within {timeout} s")
            time.sleep(0.02)

    # -- VirtualMachines ---------------------------------------------------------------------

    @staticmethod
    def vm_path(namespace: str = "default", name: str | None = None) -> str:
        path = f"{VM_GROUP_PATH}/namespaces/{namespace}/vms"
        return path if name is None else f"{path}/{urllib.parse.quote(name)}"

    def create_vm(self, name: str, spec: dict[str, Any] | None = None,
                  namespace: str = "default") -> dict[str, Any]:
        body = {"apiVersion": "vmoperator.jdrupes.org/v1", "kind": "VirtualMachine",
                "metadata": {"name": name, "namespace": namespace},
                "spec": spec if spec is not None else {"vm": {"state": "Running"}}}
        result: dict[str, Any] = self.client.call("POST", self.vm_path(namespace), body)
        return result

    def get_vm(self, name: str, namespace: str = "default") -> dict[str, Any]:
        result: dict[str, Any] = self.client.call("GET", self.vm_path(namespace, name))
        return result

    def delete_vm(self, name: str, namespace: str = "default") -> None:
        self.client.call("DELETE", self.vm_path(namespace, name))

    def patch_vm(self, name: str, patch: Any, *, status: bool = False,
                 content_type: str = MERGE_PATCH, namespace: str = "default") -> Response:
        """PATCH the VM (or its ``/status``); the answer whatever its code."""
        path = self.vm_path(namespace, name) + ("/status" if status else "")
        return self.client.request("PATCH", path, patch, content_type=content_type)

    def watch_vms(self, namespace: str = "default", resource_version: str | None = None,
                  timeout: float = 300.0) -> Watch:
        return self.client.watch(self.vm_path(namespace), resource_version, timeout)

    def events(self, namespace: str = "default") -> list[dict[str, Any]]:
        """The ``events.k8s.io/v1`` Events in ``namespace`` (served by the stand-in CRD)."""
        body = self.client.call("GET", f"{EVENTS_GROUP_PATH}/namespaces/{namespace}/events")
        items: list[dict[str, Any]] = body["items"]
        return items

    # -- audit -------------------------------------------------------------------------------

    def audit(self, user: str | None = None) -> list[AuditEvent]:
        """Every completed request so far, in order (``user``: only that user's)."""
        events: list[AuditEvent] = []
        for line in _read_lines(self.audit_log):
            entry = json.loads(line)
            if entry.get("stage") != "ResponseComplete":
                continue
            who = entry.get("user", {}).get("username", "")
            if user is not None and who != user:
                continue
            ref = entry.get("objectRef", {})
            events.append(AuditEvent(
                verb=entry.get("verb", ""), resource=ref.get("resource", ""),
                subresource=ref.get("subresource", ""), namespace=ref.get("namespace", ""),
                name=ref.get("name", ""), user=who,
                code=int(entry.get("responseStatus", {}).get("code", 0)),
                uri=entry.get("requestURI", "")))
        return events


def _read_lines(path: Path) -> Iterator[str]:
    with contextlib.suppress(FileNotFoundError), path.open() as f:
        for line in f:
            if line.strip():
                yield line


def _wait_stopped(pid: int, timeout: float = 10.0) -> None:
    """Return once every thread of ``pid`` is stopped (a SIGSTOP is delivered asynchronously:
    under load a thread could still answer one request after ``kill`` returned)."""
    deadline = time.monotonic() + timeout
    tasks = Path(f"/proc/{pid}/task")
    while time.monotonic() < deadline:
        states = []
        for task in tasks.iterdir():
            with contextlib.suppress(OSError):
                stat = (task / "stat").read_text()
                states.append(stat[stat.rindex(")") + 2])
        if states and all(state in "tT" for state in states):
            return
        time.sleep(0.01)
    raise RuntimeError(f"the API server (pid {pid}) did not stop within {timeout:g} s")

