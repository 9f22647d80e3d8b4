"""``vmrunner run``: build the standard tree, install the signal handlers, run it.

SIGTERM and SIGINT become ``TerminationSignal`` events (the Runner turns the first into
``Stop``; see docs/runner.md for repeats). The process exit code is what ``run()`` returns.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

from vmrunner.exit_codes import ExitCode

_log = logging.getLogger("vmrunner.run")


async def run_file(config_file: Path, *, strict: bool = False) -> int:
    """Run the VM described by ``config_file`` until it stops; return the exit code."""
    from vmrunner.components.standard import ConfigInvalid, RunnerBuilder
    from vmrunner.core import run
    from vmrunner.events import TerminationSignal

    # qemu.qmp logs every protocol step; our own traffic logger (DEBUG) is enough.
    logging.getLogger("qemu.qmp").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        runner = RunnerBuilder(config_file, strict=strict).build()
    except ConfigInvalid as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    loop = asyncio.get_running_loop()
    def on_signal(signum: int) -> None:
        runner.fire(TerminationSignal(signal=signum))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, int(sig))
    try:
        return await run(runner)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def main(config_file: Path, *, strict: bool = False) -> int:
    """The ``run`` subcommand."""
    return asyncio.run(run_file(config_file, strict=strict))
