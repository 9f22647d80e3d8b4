"""Off-loop closing of inotify instances.

Closing an inotify descriptor that still had watches blocks in the kernel until an SRCU grace
period has passed: 0 to 120 ms (often about 20 ms) as measured here. On the event loop's thread
that stalls every component at once. :func:`close_soon` therefore hands the close to the loop's
default executor. The executor keeps the job alive and ``asyncio.run`` waits for it at the end
(``loop.shutdown_default_executor``), so no descriptor is leaked and no task reference is needed.

The caller must stop using the instance (``loop.remove_reader`` included) before calling it.
"""

from __future__ import annotations

import asyncio
import logging

from asyncinotify import Inotify

__all__ = ["close_soon"]

_log = logging.getLogger(__name__)


def _close_now(inotify: Inotify) -> None:
    """Runs in an executor thread; a failure is logged (nobody awaits the job)."""
    try:
        inotify.close()
    except OSError as exc:  # pragma: no cover - closing a valid descriptor does not fail
        _log.warning("closing inotify descriptor failed: %s", exc)


def close_soon(inotify: Inotify, loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Close ``inotify`` in the default executor of ``loop`` (default: the running loop)."""
    target = asyncio.get_running_loop() if loop is None else loop
    target.run_in_executor(None, _close_now, inotify)
