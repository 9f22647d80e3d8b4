"""Waiting for the first of several things, with a timeout: :func:`first_of`.

Components often race one wait against others (QMP's connection against QEMU's exit,
a reply against a deadline, a socket against its process's exit). ``asyncio.wait`` leaves the
losers running; :func:`first_of` cancels them and waits until they have ended.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable
from typing import Any

_log = logging.getLogger(__name__)


async def first_of(*aws: Awaitable[Any],
                   timeout: float | None = None,  # noqa: ASYNC109 - returns, never raises
                   ) -> set[asyncio.Future[Any]]:
    """Wait until the first of ``aws`` completes, or ``timeout`` seconds have passed.

    Returns the futures that completed (several, if they completed in the same loop
    iteration; none after the timeout). Their outcome is not raised: look at ``result()`` or
    ``exception()``. Pass a future or task instead of a coroutine to recognise it in the
    returned set (a coroutine is run as a task of its own).

    Every other awaitable is cancelled and waited for before ``first_of`` returns (what the
    losers raise meanwhile is logged at DEBUG and dropped). That includes futures and tasks
    passed in: wrap one that must survive the race in ``asyncio.shield()``.

    When the caller is cancelled, all of them are cancelled and waited for, and the
    ``CancelledError`` propagates. A ``timeout`` of zero or less polls once.

    :raise ValueError: when ``aws`` is empty.
    """
    if not aws:
        raise ValueError("first_of() needs at least one awaitable")
    futures: list[asyncio.Future[Any]] = []
    try:
        for aw in aws:
            futures.append(asyncio.ensure_future(aw))
    except BaseException:
        for aw in aws[len(futures):]:
            if inspect.iscoroutine(aw):
                aw.close()  # never started: no "never awaited" warning
        await _cancel(futures)
        raise
    try:
        done, _ = await asyncio.wait(
            futures, timeout=None if timeout is None else max(0.0, timeout),
            return_when=asyncio.FIRST_COMPLETED)
    finally:
        await _cancel(futures)
    return done


async def _cancel(futures: list[asyncio.Future[Any]]) -> None:
    """Cancel the futures that are not done and wait until they are."""
    losers = [f for f in futures if not f.done()]
    if not losers:
        return
    for loser in losers:
        loser.cancel()
    await asyncio.wait(losers)
    for loser in losers:
        if not loser.cancelled() and loser.exception() is not None:
            _log.debug("a waiter that lost the race failed: %r", loser.exception())
