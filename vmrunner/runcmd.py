"""``vmrunner run``: build the standard tree, install the signal handlers, run it.

SIGTERM and SIGINT become ``TerminationSignal`` events (the Runner turns the first into
``Stop``; see docs/runner.md for repeats). The process exit code is what ``run()`` returns.

Footprint (docs/runner.md, "Performance"): Mako would pull in pygments (only used for its
HTML error pages: ~5 MiB, ~25 ms), so the runner process blocks that import; and the process
ends with ``os._exit`` once the logs are flushed, skipping the interpreter's teardown.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from vmrunner.exit_codes import ExitCode

_log = logging.getLogger("vmrunner.run")
_UNUSED_MODULES = ("pygments",)


async def run_file(config_file: Path, *, strict: bool = False) -> int:
    """Run the VM described by ``config_file`` until it stops; return the exit code."""
    import asyncio
    import signal

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


def main(config_file: Path, *, strict: bool = False, fast_exit: bool = True) -> int:
    """The ``run`` subcommand; with ``fast_exit`` the process ends here (``os._exit``)."""
    for name in _UNUSED_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    import asyncio

    code = asyncio.run(run_file(config_file, strict=strict))
    if fast_exit:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(code))
    return code
