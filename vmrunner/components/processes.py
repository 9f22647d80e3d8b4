"""ProcessManager: the runner's children (QEMU, swtpm), started without a shell.

* ``StartProcess`` → remove its stale sockets, spawn (own process group, PDEATHSIG=SIGKILL so
  children die with the runner even on ``kill -9``), output lines to ``vmrunner.proc.<name>``;
  fires ``ProcessStarted`` (result: the pid) or ``ProcessFailed``.
* Every child is waited for by an owned task that fires ``ProcessExited``.
* ``TerminateProcess`` → SIGTERM, SIGKILL after the grace time, reap; completes when gone.
* Once a ``Stop`` is seen (``StopPhase.CLOSE``) no new child is started (``ProcessFailed``);
  in the final phase (``StopPhase.STOP_PROCESSES``, after the shutdown ladder) everything
  still alive is terminated and reaped before the Stop completes.
"""

from __future__ import annotations

import asyncio
import logging

from vmrunner.components.base import BusComponent
from vmrunner.core import Channel, HandlerContext, Stop, handler
from vmrunner.events import (
    ProcessExited,
    ProcessFailed,
    ProcessStarted,
    StartProcess,
    TerminateProcess,
)
from vmrunner.events.lifecycle import StopPhase
from vmrunner.events.status import ProcessStatus, StatusQuery
from vmrunner.proc.child import ChildProcess, spawn
from vmrunner.proc.errors import ProcessStartError
from vmrunner.proc.sockets import remove_stale_socket

_log = logging.getLogger(__name__)

FINAL_GRACE = 3.0


class ProcessManager(BusComponent):
    """Owns the child processes by name (one live child per name)."""

    def __init__(self, channel: Channel | None = None, name: str | None = None) -> None:
        super().__init__(channel, name)
        self._procs: dict[str, ChildProcess] = {}
        self._closing = False

    def running(self, name: str) -> bool:
        """Whether child ``name`` runs (for diagnostics; components use the events)."""
        child = self._procs.get(name)
        return child is not None and child.running

    def pids(self) -> dict[str, int]:
        """The pids of the live children."""
        return {n: c.pid for n, c in self._procs.items() if c.running}

    @handler
    async def on_start_process(self, event: StartProcess, ctx: HandlerContext[int]) -> int | None:
        if self._closing:
            self.fire(ProcessFailed(name=event.name, reason="the runner is stopping"))
            return None
        old = self._procs.get(event.name)
        if old is not None and old.running:
            self.fire(ProcessFailed(name=event.name, reason=f"{event.name} is already running"))
            return None
        try:
            for socket in event.stale_sockets:
                remove_stale_socket(socket)
            child = await spawn(event.name, event.argv, env=dict(event.env) or None)
        except (ProcessStartError, OSError, ValueError, TypeError) as exc:
            _log.error("%s", exc)
            self.fire(ProcessFailed(name=event.name, reason=str(exc)))
            return None
        self._procs[event.name] = child
        self.fire(ProcessStarted(name=event.name, pid=child.pid))
        self.spawn(self._watch(child), name=f"watch-{event.name}")
        return child.pid

    async def _watch(self, child: ChildProcess) -> None:
        status = await child.wait()
        _log.info("process %s (pid %d) %s", child.name, child.pid, status)
        self.fire(ProcessExited(name=child.name, pid=child.pid, status=status,
                                stderr_tail=child.stderr_excerpt()))

    @handler
    def on_terminate(self, event: TerminateProcess, ctx: HandlerContext[None]) -> None:
        child = self._procs.get(event.name)
        if child is None or not child.running:
            return
        lock = ctx.hold()
        task = self.spawn(child.terminate(grace=event.grace), name=f"terminate-{event.name}")
        task.add_done_callback(lambda _t: lock.release())

    @handler(priority=StopPhase.CLOSE)
    def on_stop_first(self, event: Stop) -> None:
        """From now on no new child is started (a start step racing the Stop)."""
        self._closing = True

    @handler(priority=StopPhase.STOP_PROCESSES)
    def on_stop(self, event: Stop, ctx: HandlerContext[None]) -> None:
        alive = [c for c in self._procs.values() if c.running]
        if not alive:
            return
        lock = ctx.hold()
        task = self.spawn(self._terminate_all(alive), name="terminate-children")
        task.add_done_callback(lambda _t: lock.release())

    async def _terminate_all(self, alive: list[ChildProcess]) -> None:
        for child in alive:
            _log.info("stopping leftover child %s (pid %d)", child.name, child.pid)
        await asyncio.gather(*(c.terminate(grace=FINAL_GRACE) for c in alive),
                             return_exceptions=True)

    # -- status (GET /status) ----------------------------------------------------------------

    @handler
    def on_status_query(self, event: StatusQuery) -> ProcessStatus:
        return ProcessStatus(pids=tuple(sorted(self.pids().items())))
