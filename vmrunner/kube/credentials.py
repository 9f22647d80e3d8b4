"""Where the API server is and how to prove who we are: the pod's service account, or a
kubeconfig (client certificate, token or token file; no exec plugins).

An :class:`Endpoint` holds the server's address, a TLS context (the cluster's CA, the client
certificate if any) and the bearer token's source. A token file is read again whenever the
server refuses the token (kubelet rotates the service account's projected token).
"""

from __future__ import annotations

import base64
import contextlib
import os
import ssl
import tempfile
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import yaml

from vmrunner.kube.errors import KubeProblem


class Endpoint(msgspec.Struct, kw_only=True):
    """An API server and our credentials for it."""

    host: str
    port: int
    prefix: str
    """Path prefix of the server URL (usually empty)."""
    context: ssl.SSLContext
    token: str | None = None
    token_file: Path | None = None

    def read_token(self) -> str | None:
        """The bearer token (from the file, read now, if there is one)."""
        if self.token_file is not None:
            try:
                self.token = self.token_file.read_text().strip()
            except OSError as exc:
                raise KubeProblem("read the token", -1, f"{self.token_file}: {exc}") from None
        return self.token


def in_cluster(service_account_dir: Path, environ: Mapping[str, str]) -> Endpoint:
    """The pod's service account: ``token`` and ``ca.crt`` in ``service_account_dir``,
    the server in ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT``."""
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port.isdigit():
        raise KubeProblem("configuration", -1,
                          "KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set")
    try:
        context = ssl.create_default_context(cafile=str(service_account_dir / "ca.crt"))
    except (OSError, ssl.SSLError) as exc:
        raise KubeProblem("configuration", -1, f"{service_account_dir}/ca.crt: {exc}") \
            from None
    endpoint = Endpoint(host=host, port=int(port), prefix="", context=context,
                        token_file=service_account_dir / "token")
    endpoint.read_token()
    return endpoint


def from_kubeconfig(path: Path, context_name: str | None = None) -> Endpoint:
    """The cluster and user of ``context_name`` (default: the current context) in the
    kubeconfig at ``path``."""
    try:
        document = yaml.safe_load(path.read_text())
        if not isinstance(document, dict):
            raise ValueError("not a mapping")
        wanted = context_name or document.get("current-context")
        context = _named(document, "contexts", wanted, "context")
        cluster = _named(document, "clusters", context.get("cluster"), "cluster")
        user = _named(document, "users", context.get("user"), "user", required=False)
        url = urllib.parse.urlsplit(str(cluster["server"]))
        if url.scheme != "https" or not url.hostname:
            raise ValueError(f"server {cluster['server']!r}: an https:// URL is needed")
        tls = _tls(path.parent, cluster, user)
        token_file = user.get("tokenFile")
        endpoint = Endpoint(host=url.hostname, port=url.port or 443,
                            prefix=url.path.rstrip("/"), context=tls,
                            token=user.get("token"),
                            token_file=None if token_file is None
                            else _path(path.parent, token_file))
        endpoint.read_token()
        return endpoint
    except KubeProblem:
        raise
    except (OSError, ValueError, KeyError, TypeError, ssl.SSLError, yaml.YAMLError) as exc:
        raise KubeProblem("configuration", -1,
                          f"kubeconfig {path}: {type(exc).__name__}: {exc}") from None


def _named(document: dict[str, Any], section: str, name: Any, key: str, *,
           required: bool = True) -> dict[str, Any]:
    for entry in document.get(section) or ():
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(key) or {}
            if isinstance(value, dict):
                return value
    if required:
        raise ValueError(f"no {section[:-1]} named {name!r}")
    return {}


def _path(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _tls(base: Path, cluster: dict[str, Any], user: dict[str, Any]) -> ssl.SSLContext:
    if "certificate-authority-data" in cluster:
        context = ssl.create_default_context(
            cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    elif "certificate-authority" in cluster:
        context = ssl.create_default_context(
            cafile=str(_path(base, cluster["certificate-authority"])))
    else:
        context = ssl.create_default_context()
    if cluster.get("insecure-skip-tls-verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    cert = _pem(base, user, "client-certificate")
    key = _pem(base, user, "client-key")
    if cert is not None:
        _load_chain(context, cert, key)
    return context


def _pem(base: Path, user: dict[str, Any], name: str) -> bytes | None:
    if f"{name}-data" in user:
        return base64.b64decode(user[f"{name}-data"])
    if name in user:
        return _path(base, user[name]).read_bytes()
    return None


def _load_chain(context: ssl.SSLContext, cert: bytes, key: bytes | None) -> None:
    """``ssl`` loads a client certificate only from files: private temporary ones, removed
    at once."""
    with tempfile.TemporaryDirectory(prefix="vmrunner-kube-") as directory:
        os.chmod(directory, 0o700)
        cert_path = Path(directory) / "client.crt"
        cert_path.write_bytes(cert)
        key_path = None
        if key is not None:
            key_path = Path(directory) / "client.key"
            with contextlib.suppress(FileNotFoundError):
                key_path.unlink()
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(key)
        context.load_cert_chain(str(cert_path), None if key_path is None else str(key_path))
