"""The API's bounds (issue 15, item 5): strict query values, the bearer scheme in any case,
idle and half-sent requests timed out, a connection cap per listener with the rest waiting in
the listen backlog, a probe storm served, a stream that falls behind ended with a marker, and
the accept loop surviving file-descriptor exhaustion.

FAKE: the ``VmPrepared`` event carries a stand-in launch plan (only ``paths.runtime_dir`` is
read by the server); sockets, HTTP, the bus and the kernel's descriptor limit are real.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio

from vmrunner.api.client import request
from vmrunner.api.eventlog import EventLog
from vmrunner.api.server import ApiServer
from vmrunner.components import BUS
from vmrunner.core import Component, Event, Stop, run
from vmrunner.events import VmPrepared


class Tick(Event[None]):
    """Something for the event stream."""


@dataclass
class Served:
    root: Component
    api: ApiServer
    sock: Path
    port: int


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest_asyncio.fixture
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Served]:
    options: dict[str, Any] = getattr(request, "param", {})
    port = _free_port()
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    root = Component(BUS, "Runner")
    log = EventLog(subscriber_queue=options.pop("subscriber_queue", 1024))
    api = root.attach(ApiServer(log=log, **options))
    api.config = api.config_model.model_validate(
        {"listen": f"127.0.0.1:{port}", "tokenFile": str(token)})
    task = asyncio.ensure_future(run(root))
    plan: Any = SimpleNamespace(paths=SimpleNamespace(runtime_dir=tmp_path))  # FAKE
    await root.fire(VmPrepared(plan=plan))
    try:
        yield Served(root, api, tmp_path / "api.sock", port)
    finally:
        root.fire(Stop())
        await asyncio.wait_for(task, 10)


async def _raw(sock: Path, data: bytes) -> bytes:
    reader, writer = await asyncio.open_unix_connection(str(sock))
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def test_query_values_are_parsed_strictly(served: Served) -> None:
    for target in ("/events?since=%C2%B2", "/events?since=-1", "/events?since=1e3",
                   "/events?since=1&since=2", "/events?sinse=1", "/status?x=1"):
        status, body = await request(served.sock, "GET", target)
        assert status == 400, target
        assert "error" in json.loads(body)
    assert (await request(served.sock, "GET", "/live"))[0] == 200  # the API still serves


@pytest.mark.parametrize("scheme", [b"Bearer", b"bearer", b"BEARER"])
async def test_bearer_scheme_in_any_case(served: Served, scheme: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(b"GET /live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 b"Authorization: " + scheme + b" s3cret\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 "), answer


@pytest.mark.parametrize("served", [{"request_timeout": 0.5}], indirect=True)
async def test_idle_and_half_sent_requests_time_out(served: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)  # says nothing
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
    writer.close()
    half = await _raw(served.sock, b"GET /status HTTP/1.1\r\nHost: x\r\n")  # no blank line
    assert half.startswith(b"HTTP/1.1 408 "), half
    # keep-alive: the clock starts again after each answer
    reader, writer = await asyncio.open_unix_connection(str(served.sock))
    writer.write(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readuntil(b"}\n"), 5)).startswith(b"HTTP/1.1 200")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


@pytest.mark.parametrize("served", [{"max_connections": 4, "request_timeout": 30}],
                         indirect=True)
async def test_connection_cap_queues_the_rest(served: Served) -> None:
    idle = [await asyncio.open_unix_connection(str(served.sock)) for _ in range(4)]
    waiting = asyncio.ensure_future(request(served.sock, "GET", "/live"))
    await asyncio.sleep(0.5)
    assert not waiting.done()  # in the backlog, not served, not refused
    idle[0][1].close()  # one slot frees
    status, _ = await asyncio.wait_for(waiting, 5)
    assert status == 200
    for _, writer in idle[1:]:
        writer.close()


async def test_probe_storm_is_served(served: Served) -> None:
    results = await asyncio.gather(*(request(served.sock, "GET", "/live") for _ in range(500)),
                                   return_exceptions=True)
    assert [r for r in results if isinstance(r, BaseException) or r[0] != 200] == []


@pytest.mark.parametrize("served", [{"subscriber_queue": 8, "request_timeout": 30}],
                         indirect=True)
async def test_a_stream_that_falls_behind_ends_with_a_marker(served: Served) -> None:
    reader, writer = await asyncio.open_unix_connection(str(served.sock))
    writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    for _ in range(20_000):  # ~2 MB of records while the client reads nothing
        served.root.fire(Tick())
    await asyncio.sleep(0.5)
    body = await asyncio.wait_for(reader.read(), 10)  # now read: the stream has an end
    writer.close()
    records = [json.loads(line) for line in body.split(b"\r\n") if line.startswith(b"{")]
    assert records[-1]["event"] == "StreamDropped", records[-3:]
    assert body.endswith(b"0\r\n\r\n")  # chunked encoding's last chunk


async def test_accept_survives_descriptor_exhaustion(
        served: Served, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "vmrunner.api.server")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    clients: list[socket.socket] = []
    try:
        in_use = len(os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 8, hard))
        with contextlib.suppress(OSError):
            for _ in range(16):  # each accepted connection costs the server one more fd
                client = socket.socket(socket.AF_UNIX)
                clients.append(client)
                client.connect(str(served.sock))
                await asyncio.sleep(0.05)
        await asyncio.sleep(1)
        assert "cannot accept connections" in caplog.text
    finally:
        for client in clients:
            client.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert (await asyncio.wait_for(request(served.sock, "GET", "/live"), 5))[0] == 200
    assert caplog.text.count("cannot accept connections") == 1  # once, not per retry
    assert "accepting connections again" in caplog.text
