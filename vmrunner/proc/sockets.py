"""Unix socket paths: wait for one to appear (inotify, no polling) and remove stale ones."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from pathlib import Path
from typing import Any

from vmrunner.proc.child import ChildProcess
from vmrunner.proc.errors import ProcessExitedError


def is_socket(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` exists and is a unix socket (symlinks are not followed)."""
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def remove_stale_socket(path: str | os.PathLike[str]) -> bool:
    """Remove a socket left over by an earlier run; True if one was removed.

    The socket is not probed by connecting (connecting to a live swtpm started with
    ``--terminate`` would make it exit). Refuses to remove anything that is not a socket.

    :raise FileExistsError: when ``path`` exists but is not a socket.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(f"{os.fspath(path)} exists and is not a socket; not removing it")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return True


async def wait_for_socket(
    path: str | os.PathLike[str], *, process: ChildProcess | None = None
) -> None:
    """Return once ``path`` is a unix socket, watching its directory with inotify.

    No timeout of its own: wrap the call in ``asyncio.timeout()``.

    :param process: the child expected to create the socket; if it exits first,
        :class:`~vmrunner.proc.errors.ProcessExitedError` (with its stderr tail) is raised.
    :raise FileNotFoundError: when the directory does not exist.
    """
    target = Path(path)
    if is_socket(target):  # the usual case when the process is already up: no inotify
        return
    from asyncinotify import Inotify, Mask

    from vmrunner.core import first_of
    from vmrunner.core.config.inotify import close_soon

    inotify = Inotify()
    try:
        inotify.add_watch(target.parent, Mask.CREATE | Mask.MOVED_TO | Mask.ONLYDIR)
        if is_socket(target):  # created before the watch existed
            return
        exited: asyncio.Future[Any] | None = None
        if process is not None:
            exited = asyncio.ensure_future(process.wait())
        try:
            while True:
                event = asyncio.ensure_future(inotify.get())
                # first_of cancels a pending inotify read (so it unregisters before the close)
                await first_of(event, *(() if exited is None else (asyncio.shield(exited),)))
                if event.done() and not event.cancelled() and event.result().name == Path(
                    target.name
                ) and is_socket(target):
                    return
                if exited is not None and exited.done():
                    if is_socket(target):
                        return
                    assert process is not None
                    raise ProcessExitedError(
                        process.name, str(exited.result()), process.stderr_excerpt())
        finally:
            if exited is not None:
                await first_of(exited, timeout=0)  # cancels and awaits it unless done
    finally:
        close_soon(inotify)  # the kernel's close can take ~100 ms: not on the loop
