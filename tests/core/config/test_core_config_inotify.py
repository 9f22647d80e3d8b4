"""close_soon: the inotify descriptor is closed off the loop, and closed by the end of the run."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from asyncinotify import Inotify, Mask

from vmrunner.core.config.inotify import close_soon


def test_close_soon_closes_in_an_executor_thread(tmp_path: Path) -> None:
    closed_in: list[threading.Thread] = []

    class Recording(Inotify):
        def close(self) -> None:
            closed_in.append(threading.current_thread())
            super().close()

    async def main() -> int:
        inotify = Recording()
        inotify.add_watch(tmp_path, Mask.CREATE)
        fd: int = inotify.fd
        close_soon(inotify)
        return fd

    fd = asyncio.run(main())  # asyncio.run waits for the default executor's jobs
    assert closed_in and closed_in[0] is not threading.main_thread()
    link = Path(f"/proc/self/fd/{fd}")  # gone, or reused by something else by now
    assert not link.exists() or os.readlink(link) != "anon_inode:inotify"
