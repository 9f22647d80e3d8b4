"""The client side: ``vmrunner status`` and ``vmrunner events``, over ``runtimeDir/api.sock``.

The socket is found like the runner finds its runtime directory
(:func:`vmrunner.vmtypes.state.resolve_paths` on the validated configuration).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TextIO

from vmrunner.components.exit_codes import ExitCode

from .guest_view import guest_lines
from .server import SOCKET_NAME

READ_SIZE = 65536


class ApiUnavailable(Exception):
    """No runner answers on the socket (not running, or no API)."""


def api_socket(config_file: Path, *, strict: bool = False) -> Path:
    """``runtimeDir/api.sock`` of the VM ``config_file`` describes.

    :raise ValueError: the configuration is invalid (the message lists the problems).
    """
    from vmrunner.config.validate import load_config
    from vmrunner.vmtypes.state import resolve_paths

    validation = load_config(config_file, strict=strict)
    if not validation.ok or validation.config is None:
        raise ValueError("\n".join(str(p) for p in validation.errors))
    return resolve_paths(validation.config).runtime_dir / SOCKET_NAME


async def _open(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.open_unix_connection(str(path))
    except OSError as exc:
        raise ApiUnavailable(f"no runner answers on {path}: {exc.strerror or exc}") from exc


async def _exchange(path: Path, method: str, target: str,
                    on_data: Callable[[bytes], None], body: bytes = b"") -> int:
    """Send one request (with ``body``); feed the answer's body to ``on_data`` as it
    arrives; return the status."""
    import h11

    reader, writer = await _open(path)
    http = h11.Connection(h11.CLIENT)
    try:
        writer.write(http.send(h11.Request(method=method, target=target, headers=[
            ("Host", "vmrunner"), ("Content-Length", str(len(body)))])) or b"")
        if body:
            writer.write(http.send(h11.Data(data=body)) or b"")
        writer.write(http.send(h11.EndOfMessage()) or b"")
        await writer.drain()
        status = 0
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                http.receive_data(await reader.read(READ_SIZE))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                on_data(bytes(event.data))
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return status
    except h11.RemoteProtocolError as exc:
        raise ApiUnavailable(f"bad answer from {path}: {exc}") from exc
    finally:
        writer.close()


async def request(path: Path, method: str, target: str,
                  body: bytes = b"") -> tuple[int, bytes]:
    """One request to the API at ``path``: (status, body)."""
    chunks: list[bytes] = []
    status = await _exchange(path, method, target, chunks.append, body)
    return status, b"".join(chunks)


async def get_json(path: Path, target: str) -> Any:
    """``GET target`` as JSON."""
    status, body = await request(path, "GET", target)
    if status != 200:
        raise ApiUnavailable(f"GET {target}: HTTP {status}: {body.decode(errors='replace')}")
    return json.loads(body)


async def follow(path: Path, since: int | None = None) -> AsyncIterator[dict[str, Any]]:
    """The records of ``GET /events`` as they come (ends when the runner stops)."""
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    buffer = bytearray()

    def on_data(data: bytes) -> None:
        buffer.extend(data)
        while b"\n" in buffer:
            line, _, rest = bytes(buffer).partition(b"\n")
            buffer[:] = rest
            if line.strip():
                queue.put_nowait(json.loads(line))

    target = "/events" if since is None else f"/events?since={since}"
    task = asyncio.ensure_future(_exchange(path, "GET", target, on_data))
    task.add_done_callback(lambda _t: queue.put_nowait(None))
    try:
        while (record := await queue.get()) is not None:
            yield record
        task.result()
    finally:
        task.cancel()


# -- formatting ----------------------------------------------------------------------------


def _size(value: int | None) -> str:
    return "?" if value is None else f"{value / 2**20:.0f} MiB"


def format_faults(doc: dict[str, Any], now: float) -> list[str]:
    """The status lines of guest panics and failed disk requests (none when there were
    none)."""
    lines = []
    panics = doc.get("panics") or {}
    last = panics.get("last")
    if panics.get("count") and last:
        lines.append(f"  PANICS:       {panics['count']}, last {max(0, now - last['time']):.0f} s "
                     f"ago (onPanic {panics.get('policy')}, {panics.get('resets', 0)} resets)")
    for error in doc.get("ioErrors") or []:
        cause = ("no space left on the host" if error["nospace"]
                 else error["reason"] or "I/O error")
        lines.append(f"  I/O ERRORS:   {error['drive']} {error['operation']}: {error['count']}"
                     f" ({cause}; QEMU's action: {error['action']})")
    return lines


def format_status(doc: dict[str, Any], now: float | None = None) -> str:
    """``GET /status`` as a readable summary."""
    now = time.time() if now is None else now
    lines = [f"VM {doc.get('vm')}: {doc['state']} for {max(0, now - doc['stateSince']):.0f} s"
             f" ({doc.get('stateReason', '')})"]
    if doc.get("qemuPid"):
        lines.append(f"  QEMU pid:     {doc['qemuPid']}")
    paused = doc.get("paused")
    if paused:
        by = "by the operator" if paused["reason"] == "requested" else \
            f"by QEMU ({paused['reason']})"
        lines.append(f"  PAUSED:       {by} for {max(0, now - paused['since']):.0f} s"
                     + (f": {paused['detail']}" if paused.get("detail")
                        and paused["reason"] != "requested" else ""))
    lines.extend(format_faults(doc, now))
    shutdown = doc["shutdown"]
    if shutdown.get("rung"):
        left = shutdown.get("remaining")
        lines.append(f"  shutdown:     {' → '.join(shutdown['rungs'])}"
                     + (f", {left:.0f} s left before the forced stop" if left is not None else "")
                     + (f" ({shutdown['detail']})" if shutdown.get("detail") else ""))
    ram = doc["ram"]
    lines.append(f"  RAM:          {_size(ram['requested'])} requested, "
                 f"{_size(ram['actual'])} actual, {_size(ram['maximum'])} maximum"
                 + (f" ({ram['outcome']})" if ram.get("outcome") else ""))
    cpus = doc["cpus"]
    present = "?" if cpus["present"] is None else cpus["present"]
    lines.append(f"  vCPUs:        {cpus['requested']} requested, {present} present, "
                 f"{cpus['maximum']} maximum"
                 + (f" ({cpus['outcome']})" if cpus.get("outcome") else ""))
    for cd in doc["cdroms"]:
        text = (f"  {cd['drive'] + ':':<13} {cd['medium'] or 'empty'}, tray "
                f"{'open' if cd['trayOpen'] else 'closed'}")
        if cd.get("pending") is not None:
            since = cd.get("pendingSince")
            waited = f" for {now - since:.0f} s" if since else ""
            text += f"; change to {cd['pending']} pending{waited} (the guest holds the tray)"
        lines.append(text)
    agent = doc["guestAgent"]
    info = agent.get("osInfo") or {}
    os_name = info.get("pretty-name") or info.get("name") or info.get("id")
    lines.append(f"  guest agent:  {'connected' if agent['connected'] else 'not connected'}"
                 + (f", {os_name}" if os_name else "")
                 + (f" (kernel {info['kernel-release']})" if info.get("kernel-release") else ""))
    lines.extend(guest_lines(doc.get("guest"), now))
    console = doc.get("console") or {}
    sessions = len(console.get("clients") or [])
    lines.append(f"  console:      {console.get('client') or 'nobody'}"
                 + (f" ({sessions} SPICE sessions)" if sessions > 1 else ""))
    serial = doc.get("serialConsole") or {}
    if serial.get("connected") or serial.get("bytesSeen"):
        who = (f"pid {serial['clientPid']} attached" if serial.get("clientPid")
               else "nobody attached")
        lines.append(f"  serial:       {serial.get('bytesSeen', 0)} bytes, {who}"
                     + (f", log {serial['logFile']}" if serial.get("logFile") else ""))
    vmop = doc.get("vmopAgent") or {}
    login = (f"logged in: {vmop['loggedInUser']}" if vmop.get("loggedInUser")
             else "nobody logged in")
    wanted = vmop.get("wantedUser")
    if wanted != vmop.get("loggedInUser"):
        login += f" (wanted: {wanted or 'logged out'})"
    agent_state = "connected" if vmop.get("connected") else "not connected"
    lines.append(f"  auto-login:   agent {agent_state}, {login}"
                 + (f"; last error: {vmop['lastError']}" if vmop.get("lastError") else ""))
    config = doc["config"]
    lines.append(f"  config:       generation {config['generation']}, "
                 f"{config['rejections']} rejected")
    plan = config.get("lastPlan")
    if plan:
        for entry in plan.get("entries", []):
            lines.append(f"    plan {plan['generation']}: {entry['path']}: {entry['klass']}")
    if config.get("restartPending"):
        lines.append(f"    restart needed for: {', '.join(config['restartPending'])}")
    if doc["errors"]:
        lines.append("  recent errors:")
        for error in doc["errors"][-5:]:
            stamp = time.strftime("%H:%M:%S", time.localtime(error["time"]))
            lines.append(f"    {stamp} {error['message']}")
    return "\n".join(lines)


def format_event(record: dict[str, Any]) -> str:
    """One event record as a line: ``time seq type {data}``."""
    stamp = time.strftime("%H:%M:%S", time.localtime(record["time"]))
    frac = f"{record['time'] % 1:.3f}"[1:]
    data = json.dumps(record["data"], separators=(",", ":"))
    return f"{stamp}{frac} {record['seq']:>5} {record['type']} {data}"


# -- the subcommands -------------------------------------------------------------------------


def socket_or_report(config_file: Path, strict: bool, err: TextIO) -> Path | None:
    """The API socket of the VM ``config_file`` configures, or None after printing why
    there is none (an invalid configuration) to ``err``."""
    try:
        return api_socket(config_file, strict=strict)
    except ValueError as exc:
        print(exc, file=err)
        return None


def status_main(config_file: Path, *, as_json: bool = False, strict: bool = False,
                refresh: bool = False, out: TextIO = sys.stdout,
                err: TextIO = sys.stderr) -> int:
    """``vmrunner status``: 0, 2 for a bad configuration, 1 when no runner answers.
    ``refresh``: ask the guest agent for the guest's facts first (``POST /guest/refresh``;
    without a connected agent a note on ``err``, and the last facts are shown)."""
    path = socket_or_report(config_file, strict, err)
    if path is None:
        return ExitCode.CONFIG_ERROR

    async def ask() -> Any:
        if refresh:
            code, body = await request(path, "POST", "/guest/refresh")
            if code != 200:
                print(f"vmrunner status: guest facts not refreshed: HTTP {code}: "
                      f"{json.loads(body).get('error', '') if body else ''}", file=err)
        return await get_json(path, "/status")

    try:
        doc = asyncio.run(ask())
    except ApiUnavailable as exc:
        print(f"vmrunner status: {exc}", file=err)
        return ExitCode.INTERNAL_ERROR
    print(json.dumps(doc, indent=2) if as_json else format_status(doc), file=out)
    return ExitCode.OK


def probe_main(config_file: Path, which: str, *, strict: bool = False,
               timeout: float = 3.0, err: TextIO = sys.stderr) -> int:
    """``vmrunner probe live|ready``: 0 when ``GET /<which>`` answers 200, else 1 (2 for a bad
    configuration). For Kubernetes exec probes: ``live`` fails when the runner no longer
    serves (hung or gone), ``ready`` unless the VM is booting or booted."""
    path = socket_or_report(config_file, strict, err)
    if path is None:
        return ExitCode.CONFIG_ERROR

    async def ask() -> tuple[int, bytes]:
        async with asyncio.timeout(timeout):
            return await request(path, "GET", f"/{which}")

    try:
        status, body = asyncio.run(ask())
    except (ApiUnavailable, TimeoutError) as exc:
        print(f"vmrunner probe {which}: {exc or 'no answer'}", file=err)
        return ExitCode.INTERNAL_ERROR
    if status != 200:
        print(f"vmrunner probe {which}: HTTP {status}: {body.decode(errors='replace')}",
              file=err)
        return ExitCode.INTERNAL_ERROR
    return ExitCode.OK


def events_main(config_file: Path, *, as_json: bool = False, since: int | None = None,
                strict: bool = False, out: TextIO = sys.stdout,
                err: TextIO = sys.stderr) -> int:
    """``vmrunner events``: follow the stream until the runner stops (Ctrl-C raises
    ``KeyboardInterrupt``: the command's exit code 130)."""
    path = socket_or_report(config_file, strict, err)
    if path is None:
        return ExitCode.CONFIG_ERROR

    async def main() -> None:
        async for record in follow(path, since):
            line = json.dumps(record, separators=(",", ":")) if as_json else format_event(record)
            print(line, file=out, flush=True)

    try:
        asyncio.run(main())
    except ApiUnavailable as exc:
        print(f"vmrunner events: {exc}", file=err)
        return ExitCode.INTERNAL_ERROR
    return ExitCode.OK
