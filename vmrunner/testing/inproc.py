"""Run the standard runner tree in the test's own event loop (tests of live changes).

Unlike :class:`~vmrunner.testing.runnerproc.RunnerProcess` (a subprocess), the tree runs
in-process with extra components and an :class:`~vmrunner.core.recorder.EventRecorder`, so a
test can await the typed events the runner fires, and still talk to the real guest through
its serial console::

    async with InProcessRunner(config, CdromController()) as vm:
        await vm.console.wait_ready()
        await vm.recorder.wait_for(CdromMediumChange, lambda e: ..., timeout=10)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from vmrunner.components.runner import Runner
from vmrunner.core import Component, Stop, run
from vmrunner.core.recorder import EventRecorder
from vmrunner.daemon.builder import RunnerBuilder
from vmrunner.proc.sockets import wait_for_socket
from vmrunner.testing.console import GuestConsole
from vmrunner.testing.runnerproc import connect_listening


class InProcessRunner:
    """Async context manager: build the standard tree plus ``extra`` (an extra named like a
    standard child replaces it), run it, attach the serial console
    (``runtimeDir/console.sock``); on exit fire ``Stop`` and wait.

    ``customize`` may change the builder before the tree is built (e.g. remove a standard
    child whose job an extra component takes over)."""

    def __init__(self, config: Path, *extra: Component, stop_timeout: float = 60.0,
                 customize: Callable[[RunnerBuilder], object] | None = None) -> None:
        self.config = config
        self.extra = extra
        self.stop_timeout = stop_timeout
        self.customize = customize
        self.recorder = EventRecorder()
        self.runner: Runner | None = None
        self.task: asyncio.Task[int] | None = None
        self._console: GuestConsole | None = None

    @property
    def console(self) -> GuestConsole:
        assert self._console is not None, "no console"
        return self._console

    async def __aenter__(self) -> InProcessRunner:
        builder = RunnerBuilder(self.config)
        standard = {c.name for c in builder.components}
        for component in (*self.extra, self.recorder):
            if component.name in standard:  # a configured stand-in for a standard child
                builder.replace(component.name, component)
            else:
                builder.add(component)
        if self.customize is not None:
            self.customize(builder)
        self.runner = builder.build()
        self.task = asyncio.ensure_future(run(self.runner))
        socket = self.config.parent / "run" / "console.sock"
        socket.parent.mkdir(parents=True, exist_ok=True)
        waiting = asyncio.ensure_future(wait_for_socket(socket))
        try:
            await asyncio.wait({waiting, self.task}, timeout=30,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
        if (self.task.done() or not waiting.done() or waiting.cancelled()
                or waiting.exception() is not None):
            await self.__aexit__(None, None, None)
            raise RuntimeError(f"no console socket {socket}")
        reader, writer = await connect_listening(socket)
        self._console = GuestConsole(reader, writer, self.config.parent / "console.log")
        return self

    async def stop(self) -> int:
        """Stop the runner (graceful shutdown) and return its exit code."""
        assert self.runner is not None and self.task is not None
        if not self.task.done():
            self.runner.fire(Stop())
        return await asyncio.wait_for(asyncio.shield(self.task), self.stop_timeout)

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._console is not None:
            await self._console.close()
            self._console = None
        if self.task is None:
            return
        try:
            await self.stop()
        except TimeoutError:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
