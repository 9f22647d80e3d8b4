"""Event-driven change detection for one file, via inotify on its directory (no bus).

Watching the file itself breaks on atomic renames and on Kubernetes ConfigMap updates (a
watch on ``config.yaml`` follows the symlink to the old inode and dies with it). So
:class:`FileWatch` watches the file's **directory** and, if the file is a symlink into another
directory, that directory as well. It does not interpret what happened: it only reports "the
file may have changed", after a short quiet period that coalesces bursts (a ConfigMap swap
produces five events). The caller re-reads the file through the symlink and compares a hash.

Relevant events in the file's directory are those on the file's own name, on the resolved
target's name, and on any name starting with ``..`` (kubelet's ``..data``, ``..data_tmp`` and
timestamped directories). Creating a regular file is not yet a change (its content follows and
ends with ``CLOSE_WRITE``); creating a symlink or directory is. Content modifications are seen
on ``CLOSE_WRITE`` only, so a half-written file is never reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from types import TracebackType

from asyncinotify import Event, Inotify, Mask, Watch

from vmrunner.core.config.inotify import close_soon

_log = logging.getLogger(__name__)

_DIR_MASK = (
    Mask.CREATE
    | Mask.CLOSE_WRITE
    | Mask.MOVED_TO
    | Mask.MOVED_FROM
    | Mask.DELETE
    | Mask.DELETE_SELF
    | Mask.MOVE_SELF
    | Mask.ONLYDIR
)


class FileWatch:
    """Async context manager reporting possible changes of ``file`` (see module docs).

    ``debounce_s`` is the quiet period that ends a burst; ``max_delay_s`` bounds how long a
    stream of events may postpone the report.
    """

    def __init__(
        self, file: Path, *, debounce_s: float = 0.005, max_delay_s: float = 0.1
    ) -> None:
        self.file = Path(os.path.abspath(file))
        self.debounce_s = debounce_s
        self.max_delay_s = max(max_delay_s, debounce_s)
        self._inotify: Inotify | None = None
        self._dir_watch: Watch | None = None
        self._target_watch: Watch | None = None
        self._target = self.file
        self._dirty = asyncio.Event()
        self._first_event_at = 0.0
        self._last_event_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> FileWatch:
        self._loop = asyncio.get_running_loop()
        # sync_timeout=0: ``sync_get`` polls instead of blocking. (asyncinotify 4.4's
        # InitFlags.NONBLOCK is really O_CLOEXEC, so the descriptor is made non-blocking here.)
        self._inotify = Inotify(sync_timeout=0)
        os.set_blocking(self._inotify.fd, False)
        try:
            self._dir_watch = self._inotify.add_watch(self.file.parent, _DIR_MASK)
            self.refresh()
            self._loop.add_reader(self._inotify.fd, self._on_readable)
        except BaseException:
            self._inotify.close()
            self._inotify = None
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._inotify is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._inotify.fd)
            close_soon(self._inotify)  # the kernel's close can take ~100 ms: not on the loop
            self._inotify = None

    async def changed(self) -> None:
        """Wait until the file may have changed and the burst of events has ended."""
        loop = asyncio.get_running_loop()
        await self._dirty.wait()
        while True:
            now = loop.time()
            quiet_at = min(
                self._last_event_at + self.debounce_s, self._first_event_at + self.max_delay_s
            )
            if now >= quiet_at:
                break
            await asyncio.sleep(quiet_at - now)
        self._dirty.clear()

    def refresh(self) -> None:
        """Re-resolve the file's symlinks and watch the target's directory too, if different.

        Call after each re-read, so that a retargeted symlink is followed.
        """
        if self._inotify is None:
            return
        self._target = Path(os.path.realpath(self.file))
        target_dir = self._target.parent
        old = self._target_watch
        if old is not None and old.path == target_dir:
            return
        if old is not None:
            self._target_watch = None
            with contextlib.suppress(OSError):  # its directory is gone, and the watch with it
                self._inotify.rm_watch(old)
        if target_dir == self.file.parent:
            return
        with contextlib.suppress(OSError):  # dangling link: the main watch still reports
            self._target_watch = self._inotify.add_watch(target_dir, _DIR_MASK)

    def _on_readable(self) -> None:
        assert self._inotify is not None
        relevant = False
        while True:
            try:
                event = self._inotify.sync_get()
            except BlockingIOError:
                break
            if event is None:
                break
            relevant = self._is_relevant(event) or relevant
        if relevant:
            assert self._loop is not None
            now = self._loop.time()
            if not self._dirty.is_set():
                self._first_event_at = now
            self._last_event_at = now
            self._dirty.set()

    def _is_relevant(self, event: Event) -> bool:
        if Mask.Q_OVERFLOW in event.mask:
            return True
        watch = event.watch
        if event.name is None or watch is None:
            if watch is not None and Mask.IGNORED in event.mask:
                if watch is self._target_watch:
                    self._target_watch = None
                elif watch is self._dir_watch:
                    _log.warning("%s: its directory vanished; no longer watching it", self.file)
            return False
        name = event.name.name
        if watch is self._dir_watch:
            relevant = (
                name == self.file.name
                or name.startswith("..")
                or (self._target.parent == self.file.parent and name == self._target.name)
            )
        elif watch is self._target_watch:
            relevant = name == self._target.name
        else:
            return False
        if relevant and Mask.CREATE in event.mask and Mask.ISDIR not in event.mask:
            # A new regular file gets its content later; its CLOSE_WRITE will report it.
            try:
                return (watch.path / name).is_symlink()
            except OSError:
                return True
        return relevant
