"""``vmrunner shutdown``, ``vmrunner reset`` and ``vmrunner qmp``: requests to the running
runner's API (``POST /powerdown``, ``/reset``, ``/qmp``).

Exit codes: 0 done, 1 the runner did not answer or refused (the message says why), 2 a bad
configuration or argument.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from vmrunner.api.client import ApiUnavailable, get_json, request, socket_or_report
from vmrunner.components.exit_codes import ExitCode

REQUEST_TIMEOUT = 30.0
"""Seconds a request may take (a reset waits up to 10 s for QEMU's RESET)."""
POLL = 0.2
"""Seconds between checks while ``shutdown --wait`` waits for the runner to exit."""


async def _post(path: Path, target: str, body: bytes = b"") -> tuple[int, Any]:
    async with asyncio.timeout(REQUEST_TIMEOUT):
        status, answer = await request(path, "POST", target, body)
    try:
        return status, json.loads(answer)
    except ValueError:
        return status, {"error": answer.decode(errors="replace")}


def shutdown_main(config_file: Path, *, wait: bool = False, timeout: float = 300.0,
                  strict: bool = False, out: TextIO = sys.stdout,
                  err: TextIO = sys.stderr) -> int:
    """Ask for the shutdown ladder (as a TERM does); with ``wait``, return once the runner
    has exited (its socket refuses connections and its pid is gone), 1 after ``timeout``."""
    path = socket_or_report(config_file, strict, err)
    if path is None:
        return ExitCode.CONFIG_ERROR
    try:
        doc = asyncio.run(get_json(path, "/status"))
        status, answer = asyncio.run(_post(path, "/powerdown"))
    except (ApiUnavailable, TimeoutError) as exc:
        print(f"vmrunner shutdown: {exc or 'no answer'}", file=err)
        return ExitCode.INTERNAL_ERROR
    if status != 202:
        print(f"vmrunner shutdown: HTTP {status}: {answer}", file=err)
        return ExitCode.INTERNAL_ERROR
    print(f"shutdown requested (VM {doc.get('vm')} was {answer.get('state')})", file=out,
          flush=True)
    if not wait:
        return ExitCode.OK
    pid = doc.get("runnerPid")
    started = time.monotonic()
    if not _wait_gone(path, pid if isinstance(pid, int) else None, timeout):
        print(f"vmrunner shutdown: the runner still runs after {timeout:g} s", file=err)
        return ExitCode.INTERNAL_ERROR
    print(f"the runner has exited after {time.monotonic() - started:.1f} s", file=out)
    return ExitCode.OK


def _wait_gone(path: Path, pid: int | None, timeout: float) -> bool:
    """Whether the runner at ``path`` (``pid``, if it is in our pid namespace) ended within
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _answers(path) and (pid is None or not _runner_alive(pid)):
            return True
        time.sleep(POLL)
    return False


def _answers(path: Path) -> bool:
    async def live() -> bool:
        async with asyncio.timeout(2):
            status, _ = await request(path, "GET", "/live")
        return status == 200

    try:
        return asyncio.run(live())
    except (ApiUnavailable, TimeoutError):
        return False


def _runner_alive(pid: int) -> bool:
    """``pid`` runs and is a vmrunner (a recycled pid of another program does not count)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"vmrunner" in cmdline


def reset_main(config_file: Path, *, strict: bool = False, out: TextIO = sys.stdout,
               err: TextIO = sys.stderr) -> int:
    """Reset the VM; 0 once QEMU confirmed it (its ``RESET`` event), else 1."""
    path = socket_or_report(config_file, strict, err)
    if path is None:
        return ExitCode.CONFIG_ERROR
    try:
        status, answer = asyncio.run(_post(path, "/reset"))
    except (ApiUnavailable, TimeoutError) as exc:
        print(f"vmrunner reset: {exc or 'no answer'}", file=err)
        return ExitCode.INTERNAL_ERROR
    detail = f": {answer['detail']}" if answer.get("detail") else ""
    if status == 200:
        print(f"reset {answer.get('outcome')}{detail}", file=out)
        return ExitCode.OK
    print(f"vmrunner reset: {answer.get('outcome') or f'HTTP {status}'}{detail}"
          + (f" {answer['error']}" if answer.get("error") else ""), file=err)
    return ExitCode.INTERNAL_ERROR


def qmp_main(config_file: Path, command: str, *, strict: bool = False,
             out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Send ``command`` (QMP JSON) through the runner; print QEMU's answer as JSON. 0 for a
    ``return``, 1 for an ``error``, 2 for a command that is not JSON."""
    try:
        parsed = json.loads(command)
    except ValueError as exc:
        print(f"vmrunner qmp: not JSON: {exc}", file=err)
        return ExitCode.CONFIG_ERROR
    path = socket_or_report(config_file, strict, err)
    if path is None:
        return ExitCode.CONFIG_ERROR
    try:
        status, answer = asyncio.run(_post(path, "/qmp", json.dumps(parsed).encode()))
    except (ApiUnavailable, TimeoutError) as exc:
        print(f"vmrunner qmp: {exc or 'no answer'}", file=err)
        return ExitCode.INTERNAL_ERROR
    if status == 400:
        print(f"vmrunner qmp: {answer.get('error')}", file=err)
        return ExitCode.CONFIG_ERROR
    print(json.dumps(answer, indent=2), file=out)
    return ExitCode.OK if status == 200 and "return" in answer else ExitCode.INTERNAL_ERROR
