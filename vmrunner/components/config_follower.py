"""ConfigFollower: re-reads the configuration file when it changes and fires ``ConfigReloaded``.

Interim component until the runner is a ``Configurable`` fed by ``vmrunner.core``'s
``ConfigWatcher``: inotify on the file's directory (in-place writes, renames and the
``..data`` symlink swap of Kubernetes volumes all show up there), a short quiet period to
coalesce bursts, then validation with :func:`vmrunner.config.validate.load_config`. An
invalid file is rejected with its problems logged by key path; the last good configuration
stays in force.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from vmrunner.components import BUS
from vmrunner.core import Channel, Component, Started, handler
from vmrunner.events import ConfigReloaded

_log = logging.getLogger(__name__)

QUIET = 0.05
"""Seconds without further events before the file is re-read."""


class ConfigFollower(Component):
    """Watches ``config_file`` while the runner runs."""

    def __init__(self, config_file: Path, channel: Channel | None = None,
                 name: str | None = None, *, strict: bool = False) -> None:
        super().__init__(BUS if channel is None else channel, name)
        self.config_file = Path(config_file).absolute()
        self.strict = strict
        self._task: asyncio.Task[None] | None = None
        self._last: bytes | None = None

    @handler
    def on_started(self, event: Started) -> None:
        if self._task is None:
            self._last = self._read()
            self._task = self.spawn(self._follow(), name="config-follower")

    def _read(self) -> bytes | None:
        try:
            return self.config_file.read_bytes()
        except OSError:
            return None

    async def _follow(self) -> None:
        from asyncinotify import Inotify, Mask

        directory = self.config_file.parent
        mask = (Mask.CLOSE_WRITE | Mask.MOVED_TO | Mask.CREATE | Mask.DELETE | Mask.ONLYDIR)
        with Inotify() as inotify:
            inotify.add_watch(directory, mask)
            while True:
                event = await inotify.get()
                name = str(event.name or "")
                if name != self.config_file.name and not name.startswith(".."):
                    continue
                while True:  # coalesce a burst
                    try:
                        await asyncio.wait_for(inotify.get(), QUIET)
                    except TimeoutError:
                        break
                self._reload()

    def _reload(self) -> None:
        from vmrunner.config.validate import load_config

        content = self._read()
        if content is None or content == self._last:
            return
        self._last = content
        validation = load_config(self.config_file, strict=self.strict)
        for problem in validation.problems:
            (_log.warning if problem.severity == "warning" else _log.error)("%s", problem)
        if not validation.ok or validation.config is None:
            _log.error("configuration change rejected; keeping the last good one")
            return
        _log.info("configuration reloaded from %s", self.config_file)
        self.fire(ConfigReloaded(config=validation.config))
