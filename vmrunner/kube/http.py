"""JSON over HTTPS to the API server: h11 on an asyncio TLS stream, one kept-alive connection.

Why not a Kubernetes client library: measured on the runner (docs/guide/kubernetes.md), lightkube
1.0 with httpx2 adds 13.6 MiB of RSS (its HTTP stack imports anyio, h2, attrs, ctypes, and
builds TLS contexts with the system's CA store), the budget is 8 MiB. The runner needs four
calls; h11 (already the status API's HTTP parser) and the standard library's ``ssl`` do them.

Every call is bounded by ``timeout`` seconds (connecting included); any failure to get an
answer is a :class:`KubeProblem` with status 0 and drops the connection, an answer that is
not 2xx one with its HTTP status and the server's ``Status`` message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import h11

from vmrunner.kube.credentials import Endpoint
from vmrunner.kube.errors import KubeProblem

USER_AGENT = "vmrunner (vm-runner)"
MAX_BODY = 16 * 1024 * 1024
"""The largest answer accepted (a VirtualMachine is a few KiB)."""


class JsonClient:
    """Requests to one API server (not concurrent: the writer task is its only user)."""

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._conn: h11.Connection | None = None

    async def request(self, what: str, method: str, path: str, body: Any = None, *,
                      content_type: str = "application/json") -> Any:
        """Send ``body`` (JSON) and return the decoded answer; a refused token is read
        again from its file and the request repeated once."""
        status, answer = await self._bounded(what, method, path, body, content_type)
        if status == 401 and self.endpoint.token_file is not None:
            self.endpoint.read_token()
            status, answer = await self._bounded(what, method, path, body, content_type)
        if 200 <= status < 300:
            return answer
        if isinstance(answer, dict) and answer.get("kind") == "Status":
            message = f"{status} {answer.get('reason', '')}: {answer.get('message', '')}"
        else:
            message = f"HTTP {status}"
        raise KubeProblem(what, status, message)

    async def _bounded(self, what: str, method: str, path: str, body: Any,
                       content_type: str) -> tuple[int, Any]:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._exchange(method, path, body, content_type)
        except TimeoutError:
            await self.close()
            raise KubeProblem(what, 0, f"no answer within {self.timeout:g} s") from None
        except (OSError, EOFError, h11.ProtocolError, ValueError) as exc:
            await self.close()
            text = str(exc) or type(exc).__name__
            raise KubeProblem(what, 0, f"{type(exc).__name__}: {text}") from None

    async def _connect(self) -> None:
        endpoint = self.endpoint
        self._reader, self._writer = await asyncio.open_connection(
            endpoint.host, endpoint.port, ssl=endpoint.context, server_hostname=endpoint.host)
        self._conn = h11.Connection(our_role=h11.CLIENT)

    async def _exchange(self, method: str, path: str, body: Any,
                        content_type: str) -> tuple[int, Any]:
        if self._conn is None or self._conn.our_state is not h11.IDLE:
            await self.close()
            await self._connect()
        conn, reader, writer = self._conn, self._reader, self._writer
        assert conn is not None and reader is not None and writer is not None
        data = b"" if body is None else json.dumps(body).encode()
        host = self.endpoint.host if ":" not in self.endpoint.host \
            else f"[{self.endpoint.host}]"
        headers = [("Host", f"{host}:{self.endpoint.port}"), ("User-Agent", USER_AGENT),
                   ("Accept", "application/json"), ("Content-Length", str(len(data)))]
        if body is not None:
            headers.append(("Content-Type", content_type))
        token = self.endpoint.token
        if token:
            headers.append(("Authorization", f"Bearer {token}"))
        target = self.endpoint.prefix + path
        writer.write(conn.send(h11.Request(method=method, target=target, headers=headers)))
        if data:
            writer.write(conn.send(h11.Data(data=data)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()
        status = 0
        chunks: list[bytes] = []
        size = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                received = await reader.read(65536)
                conn.receive_data(received)
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_BODY:
                    raise ValueError(f"an answer larger than {MAX_BODY} bytes")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise EOFError("the server closed the connection")
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        else:
            await self.close()
        raw = b"".join(chunks)
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    async def close(self) -> None:
        """Drop the connection (the next request opens a new one)."""
        writer, self._writer, self._reader, self._conn = self._writer, None, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
