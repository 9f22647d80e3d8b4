"""first_of: the first of several awaitables wins, the losers are cancelled and waited for."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from vmrunner.core.waiting import first_of


class _Sleeper:
    """A coroutine factory that records how it ended."""

    def __init__(self) -> None:
        self.started = False
        self.cancelled = False
        self.cleaned_up = False

    async def sleep(self, seconds: float, result: object = None) -> object:
        self.started = True
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.cancelled = True
            await asyncio.sleep(0)  # cleanup that itself awaits
            self.cleaned_up = True
            raise
        return result


async def test_the_first_wins_and_the_losers_are_cancelled_and_awaited() -> None:
    slow, fast = _Sleeper(), _Sleeper()
    winner = asyncio.ensure_future(fast.sleep(0.01, "fast"))
    done = await first_of(slow.sleep(10), winner)
    assert done == {winner}
    assert winner.result() == "fast"
    assert slow.started and slow.cancelled and slow.cleaned_up  # finished before we returned


async def test_a_task_passed_in_that_loses_is_cancelled_too() -> None:
    loser = asyncio.ensure_future(asyncio.sleep(10))
    done = await first_of(loser, asyncio.sleep(0.01))
    assert loser not in done
    assert loser.cancelled()


async def test_a_shielded_future_survives_the_race() -> None:
    shared: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    await first_of(asyncio.shield(shared), asyncio.sleep(0.01))
    assert not shared.done()
    shared.set_result("later")  # still usable by others
    done = await first_of(asyncio.shield(shared), asyncio.sleep(10))
    assert [f.result() for f in done] == ["later"]


async def test_timeout_returns_nothing_done_and_cancels_everything() -> None:
    a, b = _Sleeper(), _Sleeper()
    started = time.monotonic()
    done = await first_of(a.sleep(10), b.sleep(10), timeout=0.05)
    assert done == set()
    assert 0.04 <= time.monotonic() - started < 5
    assert a.cleaned_up and b.cleaned_up


async def test_zero_or_negative_timeout_polls_what_is_already_done() -> None:
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    ready.set_result(1)
    assert await first_of(ready, asyncio.sleep(10), timeout=-1) == {ready}
    pending = asyncio.ensure_future(asyncio.sleep(10))
    assert await first_of(pending, timeout=0) == set()
    assert pending.cancelled()


async def test_an_already_set_event_wins_without_a_timeout() -> None:
    event = asyncio.Event()
    event.set()
    waiter = asyncio.ensure_future(event.wait())
    assert await first_of(waiter, asyncio.sleep(10), timeout=0) == {waiter}


async def test_the_winners_exception_is_returned_not_raised() -> None:
    async def fail() -> None:
        raise OSError("no such socket")

    failing = asyncio.ensure_future(fail())
    done = await first_of(failing, asyncio.sleep(10))
    assert done == {failing}
    assert isinstance(failing.exception(), OSError)


async def test_a_loser_failing_while_cancelled_is_dropped(caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    async def fails_on_cancel() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    with caplog.at_level(logging.DEBUG, logger="vmrunner.core.waiting"):
        done = await first_of(fails_on_cancel(), asyncio.sleep(0.01))
    assert len(done) == 1
    assert "cleanup failed" in caplog.text


async def test_caller_cancellation_propagates_and_cancels_every_waiter() -> None:
    a, b = _Sleeper(), _Sleeper()
    racing = asyncio.ensure_future(first_of(a.sleep(10), b.sleep(10), timeout=20))
    await asyncio.sleep(0.01)
    assert a.started and b.started
    racing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await racing
    assert racing.cancelled()
    assert a.cleaned_up and b.cleaned_up


async def test_caller_cancellation_is_not_swallowed_by_a_winner_in_the_same_step() -> None:
    event = asyncio.Event()

    async def race() -> set[asyncio.Future[object]]:
        return await first_of(event.wait(), asyncio.sleep(10))

    racing = asyncio.ensure_future(race())
    await asyncio.sleep(0.01)
    event.set()
    racing.cancel()  # cancelled while its winner completes
    with pytest.raises(asyncio.CancelledError):
        await racing


async def test_no_awaitables_is_an_error_and_a_bad_one_leaks_nothing() -> None:
    with pytest.raises(ValueError):
        await first_of()
    sleeper = _Sleeper()
    coroutine = sleeper.sleep(10)
    with pytest.raises(TypeError):
        await first_of(asyncio.sleep(10), 42, coroutine)  # type: ignore[arg-type]
    assert coroutine.cr_frame is None  # closed, never started
    assert not sleeper.started


async def test_caller_cancelled_while_the_losers_clean_up_still_gets_cancelled() -> None:
    cleaning = asyncio.Event()

    async def slow_cleanup() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cleaning.set()
            await asyncio.sleep(0.05)
            raise

    racing = asyncio.ensure_future(first_of(slow_cleanup(), asyncio.sleep(0.01)))
    await cleaning.wait()  # the winner is in, the loser is being cancelled
    racing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await racing
