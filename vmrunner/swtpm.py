"""Run swtpm for a VM's TPM: start it before QEMU, know when it is ready, stop it after.

Readiness is the control socket appearing (watched with inotify), as in libvirt, Incus
and Lima. A stale socket from an earlier run is removed first. If swtpm exits or stays
silent, the error carries its stderr. The argv comes from the template; it is executed
without a shell and the process dies with the runner (see :mod:`vmrunner.proc.child`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from vmrunner.proc import (
    ChildProcess,
    ExitStatus,
    ProcessExitedError,
    ProcessStartError,
    remove_stale_socket,
    spawn,
    wait_for_socket,
)


class SwtpmError(Exception):
    """swtpm could not be started or did not become ready; the text has its stderr."""


class Swtpm:
    """A started swtpm; create it with :meth:`start`."""

    def __init__(self, process: ChildProcess, ctrl_socket: Path) -> None:
        self.process = process
        self.ctrl_socket = ctrl_socket

    @property
    def running(self) -> bool:
        """True until swtpm has exited (with ``--terminate`` it exits after QEMU)."""
        return self.process.running

    @classmethod
    async def start(
        cls, argv: Sequence[str], ctrl_socket: str | os.PathLike[str], *,
        ready_timeout: float = 10.0, name: str = "swtpm",
    ) -> Swtpm:
        """Remove a stale ``ctrl_socket``, run ``argv``, return once the socket exists.

        :raise SwtpmError: when swtpm cannot be executed, exits early, or does not create
            ``ctrl_socket`` within ``ready_timeout`` seconds (it is then killed).
        """
        sock = Path(ctrl_socket)
        if not sock.parent.is_dir():
            raise SwtpmError(f"the directory of swtpm's control socket {sock} does not exist")
        try:
            if remove_stale_socket(sock):
                _log(name).info("removed stale swtpm control socket %s", sock)
        except FileExistsError as e:
            raise SwtpmError(str(e)) from e
        try:
            process = await spawn(name, argv)
        except ProcessStartError as e:
            raise SwtpmError(str(e)) from e
        try:
            async with asyncio.timeout(ready_timeout):
                await wait_for_socket(sock, process=process)
        except ProcessExitedError as e:
            raise SwtpmError(f"swtpm failed to start: {e}") from e
        except TimeoutError as e:
            await process.terminate(grace=1.0)
            tail = process.stderr_excerpt()
            raise SwtpmError(
                f"swtpm did not create its control socket {sock} within {ready_timeout} s"
                + (f"; its last output:\n{tail}" if tail else "")) from e
        except BaseException:
            await process.kill()
            raise
        return cls(process, sock)

    async def wait(self) -> ExitStatus:
        """Wait until swtpm exits."""
        return await self.process.wait()

    async def stop(self, grace: float = 2.0) -> ExitStatus:
        """Stop swtpm (call it after QEMU has exited): SIGTERM, then SIGKILL after ``grace``.

        If it already exited by itself (``--terminate``), just report how. A socket file
        left behind is removed.
        """
        status = await self.process.terminate(grace=grace)
        with contextlib.suppress(FileExistsError, OSError):
            remove_stale_socket(self.ctrl_socket)
        return status


def _log(name: str) -> logging.Logger:
    return logging.getLogger(f"vmrunner.proc.{name}")
