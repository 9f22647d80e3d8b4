"""A **fake** token authenticator and RBAC authorizer for the real API server's delegation.

The test API server (``apiextensions-apiserver``) has no core group, so no ServiceAccounts,
no token authentication and no RBAC of its own: it delegates both to webhooks
(``--authentication-kubeconfig``/``--authorization-kubeconfig``). This module is that webhook,
a stand-in for a cluster's token reviewer and RBAC, because no real one can run here. The API
server itself stays real: it caches the answers, sends 401/403 and serves everything else.

* ``TokenReview``: a bearer token in :attr:`AccessWebhook.tokens` is user ``tokens[token]``;
  every other token is refused (the API server answers 401).
* ``SubjectAccessReview``: a request is allowed if its ``(verb, resource, subresource)`` is in
  the Role of its user (:attr:`AccessWebhook.roles`), else denied (the API server answers
  403). Users in ``system:masters`` never get here (the server allows them itself).
"""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from vmrunner.testing.kubecerts import KeyPair, make_server_cert, write_kubeconfig

Rule = tuple[str, str, str]
"""(verb, resource, subresource)."""


class AccessWebhook:
    """The fake reviewer on a free loopback port (HTTPS, certificate from the test CA)."""

    def __init__(self, ca: KeyPair, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.tokens: dict[str, str] = {}
        self.roles: dict[str, set[Rule]] = {}
        self.seen_tokens: list[str] = []
        self.denied: list[tuple[str, Rule]] = []
        self._lock = threading.Lock()
        cert = make_server_cert(ca, directory)
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                review = json.loads(self.rfile.read(length) or b"{}")
                answer = webhook.review(review)
                data = json.dumps(answer).encode()
                self.send_response(200 if answer else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert.cert), str(cert.key))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self.kubeconfig = write_kubeconfig(directory / "webhook.kubeconfig", self.url, ca.cert)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def review(self, review: dict[str, Any]) -> dict[str, Any]:
        """Answer a ``TokenReview`` or ``SubjectAccessReview`` (``{}``: not one)."""
        kind = review.get("kind")
        spec = review.get("spec") or {}
        with self._lock:
            if kind == "TokenReview":
                token = spec.get("token", "")
                self.seen_tokens.append(token)
                user = self.tokens.get(token)
                status: dict[str, Any] = ({"authenticated": True,
                                           "user": {"username": user, "groups": []}}
                                          if user else {"authenticated": False})
            elif kind == "SubjectAccessReview":
                attributes = spec.get("resourceAttributes") or {}
                rule = (attributes.get("verb", ""), attributes.get("resource", ""),
                        attributes.get("subresource", ""))
                allowed = rule in self.roles.get(spec.get("user", ""), set())
                if not allowed:
                    self.denied.append((spec.get("user", ""), rule))
                status = {"allowed": allowed}
            else:
                return {}
        return {"apiVersion": review.get("apiVersion"), "kind": kind, "status": status}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
