"""``vmrunner run``: build the standard tree, install the signal handlers, run it.

SIGTERM and SIGINT become ``TerminationSignal`` events (the Runner turns the first into
``Stop``; see docs/runner.md for repeats). The process exit code is what ``run()`` returns.

Footprint (docs/runner.md, "Performance"), for the ``vmrunner run`` process only:

* :func:`slim_imports` keeps out what the runner never uses but its libraries would load:
  pygments (Mako's HTML error pages, ~5 MiB), asyncio's TLS support and OpenSSL's hashes
  (libssl/libcrypto, ~4 MiB; the runner only speaks over unix sockets, and ``hashlib``
  falls back to Python's built-in SHA-2). ``qemu.qmp`` imports ``ssl.SSLContext`` for its
  optional TLS parameter, so a stub ``ssl`` module with just that name stands in.
* pydantic plugins are not loaded (``PYDANTIC_DISABLE_PLUGINS=__all__`` unless the
  environment says otherwise): looking for them reads the metadata of every installed
  distribution (~15 ms with a few hundred), and the runner's models have no use for them;
* QEMU is started (paused) as soon as the ``/Runner`` configuration is valid and the VM is
  prepared, and initialises while the component tree is imported and built
  (:mod:`vmrunner.daemon.prelaunch`);
* once the VM runs, the start-up's garbage is collected, the survivors frozen and the freed
  heap returned to the kernel (:mod:`vmrunner.components.startup_memory`);
* the process ends with ``os._exit`` once ``run()`` has returned (every child reaped, every
  task cancelled) and the logs are flushed, skipping the event loop's and the interpreter's
  teardown (~30 ms with pydantic loaded).
"""

from __future__ import annotations

import logging
import os
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING

from vmrunner.daemon.exit_codes import ExitCode

if TYPE_CHECKING:
    from vmrunner.components.runner import Runner
    from vmrunner.config.validate import Validation
    from vmrunner.daemon.prelaunch import Prelaunched

_log = logging.getLogger("vmrunner.run")
_UNUSED_MODULES = ("pygments", "_hashlib")


def slim_imports() -> None:
    """Keep unused heavy modules out of this process (call before anything imports asyncio;
    does nothing if asyncio or ssl is already loaded)."""
    if "asyncio" in sys.modules or "ssl" in sys.modules:
        return
    for name in _UNUSED_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    sys.modules["ssl"] = None  # type: ignore[assignment]
    import asyncio  # noqa: F401 - binds ssl = None in asyncio's modules

    stub = types.ModuleType("ssl", "vmrunner stub: TLS is never used by the runner")
    stub.SSLContext = type("SSLContext", (), {})  # type: ignore[attr-defined]
    sys.modules["ssl"] = stub


def _build_tree(config_file: Path, strict: bool, validation: Validation,
                early: Prelaunched | None) -> Runner:
    """The standard tree plus StartupMemory, given what was prepared and started early."""
    from vmrunner.components.startup_memory import StartupMemory
    from vmrunner.daemon.builder import RunnerBuilder
    from vmrunner.vmtypes.launch import launch_plan

    builder = RunnerBuilder(config_file, strict=strict).add(StartupMemory())
    if early is None:
        return builder.build(validation=validation)
    return builder.build(validation=validation,
                         plan=launch_plan(early.config, early.plan, early.rendered),
                         adopt=[early.qemu])


async def run_file(config_file: Path, *, strict: bool = False,
                   early_signals: list[int] | None = None) -> int:
    """Run the VM described by ``config_file`` until it stops; return the exit code.

    ``early_signals``: termination signals recorded before the event loop's handlers were
    installed (by :func:`main`); if there are any, nothing is started (a QEMU started early
    meanwhile is terminated before the guest ran).
    """
    import asyncio
    import signal

    from vmrunner.config.validate import load_config
    from vmrunner.daemon.prelaunch import prelaunch

    # qemu.qmp logs every protocol step and repeats our errors; our own logs suffice.
    debug = logging.getLogger().isEnabledFor(logging.DEBUG)
    logging.getLogger("qemu.qmp").setLevel(logging.WARNING if debug else logging.CRITICAL)
    validation = load_config(config_file, strict=strict)
    _log.debug("configuration read and validated")
    if not validation.ok or validation.config is None:
        for problem in validation.errors:
            print(problem, file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    # QEMU initialises while the component tree is imported and built (vmrunner.daemon.prelaunch).
    early = None if early_signals else await prelaunch(validation.config)
    try:
        runner = _build_tree(config_file, strict, validation, early)
    except BaseException:
        if early is not None:
            await early.qemu.terminate()
        raise
    from vmrunner.core import run
    from vmrunner.events import TerminationSignal

    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        runner.fire(TerminationSignal(signal=signum))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, int(sig))
    if early_signals:
        if early is not None:
            await early.qemu.terminate()
        _log.info("%s received before the start: %s", signal.Signals(early_signals[0]).name,
                  "nothing started" if early is None else "QEMU stopped before the guest ran")
        return ExitCode.OK
    try:
        code = await run(runner)
        _log.info("exiting with code %d", code)
        return code
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def main(config_file: Path, *, strict: bool = False, fast_exit: bool = True) -> int:
    """The ``run`` subcommand; with ``fast_exit`` the process ends here (``os._exit``).

    SIGTERM/SIGINT are caught from the first moment (recorded until the event loop takes
    over), so a signal during the imports ends the runner cleanly instead of killing it.
    """
    import signal

    early: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: early.append(signum))
    slim_imports()
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    import asyncio

    if not fast_exit:
        return asyncio.run(run_file(config_file, strict=strict, early_signals=early))
    # run() has reaped every child and cancelled the tree's tasks when it returns: skip the
    # event loop's and the interpreter's teardown.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    code = loop.run_until_complete(run_file(config_file, strict=strict, early_signals=early))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code))
