"""A plain-HTTPS Kubernetes client for tests (stdlib only): requests and watches.

Tests must not share code with the runner's own Kubernetes client, so this one knows only
what the test bed needs: a JSON request with a chosen content type, and a watch stream read
by a thread that the :class:`Watch` owns (joined by :meth:`Watch.close`).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import queue
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


class ApiError(Exception):
    """A non-2xx answer: ``status`` (HTTP code) and the server's ``body`` (a Status object)."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        message = body.get("message", "") if isinstance(body, dict) else str(body)
        super().__init__(f"{method} {path}: {status} {message}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Response:
    status: int
    body: Any


@dataclass(frozen=True)
class WatchEvent:
    """One watch event; ``received`` is ``time.monotonic()`` when its line arrived."""

    type: str
    object: dict[str, Any]
    received: float


class KubeClient:
    """HTTPS to ``127.0.0.1:port`` with a client certificate; one connection per request."""

    def __init__(self, port: int, ca: Path, cert: Path, key: Path) -> None:
        self.port = port
        self._ctx = ssl.create_default_context(cafile=str(ca))
        self._ctx.load_cert_chain(str(cert), str(key))

    def connect(self, timeout: float) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self._ctx,
                                           timeout=timeout)

    def request(self, method: str, path: str, body: Any = None, *,
                content_type: str = "application/json", timeout: float = 10.0,
                query: Mapping[str, str] | None = None) -> Response:
        """Send one request; any HTTP status is returned (connection errors raise)."""
        if query:
            path = f"{path}?{urllib.parse.urlencode(query)}"
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        conn = self.connect(timeout)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return Response(resp.status, parsed)

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        """Like :meth:`request`, but a non-2xx answer raises :class:`ApiError`."""
        resp = self.request(method, path, body, **kwargs)
        if not 200 <= resp.status < 300:
            raise ApiError(method, path, resp.status, resp.body)
        return resp.body

    def watch(self, path: str, resource_version: str | None = None,
              timeout: float = 300.0) -> Watch:
        """Watch the collection at ``path`` (from ``resource_version``, else from now)."""
        query = {"watch": "1", "timeoutSeconds": str(int(timeout))}
        if resource_version is not None:
            query["resourceVersion"] = resource_version
        return Watch(self, f"{path}?{urllib.parse.urlencode(query)}", timeout)


class Watch:
    """An open watch; events queue up as they arrive. Use as a context manager.

    Invariant: after :meth:`close` returns, the reader thread has ended.
    """

    def __init__(self, client: KubeClient, path: str, timeout: float) -> None:
        self._events: queue.Queue[WatchEvent | BaseException | None] = queue.Queue()
        self._conn = client.connect(timeout + 10)
        self._conn.request("GET", path, headers={"Accept": "application/json"})
        resp = self._conn.getresponse()
        if resp.status != 200:
            body = resp.read()
            self._conn.close()
            raise ApiError("GET", path, resp.status, body.decode(errors="replace"))
        self._resp = resp
        self._closed = False
        self._thread = threading.Thread(target=self._read, name="kube-watch", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while line := self._resp.readline():
                if line.strip():
                    event = json.loads(line)
                    self._events.put(WatchEvent(event["type"], event["object"],
                                                time.monotonic()))
        except Exception as exc:  # handed to the consumer: the reader never dies silently
            # after close() any error is the shutdown's doing (http.client even raises
            # AttributeError when its connection is shut down under a chunked read)
            if not self._closed:
                self._events.put(exc)
        self._events.put(None)

    def next(self, timeout: float = 10.0) -> WatchEvent:
        """The next event; ``TimeoutError`` if none within ``timeout``, ``EOFError`` when the
        stream ended."""
        try:
            item = self._events.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no watch event within {timeout} s") from None
        if item is None:
            self._events.put(None)
            raise EOFError("watch stream ended")
        if isinstance(item, BaseException):
            raise item
        return item

    def wait_for(self, predicate: Callable[[WatchEvent], bool],
                 timeout: float = 10.0) -> WatchEvent:
        """The first event satisfying ``predicate`` within ``timeout`` (others are dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(0.0, deadline - time.monotonic()))
            if predicate(event):
                return event

    def close(self) -> None:
        self._closed = True
        sock = self._conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=10)
        self._conn.close()  # only now: closing under the reader's feet breaks http.client

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
