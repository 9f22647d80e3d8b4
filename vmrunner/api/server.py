"""ApiServer (``/Runner/Api``): the per-runner HTTP API, HTTP/1.1 through h11.

Listens on ``runtimeDir/api.sock`` (mode 0600, in the 0700 runtime directory) once the VM is
prepared, and optionally on a TCP ``listen`` address where every request needs
``Authorization: Bearer <token from tokenFile>`` (a ``tokenFile`` others may read is a
warning naming ``/Runner/Api/tokenFile``: :mod:`vmrunner.config.secret_files`). Routes:

* ``GET /status``: the components' answers to a ``StatusQuery`` as JSON
  (:mod:`vmrunner.api.status`);
* ``GET /events[?since=SEQ]``: JSON lines (:mod:`vmrunner.api.serialize`), kept open; with
  ``since`` the kept events after that ``seq`` come first (``since=0``: all kept); a client
  too slow to keep up gets a last ``{"event": "StreamDropped", ...}`` line and the end of the
  stream;
* ``POST /powerdown``: fires ``TerminationSignal(SIGTERM)``, the same path as a TERM;
* ``POST /reset``: fires ``ResetRequested`` and answers with its ``ResetChange`` (200 when
  applied, 409 otherwise);
* ``POST /qmp`` with ``{"execute": NAME, "arguments": {...}}``: a raw QMP command for
  debugging, recorded as ``RawQmpRequested`` and logged at WARNING, executed as an
  ``ExecuteQmp`` (the runner's monitor stays the only QMP client); answers
  ``{"return": ...}`` or ``{"error": ...}``;
* ``POST /pause``, ``/resume``, ``/resize-disk``, ``/fsfreeze``, ``/fsthaw``,
  ``/screenshot``: day-2 operations (:mod:`vmrunner.api.day2`);
* ``POST /guest/refresh``: asks the guest agent for the guest's facts now and answers with
  the status document's ``guest`` (409 when no agent is connected);
* ``GET /metrics``: Prometheus text (:mod:`vmrunner.api.metrics`);
* ``GET /console/tail[?bytes=N]``: the last N bytes (default: all) of the serial output the
  runner keeps in memory (``SerialConsoleTail``), as they came; 404 when it keeps none;
* ``GET /live`` (200 while the runner serves) and ``GET /ready`` (200 while the VM runs and
  QEMU has not paused it, else 503), for probes.

Bounds (a hostile or broken client costs a bounded share and never stops the API): at most
``max_connections`` connections per listener (more wait in the listen backlog, sized for a
probe storm); a request must arrive complete within ``request_timeout`` seconds of the
connection or of the previous answer (else 408, or a plain close when nothing came); a
stream write that cannot complete within ``request_timeout`` drops the client; query strings
are parsed strictly (400 for an unknown parameter or a ``since`` that is not ASCII digits);
running out of file descriptors pauses accepting, logged once until accepting works again.

h11 and prometheus-client are imported on the first request. Every task (accept loops and
connections) is owned by this component and ends with ``Stopped``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import json
import logging
import os
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from vmrunner.components.base import BusComponent
from vmrunner.config.secret_files import secret_file_problem
from vmrunner.core import Channel, Configurable, Stopped, handler
from vmrunner.core.config.validation import Validated
from vmrunner.events import (
    ExecuteQmp,
    RawQmpRequested,
    ResetRequested,
    RunnerStateChanged,
    RunState,
    TerminationSignal,
    VmPrepared,
)
from vmrunner.events.guest_facts import RefreshGuestFacts
from vmrunner.events.serial import SerialConsoleTail
from vmrunner.protocols.qmp.commands import RawCommand

from . import day2
from .config import ApiConfig, split_listen
from .eventlog import EventLog
from .serialize import to_json
from .status import Status, ask, guest_document

if TYPE_CHECKING:
    import h11

_log = logging.getLogger(__name__)

SOCKET_NAME = "api.sock"
MAX_BODY = 64 * 1024
READ_SIZE = 65536
JSON = "application/json"
STREAM_DRAIN = 1.0
"""Seconds the end of the run waits for event streams to send their last records."""
MAX_CONNECTIONS = 128
"""Connections served at once per listener; more wait in the listen backlog."""
TAIL_ALL = 1 << 40
"""``GET /console/tail`` without ``bytes``: everything kept."""
REQUEST_TIMEOUT = 10.0
"""Seconds a client has to send a whole request (and a stream to take a write)."""
LISTEN_BACKLOG = socket.SOMAXCONN
ACCEPT_RETRY = 0.5
"""Seconds between accept attempts while the process is out of file descriptors."""
TIMED_OUT = (b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n"
             b"Connection: close\r\n\r\n")
QUERY_KEYS = {"/events": {"since"}, "/console/tail": {"bytes"}}
"""The query parameters each route takes; any other is a 400."""


class ApiServer(Configurable[ApiConfig], BusComponent):
    """Serves the API (see the module docstring); its child :attr:`log` keeps the event
    stream, the recent errors and the counters."""

    config_model = ApiConfig

    def __init__(self, channel: Channel | None = None, name: str | None = "Api", *,
                 log: EventLog | None = None, max_connections: int = MAX_CONNECTIONS,
                 request_timeout: float = REQUEST_TIMEOUT) -> None:
        super().__init__(channel, name)
        self.log = self.attach(EventLog() if log is None else log)
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self.socket_path: Path | None = None
        self._listeners: list[socket.socket] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._streams: set[asyncio.Future[None]] = set()
        """Done when the stream of a ``GET /events`` ends."""
        self._token: bytes | None = None

    def validate_config(self, path: str, section: dict[str, Any],
                        context: dict[str, Any] | None) -> Validated[Any]:
        """The model's validation, and a warning when ``tokenFile`` is not private
        (:mod:`vmrunner.config.secret_files`)."""
        outcome = super().validate_config(path, section, context)
        config = outcome.config
        if isinstance(config, ApiConfig) and config.token_file is not None:
            problem = secret_file_problem(config.token_file)
            if problem is not None:
                return Validated(config, outcome.errors,
                                 (*outcome.warnings, f"{path}/tokenFile: {problem}"))
        return outcome

    def on_config(self, config: ApiConfig, initial: bool) -> None:
        """Listening addresses are taken at the start; later changes need a restart."""
        if not initial and self._listeners:
            _log.warning("/Runner/Api changed: takes effect when the runner is started again")

    # -- listening --------------------------------------------------------------------------

    @handler
    def on_prepared(self, event: VmPrepared) -> None:
        config = self.config or ApiConfig()
        if not config.enabled or self._listeners:
            return
        path = event.plan.paths.runtime_dir / SOCKET_NAME
        try:
            with contextlib.suppress(FileNotFoundError):
                if path.is_socket():
                    path.unlink()
            unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            unix.bind(str(path))
            os.chmod(path, 0o600)
            self._listen(unix, local=True)
            self.socket_path = path
            _log.info("API on %s", path)
        except OSError as exc:
            _log.error("API: cannot listen on %s: %s", path, exc)
        if config.listen is not None and config.token_file is not None:
            self._listen_tcp(config.listen, config.token_file)

    def _listen_tcp(self, listen: str, token_file: Path) -> None:
        try:
            token = token_file.read_text().strip()
            if not token:
                raise OSError("the file is empty")
            host, port = split_listen(listen)
            tcp = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host
                                       else socket.AF_INET)
        except (OSError, ValueError) as exc:
            _log.error("/Runner/Api: no TCP listener on %s: %s", listen, exc)
            return
        self._token = token.encode()
        self._listen(tcp, local=False)
        _log.info("API on tcp %s (bearer token required)", listen)

    def _listen(self, sock: socket.socket, *, local: bool) -> None:
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
        self._listeners.append(sock)
        self._own(self._accept(sock, local), "api-accept")

    def _own(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = self.spawn(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, sock: socket.socket, local: bool) -> None:
        """Accepts while fewer than ``max_connections`` of this listener's are open; out of
        file descriptors (EMFILE/ENFILE/ENOBUFS/ENOMEM), waits and tries again."""
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(self.max_connections)
        starved = False
        while True:
            await slots.acquire()
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as exc:
                slots.release()
                if exc.errno not in _OUT_OF_RESOURCES:
                    raise
                if not starved:
                    _log.error("API: cannot accept connections (%s); retrying every %s s",
                               exc.strerror, ACCEPT_RETRY)
                    starved = True
                await asyncio.sleep(ACCEPT_RETRY)
                continue
            if starved:
                _log.warning("API: accepting connections again")
                starved = False
            task = self.spawn(self._serve(conn, local), name="api-connection")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(lambda _: slots.release())

    @handler(priority=-1000)
    async def on_state(self, event: RunnerStateChanged) -> None:
        """STOPPED is the last record: streams end with it (given up to a second)."""
        if event.new is not RunState.STOPPED:
            return
        self.log.close_streams()
        if self._streams:
            await asyncio.wait(set(self._streams), timeout=STREAM_DRAIN)

    @handler
    def on_stopped(self, event: Stopped) -> None:
        for sock in self._listeners:
            sock.close()
        self._listeners.clear()
        for task in list(self._tasks):
            if task.get_name() == "api-accept":
                task.cancel()
        if self.socket_path is not None:
            with contextlib.suppress(OSError):
                self.socket_path.unlink()

    # -- one connection ---------------------------------------------------------------------

    async def _serve(self, conn: socket.socket, local: bool) -> None:
        import h11

        if local:
            reader, writer = await asyncio.open_unix_connection(sock=conn)
        else:
            reader, writer = await asyncio.open_connection(sock=conn)
        http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_BODY)
        try:
            while True:
                received = await self._read_request(http, reader, writer)
                if received is None:
                    break
                request, body = received
                await self._respond(http, request, body, local, reader, writer)
                if http.our_state is not h11.DONE or http.their_state is not h11.DONE:
                    break
                http.start_next_cycle()
        except (ConnectionError, h11.LocalProtocolError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_request(self, http: h11.Connection, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> tuple[h11.Request, bytes] | None:
        """The next whole request with its body, or None (connection to be closed); a
        client that takes longer than ``request_timeout`` gets a 408 if it had begun one."""
        import h11

        try:
            async with asyncio.timeout(self.request_timeout):
                return await self._receive_request(http, reader, writer)
        except TimeoutError:
            begun = http.their_state is h11.SEND_BODY or bool(http.trailing_data[0])
            if begun and http.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                writer.write(TIMED_OUT)  # raw: h11 has no request to answer yet
                with contextlib.suppress(ConnectionError, TimeoutError):
                    await asyncio.wait_for(writer.drain(), 1)
            return None

    async def _receive_request(self, http: h11.Connection, reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter) -> tuple[h11.Request, bytes] | None:
        import h11

        request: h11.Request | None = None
        body = bytearray()
        while True:
            try:
                event = http.next_event()
            except h11.RemoteProtocolError as exc:
                if http.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await self._send(http, writer, exc.error_status_hint,
                                     {"error": str(exc)})
                return None
            if event is h11.NEED_DATA:
                data = await reader.read(READ_SIZE)
                http.receive_data(data)
                if not data and http.their_state is not h11.DONE:
                    return None
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    await self._send(http, writer, 413, {"error": "body too large"})
                    return None
            elif isinstance(event, h11.EndOfMessage):
                return None if request is None else (request, bytes(body))
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None

    def _authorized(self, request: h11.Request) -> bool:
        if self._token is None:
            return False
        for name, value in request.headers:
            scheme, _, credentials = value.partition(b" ")
            if name == b"authorization" and scheme.lower() == b"bearer":  # RFC 7235: any case
                return hmac.compare_digest(credentials.strip(), self._token)
        return False

    async def _respond(self, http: h11.Connection, request: h11.Request, body: bytes,
                       local: bool, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        method = request.method.decode()
        url = urlsplit(request.target.decode("ascii", "replace"))
        if not local and not self._authorized(request):
            await self._send(http, writer, 401, {"error": "bearer token required"},
                             [(b"WWW-Authenticate", b"Bearer")])
            return
        routes = {"/status": "GET", "/events": "GET", "/metrics": "GET", "/powerdown": "POST",
                  "/live": "GET", "/ready": "GET", "/reset": "POST", "/qmp": "POST",
                  "/console/tail": "GET", "/guest/refresh": "POST",
                  **day2.ROUTES}
        if url.path not in routes:
            await self._send(http, writer, 404, {"error": f"no such resource: {url.path}"})
            return
        if method != routes[url.path]:
            await self._send(http, writer, 405, {"error": f"use {routes[url.path]}"},
                             [(b"Allow", routes[url.path].encode())])
            return
        try:
            query = _strict_query(url.query, QUERY_KEYS.get(url.path, set()))
        except ValueError as exc:
            await self._send(http, writer, 400, {"error": str(exc)})
            return
        if url.path == "/events":
            since = query.get("since")
            if since is not None and not (since.isascii() and since.isdigit()):
                await self._send(http, writer, 400,
                                 {"error": f"since={since!r}: not a non-negative integer"})
                return
            await self._stream(http, reader, writer, None if since is None else int(since))
            return
        if url.path == "/reset":
            change = await self.call(ResetRequested())
            outcome, detail = ("failed", "nobody handled the reset") if change is None else (
                change.outcome.value, change.detail)
            await self._send(http, writer, 200 if outcome == "applied" else 409,
                             {"outcome": outcome, "detail": detail})
            return
        if url.path in day2.ROUTES:
            code, content_type, data = await day2.answer(self, url.path, body)
            await self._send_bytes(http, writer, code, data, content_type)
            return
        if url.path == "/console/tail":
            await self._console_tail(http, writer, query.get("bytes"))
            return
        if url.path == "/qmp":
            code, reply = await self._raw_qmp(body)
            await self._send(http, writer, code, reply)
            return
        if url.path == "/guest/refresh":
            code, guest = await self._refresh_guest()
            await self._send(http, writer, code, guest)
            return
        status = await self.status()
        if url.path == "/status":
            await self._send(http, writer, 200, status.document())
        elif url.path == "/metrics":
            from .metrics import CONTENT_TYPE, render

            await self._send_bytes(http, writer, 200, render(status), CONTENT_TYPE)
        elif url.path == "/powerdown":
            _log.info("API: powerdown requested")
            self.fire(TerminationSignal(signal=int(signal.SIGTERM)))
            await self._send(http, writer, 202, {"accepted": True, "state": status.state.value})
        elif url.path == "/live":
            await self._send(http, writer, 200, {"state": status.state.value})
        else:
            ready = status.ready
            answer: dict[str, Any] = {"state": status.state.value, "ready": ready}
            if status.pause.paused:
                answer["paused"] = status.pause.reason
            await self._send(http, writer, 200 if ready else 503, answer)

    async def _console_tail(self, http: h11.Connection, writer: asyncio.StreamWriter,
                            size: str | None) -> None:
        """``GET /console/tail``: the kept serial output (see the module docstring)."""
        if size is not None and not (size.isascii() and size.isdigit()):
            await self._send(http, writer, 400,
                             {"error": f"bytes={size!r}: not a non-negative integer"})
            return
        tails = await self.call_all(SerialConsoleTail(size=TAIL_ALL if size is None
                                                      else int(size)))
        if not tails:
            await self._send(http, writer, 404, {"error": "this runner keeps no serial console"})
            return
        await self._send_bytes(http, writer, 200, tails[0], "application/octet-stream")

    async def _refresh_guest(self) -> tuple[int, dict[str, Any]]:
        """``POST /guest/refresh``: (HTTP status, the status document's ``guest`` after asking
        the agent); 409 when no agent is connected (the last facts still come along)."""
        facts = await self.call(RefreshGuestFacts())
        answer = guest_document((await self.status()).guest)
        if facts is None:
            return 409, {"error": "the guest agent is not connected", **answer}
        return 200, answer

    async def _raw_qmp(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """``POST /qmp``: (HTTP status, answer); 400 for a body that is no QMP command."""
        try:
            command = json.loads(body)
        except ValueError as exc:
            return 400, {"error": f"the body is not JSON: {exc}"}
        if not isinstance(command, dict) or not isinstance(command.get("execute"), str):
            return 400, {"error": 'expected {"execute": "NAME", "arguments": {...}}'}
        arguments = command.get("arguments", {})
        unknown = set(command) - {"execute", "arguments"}
        if not isinstance(arguments, dict) or unknown:
            return 400, {"error": "only the keys 'execute' and 'arguments' (an object) are "
                                  f"taken{f', not {sorted(unknown)}' if unknown else ''}"}
        name: str = command["execute"]
        # logged like the event stream shows it: values of secret-named keys masked
        _log.warning("raw QMP command from the API: %s", json.dumps(to_json(command)))
        self.fire(RawQmpRequested(command=name, arguments=arguments))
        reply = await self.call(ExecuteQmp(command=RawCommand(command=name, args=arguments)))
        if reply is None:
            return 503, {"error": "no QMP monitor answered (is QEMU running?)"}
        if reply.error is not None:
            return 200, {"error": str(reply.error)}
        return 200, {"return": to_json(reply.value)}

    async def status(self) -> Status:
        """Asks the components (``StatusQuery``, from a connection task, never a handler)."""
        return Status(await ask(self), self.log)

    async def _stream(self, http: h11.Connection, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter, since: int | None) -> None:
        import h11

        sub = self.log.subscribe(since)
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._streams.add(ended)
        writer.write(http.send(h11.Response(status_code=200, headers=[
            (b"Content-Type", b"application/x-ndjson"), (b"Cache-Control", b"no-store")])) or b"")
        await writer.drain()
        gone = asyncio.ensure_future(reader.read(1))  # the client hung up (or misbehaves)
        try:
            while True:
                if sub.queue.empty():
                    getter = asyncio.ensure_future(sub.queue.get())
                    await asyncio.wait({getter, gone}, return_when=asyncio.FIRST_COMPLETED)
                    if not getter.done():
                        getter.cancel()
                        return
                    record = getter.result()
                else:
                    record = sub.queue.get_nowait()
                if record is None:
                    break
                await self._write_line(http, writer, record)
                if sub.dropped and sub.queue.empty():
                    _log.warning("API: an event stream fell %d events behind and was ended",
                                 sub.queue.maxsize)
                    await self._write_line(http, writer, {
                        "event": "StreamDropped", "seq": self.log.seq,
                        "reason": f"the client fell {sub.queue.maxsize} events behind"})
                    break
            writer.write(http.send(h11.EndOfMessage()) or b"")
            await asyncio.wait_for(writer.drain(), self.request_timeout)
        except TimeoutError:
            writer.transport.abort()  # a client that does not read: dropped, fd freed
        finally:
            gone.cancel()
            self.log.unsubscribe(sub)
            self._streams.discard(ended)
            ended.set_result(None)

    async def _write_line(self, http: h11.Connection, writer: asyncio.StreamWriter,
                          record: dict[str, Any]) -> None:
        import h11

        line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        writer.write(http.send(h11.Data(data=line)) or b"")
        await asyncio.wait_for(writer.drain(), self.request_timeout)

    async def _send(self, http: h11.Connection, writer: asyncio.StreamWriter, status: int,
                    body: dict[str, Any],
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:
        data = json.dumps(body, indent=1).encode() + b"\n"
        await self._send_bytes(http, writer, status, data, JSON, headers)

    async def _send_bytes(self, http: h11.Connection, writer: asyncio.StreamWriter,
                          status: int, data: bytes, content_type: str,
                          headers: list[tuple[bytes, bytes]] | None = None) -> None:
        import h11

        head = [(b"Content-Type", content_type.encode()),
                (b"Content-Length", str(len(data)).encode()), *(headers or [])]
        writer.write(http.send(h11.Response(status_code=status, headers=head)) or b"")
        writer.write(http.send(h11.Data(data=data)) or b"")
        writer.write(http.send(h11.EndOfMessage()) or b"")
        await writer.drain()


_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def _strict_query(query: str, allowed: set[str]) -> dict[str, str]:
    """``query`` as a dict; ValueError for a parameter not in ``allowed``, one given twice, or
    a malformed pair."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query),
                          max_num_fields=len(allowed) or 1)
    except ValueError as exc:
        raise ValueError(f"bad query string: {exc}") from None
    result: dict[str, str] = {}
    for key, value in pairs:
        if key not in allowed:
            raise ValueError(f"unknown query parameter {key!r}")
        if key in result:
            raise ValueError(f"query parameter {key!r} given twice")
        result[key] = value
    return result
