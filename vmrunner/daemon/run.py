"""``vmrunner run``: build the standard tree, install the signal handlers, run it.

The tree is built by :class:`~vmrunner.daemon.builder.RunnerBuilder` exactly as for an
embedding program (``RunnerBuilder(path).build()`` then ``run(root)``): the file is read and
validated once, by the builder; every start step is a component's (docs/runner.md, "Start
sequence"). The CLI adds only what belongs to a process of its own: the signal handlers and
:class:`~vmrunner.components.startup_memory.StartupMemory`.

SIGTERM and SIGINT become ``TerminationSignal`` events (the Runner turns the first into
``Stop``; see docs/runner.md for repeats). The process exit code is what ``run()`` returns.

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
import sys
from pathlib import Path
from typing import NoReturn

from vmrunner.components.exit_codes import ExitCode

_log = logging.getLogger("vmrunner.run")


async def run_file(config_file: Path, *, strict: bool = False,
                   early_signals: list[int] | None = None) -> int:
    """Run the VM described by ``config_file`` until it stops; return the exit code.

    ``early_signals``: termination signals recorded before the event loop's handlers were
    installed (by :func:`main`); if there are any, nothing is started.
    """
    import asyncio
    import signal

    from vmrunner.components.startup_memory import StartupMemory
    from vmrunner.daemon.builder import ConfigInvalid, RunnerBuilder

    # qemu.qmp logs every protocol step and repeats our errors; our own logs suffice.
    debug = logging.getLogger().isEnabledFor(logging.DEBUG)
    logging.getLogger("qemu.qmp").setLevel(logging.WARNING if debug else logging.CRITICAL)
    try:
        runner = RunnerBuilder(config_file, strict=strict).add(StartupMemory()).build()
    except ConfigInvalid as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    _log.debug("configuration read and validated, tree built")
    from vmrunner.core import run
    from vmrunner.events import TerminationSignal

    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        runner.fire(TerminationSignal(signal=signum))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, int(sig))
    try:
        if early_signals:
            _log.info("%s received before the start: nothing started",
                      signal.Signals(early_signals[0]).name)
            return ExitCode.OK
        code = await run(runner)
        _log.info("exiting with code %d", code)
        return code
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def main(config_file: Path, *, strict: bool = False) -> NoReturn:
    """The ``run`` subcommand; ends the process (:func:`exit_without_teardown`).

    SIGTERM/SIGINT are caught from the first moment (recorded until the event loop takes
    over), so a signal during the imports ends the runner cleanly instead of killing it.
    """
    import signal

    early: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: early.append(signum))
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    import asyncio

    code = asyncio.run(run_file(config_file, strict=strict, early_signals=early))
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
