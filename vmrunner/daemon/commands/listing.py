"""``vmrunner list``: the runners on this host, found by their API sockets.

A runner serves ``api.sock`` in its runtimeDir. The default runtime dirs are
``<root>/<vm name>`` below these roots (:func:`vmrunner.vmtypes.state.default_runtime_dir`):
``$XDG_RUNTIME_DIR/vmrunner``, ``/run/vmrunner``, ``/run/<user>/vmrunner``,
``/tmp/<user>/vmrunner``. A VM with a configured ``runtimeDir`` elsewhere is found only with
``--dir``. Every socket found is asked ``GET /status`` (2 s); one that does not answer is
listed as ``not answering`` (a runner that is hung, or a socket left behind by one that was
killed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

from vmrunner.api.client import ApiUnavailable, get_json
from vmrunner.api.server import SOCKET_NAME
from vmrunner.components.exit_codes import ExitCode
from vmrunner.vmtypes.state import default_runtime_dir, user_name

ASK_TIMEOUT = 2.0
"""Seconds each runner has to answer ``GET /status``."""
HEADER = ("NAME", "STATE", "PID", "UPTIME", "RAM", "VCPUS", "RUNTIME DIR")


def default_roots(env: Mapping[str, str]) -> list[Path]:
    """The directories that hold default runtime dirs (one per VM name), current first:
    ``$XDG_RUNTIME_DIR/vmrunner`` (if set), ``/run/vmrunner`` (root), ``/run/<user>/vmrunner``,
    ``/tmp/<user>/vmrunner``."""
    user = user_name()
    roots = [default_runtime_dir("x", env).parent, Path("/run/vmrunner"),
             Path("/run") / user / "vmrunner", Path("/tmp") / user / "vmrunner"]
    return list(dict.fromkeys(roots))


def find_sockets(dirs: Iterable[Path]) -> list[Path]:
    """``api.sock`` in each of ``dirs`` or in their subdirectories, sorted, no duplicates."""
    found: dict[Path, None] = {}
    for directory in dirs:
        candidates = [directory / SOCKET_NAME]
        with contextlib.suppress(OSError):
            candidates += sorted(d / SOCKET_NAME for d in directory.iterdir() if d.is_dir())
        for sock in candidates:
            with contextlib.suppress(OSError):
                if sock.is_socket():
                    found.setdefault(sock.resolve())
    return list(found)


async def _ask(sock: Path) -> dict[str, Any] | None:
    try:
        async with asyncio.timeout(ASK_TIMEOUT):
            doc: dict[str, Any] = await get_json(sock, "/status")
            return doc
    except (ApiUnavailable, TimeoutError, ValueError):
        return None


def row(sock: Path, doc: dict[str, Any] | None, now: float) -> dict[str, Any]:
    """One runner as the JSON object of ``list --json`` (None: not known)."""
    if doc is None:
        return {"name": sock.parent.name, "state": "not answering", "pid": None,
                "uptime": None, "ram": None, "cpus": None, "runtimeDir": str(sock.parent)}
    since = doc.get("runnerSince")
    ram = doc.get("ram") or {}
    cpus = doc.get("cpus") or {}
    return {"name": doc.get("vm"), "state": doc.get("state"), "pid": doc.get("runnerPid"),
            "uptime": None if since is None else round(max(0.0, now - since), 1),
            "ram": ram.get("actual") or ram.get("requested"),
            "cpus": cpus.get("present") if cpus.get("present") is not None
            else cpus.get("requested"),
            "runtimeDir": str(sock.parent)}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02}h"
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned table with a header."""
    cells = [HEADER] + [(
        str(r["name"]), str(r["state"]), "-" if r["pid"] is None else str(r["pid"]),
        _duration(r["uptime"]), "-" if r["ram"] is None else f"{r['ram'] / 2**20:.0f} MiB",
        "-" if r["cpus"] is None else str(r["cpus"]), r["runtimeDir"]) for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADER))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)
                               ).rstrip() for line in cells)


def list_main(*, extra: Iterable[Path] = (), as_json: bool = False,
              env: Mapping[str, str] | None = None, out: TextIO = sys.stdout) -> int:
    """``vmrunner list``: 0 (an empty host prints only the header)."""
    dirs = [*default_roots(os.environ if env is None else env), *extra]
    sockets = find_sockets(dirs)

    async def ask_all() -> list[dict[str, Any] | None]:
        return list(await asyncio.gather(*(_ask(s) for s in sockets)))

    docs = asyncio.run(ask_all()) if sockets else []
    now = time.time()
    rows = [row(sock, doc, now) for sock, doc in zip(sockets, docs, strict=True)]
    if as_json:
        for entry in rows:
            print(json.dumps(entry), file=out)
    else:
        print(format_table(rows), file=out)
    return ExitCode.OK
