"""``ConfigWatcher``: the configuration store for one YAML file, and its live updates.

1. **Initial delivery.** Its ``Start`` handler (priority 999_999, any channel) reads the file
   and does ``await self.call(InitialConfiguration(...), *start_channels)``: a fresh pipeline,
   awaited, so every component has its configuration before any ordinary ``Start`` handler
   runs. (A subtree attached later gets its own ``Start`` and therefore its own initial
   configuration.) If the file is unreadable or invalid, or a component rejects its section,
   the error is logged, the exit code is ``CONFIG_ERROR_EXIT`` (2), ``Stop`` is fired and the
   ``Start`` event is cancelled: no ordinary ``Start`` handler runs and ``Started`` is not
   fired.
2. **Watching.** A task owned by the watcher (``spawn``) follows the file with
   :class:`~vmrunner.core.config.watch.FileWatch` (inotify on its directory: in-place writes,
   renames, Kubernetes ``..data`` symlink swaps, deletion). Each burst of events leads to one
   re-read through the symlinks; unchanged bytes (SHA-256) and unchanged content are skipped.
   A changed, valid file fires a :class:`ConfigurationUpdate` with the complete configuration
   (removed paths map to ``None``) on BROADCAST. An unreadable or invalid file (including
   one that breaks the limits of :mod:`~vmrunner.core.config.loader`, or any unexpected
   failure while reading) is logged (once per distinct problem), answered with
   ``ConfigurationRejected(path="/")`` and otherwise ignored: the last good configuration
   stays in force and watching goes on. A vanished file is logged once and
   picked up again when it returns.
3. **Stopping.** The task ends when ``Stop`` has completed (``Stopped``), so changes made
   during a graceful shutdown (e.g. a longer powerdown timeout) still apply.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from vmrunner.core.channel import BROADCAST, Channel
from vmrunner.core.component import Component
from vmrunner.core.config.errors import CONFIG_ERROR_EXIT, ConfigError
from vmrunner.core.config.events import (
    ConfigurationRejected,
    ConfigurationUpdate,
    InitialConfiguration,
    ReloadConfiguration,
)
from vmrunner.core.config.loader import ConfigFileMissingError, digest_of, parse, read_bytes
from vmrunner.core.config.paths import ROOT, Values, full_update
from vmrunner.core.config.watch import FileWatch
from vmrunner.core.events import Start, Stop, Stopped
from vmrunner.core.handle import HandlerContext
from vmrunner.core.handler import handler

_log = logging.getLogger("vmrunner.core.config")

INITIAL_PRIORITY = 999_999
"""Priority of the ``Start`` handler that delivers the initial configuration."""


class ConfigWatcher(Component):
    """The configuration store for the YAML file ``path`` (see module docs).

    Args:
        path: the configuration file (may be a symlink, as in a ConfigMap volume).
        watch: follow the file after start (``False``: initial configuration only).
        debounce_s: quiet period that ends a burst of file events.
        max_delay_s: upper bound for postponing a re-read during a stream of events.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        channel: Channel | None = None,
        name: str | None = None,
        *,
        watch: bool = True,
        debounce_s: float = 0.005,
        max_delay_s: float = 0.1,
    ) -> None:
        super().__init__(channel, name)
        self.path = Path(os.path.abspath(path))
        self.watch = watch
        self.debounce_s = debounce_s
        self.max_delay_s = max_delay_s
        self._nodes: dict[str, Values] | None = None
        self._digest: str | None = None
        self._missing = False
        self._last_errors: tuple[str, ...] = ()
        self._task: asyncio.Task[None] | None = None

    @property
    def current(self) -> Mapping[str, Values] | None:
        """The last good configuration by path (``None`` before it was first loaded)."""
        return None if self._nodes is None else MappingProxyType(self._nodes)

    def load(self) -> dict[str, Values]:
        """Read and parse the file now (raises :class:`ConfigError`); remembers the result."""
        content = read_bytes(self.path)
        digest = digest_of(content)
        nodes = parse(self.path, content)
        self._digest, self._nodes = digest, nodes
        return nodes

    # -- initial delivery ---------------------------------------------------------------

    @handler(priority=INITIAL_PRIORITY, channels=(BROADCAST,))
    async def on_start(self, event: Start, ctx: HandlerContext[None]) -> None:
        """Deliver the initial configuration to the starting components, then watch."""
        nodes = self._nodes
        if nodes is None:
            try:
                nodes = self.load()
            except ConfigError as exc:
                self._fail_initial(exc.messages, ctx)
                return
            except Exception as exc:  # a configuration error, not a crash
                _log.error("%s: unexpected error while loading", self.path, exc_info=True)
                self._fail_initial(
                    (f"{self.path}: cannot load: {type(exc).__name__}: {exc}",), ctx
                )
                return
        rejected = await self.call(InitialConfiguration.of(nodes, self.path), *ctx.channels)
        if rejected is not None:
            ctx.handle.cancel()
            return
        if self.watch and self._task is None:
            self._task = self.spawn(self._follow(), name=f"{self.component_path}:watch")

    def _fail_initial(self, messages: tuple[str, ...], ctx: HandlerContext[None]) -> None:
        for message in messages:
            _log.error("%s", message)
        _log.error("%s: cannot load the configuration; stopping", self.path)
        self.fire(ConfigurationRejected(path=ROOT, errors=messages, initial=True))
        if self.exit_code != CONFIG_ERROR_EXIT:
            self.set_exit_code(CONFIG_ERROR_EXIT)
            self.fire(Stop())
        ctx.handle.cancel()

    # -- watching -----------------------------------------------------------------------

    @handler(channels=(BROADCAST,))
    def on_stopped(self, event: Stopped) -> None:
        """Stop following the file."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()

    @handler(channels=(BROADCAST,))
    def on_reload(self, event: ReloadConfiguration) -> None:
        """Re-read the file now (SIGHUP); an unchanged file is only logged."""
        digest = self._digest
        self.check()
        if self._digest == digest and not self._missing:
            _log.info("%s: re-read (%s): unchanged", self.path, event.reason or "asked")

    async def _follow(self) -> None:
        async with FileWatch(
            self.path, debounce_s=self.debounce_s, max_delay_s=self.max_delay_s
        ) as watch:
            self.check()  # covers changes between the initial read and the watch
            while True:
                await watch.changed()
                self.check()
                watch.refresh()

    def check(self) -> None:
        """Re-read the file and fire an update if its content changed (see module docs).

        Never raises: an unexpected failure is rejected like an invalid file (logged once
        with its traceback), and the next change is read again.
        """
        try:
            self._check()
        except Exception as exc:  # the watch must go on
            message = f"{self.path}: cannot load: {type(exc).__name__}: {exc}"
            if (message,) != self._last_errors:
                _log.error("%s: unexpected error while re-reading", self.path, exc_info=True)
            self._reject((message,), None)

    def _check(self) -> None:
        try:
            content = read_bytes(self.path)
        except ConfigFileMissingError:
            if not self._missing:
                self._missing = True
                _log.warning(
                    "%s: the configuration file vanished; keeping the last good "
                    "configuration until it returns", self.path)
            return
        except ConfigError as exc:
            self._reject(exc.messages, self._digest)
            return
        self._last_errors = ()
        if self._missing:
            self._missing = False
            _log.info("%s: the configuration file is back", self.path)
        digest = digest_of(content)
        if digest == self._digest:
            return
        self._digest = digest
        try:
            nodes = parse(self.path, content)
        except ConfigError as exc:
            self._reject(exc.messages, digest)
            return
        self._last_errors = ()
        old = self._nodes or {}
        if nodes == old:
            return
        self._nodes = nodes
        _log.info("%s: configuration changed", self.path)
        self.fire(ConfigurationUpdate.of(full_update(old, nodes), self.path))

    def _reject(self, messages: tuple[str, ...], digest: str | None) -> None:
        self._digest = digest
        if messages == self._last_errors:
            return
        self._last_errors = messages
        for message in messages:
            _log.error("%s", message)
        _log.error("%s: configuration change rejected; keeping the last good one", self.path)
        self.fire(ConfigurationRejected(path=ROOT, errors=messages))
