"""SwtpmManager: swtpm before QEMU when the VM has a TPM, stopped after QEMU.

``VmPrepared`` with a swtpm command → remove a stale control socket → ``StartProcess`` →
wait (inotify) for the socket, racing swtpm's exit and a timeout → ``SwtpmReady`` or
``StartFailed`` (with swtpm's stderr), unless a ``Stop`` came first (swtpm ending then is
the stop's doing, not a failed start). When QEMU has exited, swtpm (started with
``--terminate``, so normally already gone) gets ``TerminateProcess``. Once swtpm has exited,
its control socket is gone: swtpm removes it on a clean exit, the manager when swtpm could
not (killed, or ended by a signal that came before its handler).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from vmrunner.components.base import BusComponent
from vmrunner.core import Channel, Stop, handler
from vmrunner.core.waiting import first_of
from vmrunner.events import (
    ProcessExited,
    ProcessFailed,
    ProcessRole,
    ProcessStarted,
    QmpShutdown,
    StartFailed,
    StartProcess,
    SwtpmReady,
    TerminateProcess,
    VmPrepared,
)
from vmrunner.events.lifecycle import StopPhase
from vmrunner.proc.sockets import remove_stale_socket, wait_for_socket

_log = logging.getLogger(__name__)



class SwtpmManager(BusComponent):
    """Starts swtpm and reports when its control socket is ready."""

    def __init__(self, channel: Channel | None = None, name: str | None = None, *,
                 ready_timeout: float = 10.0, stop_grace: float = 2.0) -> None:
        super().__init__(channel, name)
        self.ready_timeout = ready_timeout
        self.stop_grace = stop_grace
        self._socket: Path | None = None
        self._exited: asyncio.Future[ProcessExited] | None = None
        self._ready = False
        self._qemu_exited = False  # or shutting down: swtpm may then go first
        self._stopping = False
        """A ``Stop`` came: swtpm ending before it was ready is the stop's doing, not a
        failed start."""

    @handler
    def on_prepared(self, event: VmPrepared) -> None:
        command = event.plan.swtpm
        if command is None:
            return
        self._socket = event.plan.paths.swtpm_socket
        try:
            if remove_stale_socket(self._socket):
                _log.info("removed stale swtpm socket %s", self._socket)
        except OSError as exc:
            self.fire(StartFailed(step=ProcessRole.SWTPM, reason=str(exc)))
            return
        self._exited = asyncio.get_running_loop().create_future()
        self.fire(StartProcess(name=ProcessRole.SWTPM, argv=tuple(command.argv),
                               env=tuple(command.environment.items())))

    @handler
    def on_started(self, event: ProcessStarted) -> None:
        if event.name == ProcessRole.SWTPM and self._socket is not None:
            self.spawn(self._await_socket(self._socket), name="swtpm-ready")

    async def _await_socket(self, socket: Path) -> None:
        assert self._exited is not None
        waiter: asyncio.Future[None] = asyncio.ensure_future(wait_for_socket(socket))
        done = await first_of(waiter, asyncio.shield(self._exited), timeout=self.ready_timeout)
        error = waiter.exception() if waiter in done else None
        if error is not None and not isinstance(error, OSError):
            raise error  # a bug, not a failed start
        if waiter in done and error is None:
            self._ready = True
            _log.info("swtpm ready: %s", socket)
            self.fire(SwtpmReady(socket=str(socket)))
            return
        if self._exited.done() and self._stopping:
            _log.info("swtpm %s before it was ready: the runner is stopping",
                      self._exited.result().status)
            return
        if self._exited.done():
            exited = self._exited.result()
            reason = f"swtpm {exited.status} before creating {socket}"
            if exited.stderr_tail:
                reason += f"; its stderr:\n{exited.stderr_tail}"
        elif waiter in done:
            reason = f"cannot watch for {socket}: {error}"
        else:
            reason = f"no control socket {socket} within {self.ready_timeout:g} s"
        self.fire(StartFailed(step=ProcessRole.SWTPM, reason=reason))
        self.fire(TerminateProcess(name=ProcessRole.SWTPM, grace=self.stop_grace))

    @handler
    def on_failed(self, event: ProcessFailed) -> None:
        if event.name == ProcessRole.SWTPM:
            self.fire(StartFailed(step=ProcessRole.SWTPM, reason=event.reason))

    @handler
    def on_shutdown(self, event: QmpShutdown) -> None:
        self._qemu_exited = True

    @handler(priority=StopPhase.ANNOUNCE)
    def on_stop(self, event: Stop) -> None:
        self._qemu_exited = True  # the runner stops: swtpm is stopped with QEMU (or without)
        self._stopping = True

    def _remove_socket(self) -> None:
        if self._socket is None:
            return
        try:
            if remove_stale_socket(self._socket):
                _log.debug("removed the socket of the exited swtpm: %s", self._socket)
        except OSError as exc:
            _log.warning("swtpm's socket not removed: %s", exc)

    @handler
    def on_exited(self, event: ProcessExited) -> None:
        if event.name == ProcessRole.SWTPM:
            self._remove_socket()
            if self._exited is not None and not self._exited.done():
                self._exited.set_result(event)
            if self._ready and self._qemu_exited:
                _log.info("swtpm %s", event.status)
            elif self._ready:
                _log.warning("swtpm %s before QEMU: the guest's TPM no longer answers; "
                             "the VM keeps running", event.status)
        elif event.name == ProcessRole.QEMU:
            self._qemu_exited = True
            if self._exited is not None and not self._exited.done():
                # swtpm --terminate normally exits with QEMU's connection; make sure it does.
                self.fire(TerminateProcess(name=ProcessRole.SWTPM, grace=self.stop_grace))
