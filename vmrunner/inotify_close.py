"""Closing inotify instances without stalling the event loop.

Closing an inotify descriptor that had watches waits in the kernel for an SRCU grace period
(measured here: 0 to 120 ms, often ~20 ms). Done on the event loop's thread, that stalls every
component, e.g. the QMP connection during the start. :func:`close_soon` hands the close to the
running loop's default executor instead; the executor owns the job and ``asyncio.run``
(``loop.shutdown_default_executor``) waits for it at the end of the run.
"""

from __future__ import annotations

import asyncio
import logging

from asyncinotify import Inotify

_log = logging.getLogger(__name__)


def _close(inotify: Inotify) -> None:
    try:
        inotify.close()
    except OSError as exc:  # pragma: no cover - close of a valid descriptor
        _log.warning("closing an inotify descriptor failed: %s", exc)


def close_soon(inotify: Inotify, loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Close ``inotify`` in ``loop``'s (default: the running loop's) default executor."""
    (loop or asyncio.get_running_loop()).run_in_executor(None, _close, inotify)
