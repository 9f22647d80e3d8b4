"""``vmrunner run``: build the standard tree, install the signal handlers, run it.

The tree is built by :class:`~vmrunner.daemon.builder.RunnerBuilder` exactly as for an
embedding program (``RunnerBuilder(path).build()`` then ``run(root)``): the file is read and
validated once, by the builder; every start step is a component's (docs/design/runner.md, "Start
sequence"). The CLI adds only what belongs to a process of its own: the signal handlers and
:class:`~vmrunner.components.startup_memory.StartupMemory`.

SIGTERM and SIGINT become ``TerminationSignal`` events (the Runner turns the first into
``Stop``; see docs/design/runner.md for repeats). SIGHUP re-reads the configuration file
(``ReloadConfiguration``, handled by the ConfigWatcher) and SIGUSR1 logs the status
(``GET /status`` as ``vmrunner status`` prints it); neither ends the runner. The process exit
code is what ``run()`` returns.

``PYDANTIC_DISABLE_PLUGINS=__all__`` is set for this process unless the environment says
otherwise (pydantic's documented switch; looking for plugins reads the metadata of every
installed distribution, and the runner's models have no use for them).

The process ends through :func:`exit_without_teardown` once the event loop is closed: by
then every child is reaped and every task ended, and the interpreter's own teardown
(finalizing tens of thousands of start-up objects) would add ~40 ms to the stop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from vmrunner.components.exit_codes import ExitCode

if TYPE_CHECKING:
    from vmrunner.core import Component

_log = logging.getLogger("vmrunner.run")

TERMINATION_SIGNALS = (signal.SIGTERM, signal.SIGINT)
"""Become ``TerminationSignal`` events."""
OTHER_SIGNALS = (signal.SIGHUP, signal.SIGUSR1)
"""SIGHUP: re-read the configuration; SIGUSR1: log the status. Neither ends the runner."""

STATUS_DUMP_TIMEOUT = 5.0
"""Seconds the SIGUSR1 status dump waits for the components' answers."""


async def log_status(root: Component) -> None:
    """Log the status document of the tree ``root`` (as ``vmrunner status`` shows it) at
    INFO: the SIGUSR1 dump. Uses the tree's ApiServer (for its event log) if there is one."""
    import asyncio

    from vmrunner.api.client import format_status
    from vmrunner.api.eventlog import EventLog
    from vmrunner.api.server import ApiServer
    from vmrunner.api.status import Status, ask

    server = next((c for c in root.walk() if isinstance(c, ApiServer)), None)
    try:
        async with asyncio.timeout(STATUS_DUMP_TIMEOUT):
            status = (await server.status() if server is not None
                      else Status(await ask(root), EventLog()))
    except TimeoutError:
        _log.warning("SIGUSR1 received: no status (the components did not answer within "
                     "%g s)", STATUS_DUMP_TIMEOUT)
        return
    _log.info("SIGUSR1 received: status\n%s", format_status(status.document()))


async def run_file(config_file: Path, *, strict: bool = False,
                   early_signals: list[int] | None = None,
                   kube: Mapping[str, Any] | None = None) -> int:
    """Run the VM described by ``config_file`` until it stops; return the exit code.

    ``early_signals``: signals recorded before the event loop's handlers were installed (by
    :func:`main`); if there is a termination signal (SIGTERM/SIGINT) among them, nothing is
    started. An early SIGHUP or SIGUSR1 is only logged (the configuration is read now anyway).
    ``kube``: ``/Runner/Kubernetes`` keys from the command line (see RunnerBuilder).
    """
    import asyncio

    from vmrunner.components.startup_memory import StartupMemory
    from vmrunner.daemon.builder import ConfigInvalid, RunnerBuilder

    # qemu.qmp logs every protocol step and repeats our errors; our own logs suffice.
    debug = logging.getLogger().isEnabledFor(logging.DEBUG)
    logging.getLogger("qemu.qmp").setLevel(logging.WARNING if debug else logging.CRITICAL)
    try:
        runner = (RunnerBuilder(config_file, strict=strict, kube=kube)
                  .add(StartupMemory()).build())
    except ConfigInvalid as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    _log.debug("configuration read and validated, tree built")
    from vmrunner.core import run
    from vmrunner.events import TerminationSignal

    loop = asyncio.get_running_loop()

    from vmrunner.core import ReloadConfiguration

    dumps: set[asyncio.Task[None]] = set()

    def on_signal(signum: int) -> None:
        runner.fire(TerminationSignal(signal=signum))

    def on_hup() -> None:
        _log.info("SIGHUP received: re-reading the configuration file %s", config_file)
        runner.fire(ReloadConfiguration(reason="SIGHUP"))

    def on_usr1() -> None:
        task = asyncio.ensure_future(log_status(runner))
        dumps.add(task)
        task.add_done_callback(dumps.discard)

    for sig in TERMINATION_SIGNALS:
        loop.add_signal_handler(sig, on_signal, int(sig))
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    loop.add_signal_handler(signal.SIGUSR1, on_usr1)
    try:
        for signum in early_signals or ():
            if signum not in TERMINATION_SIGNALS:
                _log.info("%s received before the start: ignored",
                          signal.Signals(signum).name)
        terminating = [s for s in early_signals or () if s in TERMINATION_SIGNALS]
        if terminating:
            _log.info("%s received before the start: nothing started",
                      signal.Signals(terminating[0]).name)
            return ExitCode.OK
        code = await run(runner)
        _log.info("exiting with code %d", code)
        return code
    finally:
        for sig in (*TERMINATION_SIGNALS, *OTHER_SIGNALS):
            loop.remove_signal_handler(sig)
        for sig in OTHER_SIGNALS:  # a late one must not end the process with its own code
            signal.signal(sig, signal.SIG_IGN)
        for task in list(dumps):
            task.cancel()


def main(config_file: Path, *, strict: bool = False,
         kube: Mapping[str, Any] | None = None) -> NoReturn:
    """The ``run`` subcommand; ends the process (:func:`exit_without_teardown`).

    SIGTERM/SIGINT/SIGHUP/SIGUSR1 are caught from the first moment (recorded until the event
    loop takes over), so a signal during the imports ends the runner cleanly (SIGTERM/SIGINT)
    or is logged (SIGHUP/SIGUSR1) instead of killing it.
    """
    early: list[int] = []
    for sig in (*TERMINATION_SIGNALS, *OTHER_SIGNALS):
        signal.signal(sig, lambda signum, _frame: early.append(signum))
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    import asyncio

    code = asyncio.run(run_file(config_file, strict=strict, early_signals=early, kube=kube))
    exit_without_teardown(code)


def exit_without_teardown(code: int) -> NoReturn:
    """End the process with ``code`` after flushing the logs and standard streams, skipping
    the interpreter's teardown (the one place vmrunner does this; for ``vmrunner run`` only,
    after ``asyncio.run`` has closed the loop with every child reaped)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(int(code))
