"""``vmrunner pause``, ``resume``, ``resize-disk``, ``fsfreeze``, ``fsthaw`` and
``screenshot``: day-2 operations through the running runner's API (:mod:`vmrunner.api.day2`).

Each prints the outcome (``pause applied: paused by the operator``) and exits 0 when it was
applied, 1 when the runner refused it or did not answer (the message says why), 2 for a bad
configuration or argument.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

REQUEST_TIMEOUT = 90.0
"""Seconds a request may take: more than a freeze or thaw may (the FsFreezer gives the agent
``AGENT_TIMEOUT``, 60 s, to sync the guest's filesystems, then asks for the status)."""
DEFAULT_FREEZE_TIMEOUT = 60.0


def add_parsers(sub: Any, config: argparse.ArgumentParser) -> None:
    """Add the day-2 subcommands to ``sub`` (see :func:`vmrunner.daemon.commands.add_parsers`)."""
    sub.add_parser("pause", parents=[config],
                   help="pause the guest's vCPUs (QMP stop); /ready says not ready")
    sub.add_parser("resume", parents=[config],
                   help="resume a paused guest (QMP cont) and resync its clock (qemu-ga)")
    resize = sub.add_parser(
        "resize-disk", parents=[config],
        help="tell the guest that a disk's file or block device has grown (block_resize)")
    resize.add_argument("drive", metavar="DRIVE",
                        help="disk0 for the first raw drive, disk1..., or its file or device")
    freeze = sub.add_parser(
        "fsfreeze", parents=[config],
        help="freeze the guest's filesystems through qemu-ga; thawed after --timeout")
    freeze.add_argument("--timeout", type=float, default=DEFAULT_FREEZE_TIMEOUT,
                        metavar="SECONDS", help="thaw automatically after this long at the "
                        f"latest (default {DEFAULT_FREEZE_TIMEOUT:g}, at most 3600)")
    sub.add_parser("fsthaw", parents=[config],
                   help="thaw the guest's filesystems through qemu-ga")
    shot = sub.add_parser("screenshot", parents=[config],
                          help="save a PNG screenshot of the VM's display (QMP screendump)")
    shot.add_argument("-o", "--output", type=Path, required=True, metavar="FILE",
                      help="where to write the PNG (- for stdout)")


def _post(config_file: Path, strict: bool, target: str, body: dict[str, Any], name: str,
          err: TextIO) -> tuple[int, bytes, str] | int:
    """POST to the runner: (HTTP status, body, content type), or an exit code after
    printing why there is no answer."""
    from vmrunner.api.client import ApiUnavailable, request, socket_or_report
    from vmrunner.components.exit_codes import ExitCode

    path = socket_or_report(config_file, strict, err)
    if path is None:
        return int(ExitCode.CONFIG_ERROR)

    async def send() -> tuple[int, bytes]:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            return await request(path, "POST", target, json.dumps(body).encode())

    try:
        status, answer = asyncio.run(send())
    except (ApiUnavailable, TimeoutError) as exc:
        print(f"vmrunner {name}: {exc or 'no answer'}", file=err)
        return int(ExitCode.INTERNAL_ERROR)
    is_png = answer.startswith(b"\x89PNG")
    return status, answer, "image/png" if is_png else "application/json"


def _report(name: str, action: str, result: tuple[int, bytes, str] | int, out: TextIO,
            err: TextIO, extra: Callable[[dict[str, Any]], str] = lambda _: "") -> int:
    from vmrunner.components.exit_codes import ExitCode

    if isinstance(result, int):
        return result
    status, body, _ = result
    try:
        answer: dict[str, Any] = json.loads(body)
    except ValueError:
        answer = {"error": body.decode(errors="replace")}
    if status == 400:
        print(f"vmrunner {name}: {answer.get('error')}", file=err)
        return int(ExitCode.CONFIG_ERROR)
    detail = f": {answer['detail']}" if answer.get("detail") else ""
    line = f"{action} {answer.get('outcome') or f'HTTP {status}'}{detail}{extra(answer)}"
    if status == 200:
        print(line, file=out)
        return int(ExitCode.OK)
    print(f"vmrunner {name}: {line}" + (f" {answer['error']}" if answer.get("error") else ""),
          file=err)
    return int(ExitCode.INTERNAL_ERROR)


def pause_main(config_file: Path, *, strict: bool = False, out: TextIO = sys.stdout,
               err: TextIO = sys.stderr) -> int:
    """Pause the guest; 0 once QEMU has stopped its vCPUs."""
    return _report("pause", "pause", _post(config_file, strict, "/pause", {}, "pause", err),
                   out, err)


def resume_main(config_file: Path, *, strict: bool = False, out: TextIO = sys.stdout,
                err: TextIO = sys.stderr) -> int:
    """Resume the guest; 0 once it runs (the clock's resync is reported, not required)."""
    def clock(answer: dict[str, Any]) -> str:
        return f" (guest clock: {answer['clock']})" if answer.get("clock") else ""

    return _report("resume", "resume", _post(config_file, strict, "/resume", {}, "resume",
                                             err), out, err, clock)


def resize_disk_main(config_file: Path, drive: str, *, strict: bool = False,
                     out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Grow ``drive`` to its file's or device's size; 0 once QEMU has the new size."""
    result = _post(config_file, strict, "/resize-disk", {"drive": drive}, "resize-disk", err)
    return _report("resize-disk", f"resize of {drive}", result, out, err)


def fsfreeze_main(config_file: Path, *, timeout: float = DEFAULT_FREEZE_TIMEOUT,
                  strict: bool = False, out: TextIO = sys.stdout,
                  err: TextIO = sys.stderr) -> int:
    """Freeze the guest's filesystems (thawed after ``timeout`` s at the latest)."""
    result = _post(config_file, strict, "/fsfreeze", {"timeout": timeout}, "fsfreeze", err)
    return _report("fsfreeze", "freeze", result, out, err, _filesystems)


def fsthaw_main(config_file: Path, *, strict: bool = False, out: TextIO = sys.stdout,
                err: TextIO = sys.stderr) -> int:
    """Thaw the guest's filesystems."""
    result = _post(config_file, strict, "/fsthaw", {}, "fsthaw", err)
    return _report("fsthaw", "thaw", result, out, err, _filesystems)


def _filesystems(answer: dict[str, Any]) -> str:
    """How many filesystems, and what ``guest-fsfreeze-status`` said after it."""
    status = f"agent: {answer['status']}" if answer.get("status") else ""
    if answer.get("outcome") != "applied":
        return f" ({status})" if status else ""
    return f" ({answer.get('filesystems', 0)} filesystem(s){', ' + status if status else ''})"


def screenshot_main(config_file: Path, output: Path, *, strict: bool = False,
                    out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Write a PNG of the display to ``output`` (``-``: stdout); 0 when written."""
    result = _post(config_file, strict, "/screenshot", {}, "screenshot", err)
    if isinstance(result, int) or result[2] != "image/png" or result[0] != 200:
        return _report("screenshot", "screenshot", result, out, err)
    data = result[1]
    try:
        if str(output) == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return 0
        output.write_bytes(data)
    except OSError as exc:
        print(f"vmrunner screenshot: {output}: {exc.strerror}", file=err)
        return 1
    print(f"screenshot written to {output} ({len(data)} bytes)", file=out)
    return 0


def _args(args: argparse.Namespace) -> dict[str, Any]:
    return {"strict": args.strict}


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "pause": lambda a: pause_main(a.config, **_args(a)),
    "resume": lambda a: resume_main(a.config, **_args(a)),
    "resize-disk": lambda a: resize_disk_main(a.config, a.drive, **_args(a)),
    "fsfreeze": lambda a: fsfreeze_main(a.config, timeout=a.timeout, **_args(a)),
    "fsthaw": lambda a: fsthaw_main(a.config, **_args(a)),
    "screenshot": lambda a: screenshot_main(a.config, a.output, **_args(a)),
}
"""Each day-2 command's function (argparse namespace → exit code)."""
