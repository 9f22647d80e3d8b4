"""Await a line in a growing log file (inotify, no polling): tests of the runner's log."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from asyncinotify import Inotify, Mask


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _count(path: Path, needle: str) -> int:
    return _text(path).count(needle)


async def wait_log(path: Path, needle: str, *, count: int = 1,
                   timeout: float = 20.0) -> None:  # noqa: ASYNC109
    """Return once ``needle`` occurs ``count`` times in ``path``; raise ``TimeoutError``
    (with the log's tail) otherwise. ``path`` must exist."""
    deadline = time.monotonic() + timeout
    with Inotify() as inotify:
        inotify.add_watch(path, Mask.MODIFY)
        while _count(path, needle) < count:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                await asyncio.wait_for(inotify.get(), remaining)
            except TimeoutError:
                tail = "\n".join(_text(path).splitlines()[-30:])
                raise TimeoutError(f"{needle!r} not in {path} within {timeout} s:\n"
                                   f"{tail}") from None
