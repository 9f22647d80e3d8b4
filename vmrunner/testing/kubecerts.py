"""Certificates and kubeconfig files for the test API server, made with the ``openssl`` CLI.

One CA signs the server's serving certificate (``127.0.0.1`` and ``localhost``) and every
client certificate, so one ``ca.crt`` verifies both directions. The API server maps a client
certificate to user = CN and groups = O entries; ``system:masters`` is allowed everything.
"""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

_DAYS = "3650"


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def _new_key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", str(path))
    path.chmod(0o600)


def make_ca(directory: Path) -> KeyPair:
    """A self-signed CA in ``directory`` (ca.crt, ca.key)."""
    ca = KeyPair(directory / "ca.crt", directory / "ca.key")
    _new_key(ca.key)
    _openssl("req", "-x509", "-new", "-key", str(ca.key), "-out", str(ca.cert), "-days", _DAYS,
             "-subj", "/CN=vmrunner-test-ca",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return ca


def _sign(ca: KeyPair, out: KeyPair, subject: str, extensions: str) -> KeyPair:
    _new_key(out.key)
    csr = out.cert.with_suffix(".csr")
    ext = out.cert.with_suffix(".ext")
    ext.write_text(extensions)
    _openssl("req", "-new", "-key", str(out.key), "-out", str(csr), "-subj", subject)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
             "-CAcreateserial", "-days", _DAYS, "-extfile", str(ext), "-out", str(out.cert))
    csr.unlink()
    ext.unlink()
    return out


def make_server_cert(ca: KeyPair, directory: Path) -> KeyPair:
    """The serving certificate for ``https://127.0.0.1`` (and ``localhost``)."""
    return _sign(ca, KeyPair(directory / "server.crt", directory / "server.key"),
                 "/CN=localhost",
                 "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                 "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")


def make_client_cert(ca: KeyPair, directory: Path, user: str,
                     groups: tuple[str, ...] = ("system:masters",)) -> KeyPair:
    """A client certificate for ``user`` (CN) in ``groups`` (O entries), as ``<user>.crt``."""
    subject = "".join(f"/O={g}" for g in groups) + f"/CN={user}"
    return _sign(ca, KeyPair(directory / f"{user}.crt", directory / f"{user}.key"), subject,
                 "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                 "extendedKeyUsage=clientAuth\n")


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, server: str, ca: Path, client: KeyPair | None = None,
                     namespace: str = "default") -> Path:
    """A self-contained kubeconfig (certificates embedded) for ``server``; no user
    credentials when ``client`` is None."""
    user: dict[str, str] = {}
    if client is not None:
        user = {"client-certificate-data": _b64(client.cert),
                "client-key-data": _b64(client.key)}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {
            "server": server, "certificate-authority-data": _b64(ca)}}],
        "users": [{"name": "test", "user": user}],
        "contexts": [{"name": "test", "context": {
            "cluster": "test", "user": "test", "namespace": namespace}}],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path
