"""An independent QMP observer of the runner's QEMU, for live tests and benchmarks.

QEMU serves one client per monitor socket and the runner holds the one its template gives
it. :func:`observer_template` writes a copy of the standard VM type with a second QMP monitor
on a socket of the caller's choosing; :class:`BalloonObserver` connects to it and asks
``query-balloon`` every ``interval`` seconds, keeping each size with the moment
(``time.perf_counter()``) it was first seen. That is QEMU's own view, taken without going
through the runner: what the runner reports can be timed against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from qemu.qmp import QMPClient

STANDARD_TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "Standard-VM.yaml.mako"
_MONITOR_LINE = "    - chardev=charmonitor,id=monitor,mode=control\n"


def observer_template(directory: Path, socket: Path, name: str = "Observed-VM") -> Path:
    """Write ``directory/<name>.yaml.mako``: the standard VM type plus a QMP monitor on
    ``socket`` (QEMU listens, no wait). Use it with the ``/Runner`` keys ``template`` and
    ``templateDirs``."""
    text = STANDARD_TEMPLATE.read_text()
    if _MONITOR_LINE not in text or "," in str(socket):
        raise ValueError(f"cannot add an observer monitor on {socket} to {STANDARD_TEMPLATE}")
    extra = (f"    - -chardev\n    - socket,id=charobserver,path={socket},server=on,wait=off\n"
             "    - -mon\n    - chardev=charobserver,id=observer,mode=control\n")
    path = directory / f"{name}.yaml.mako"
    path.write_text(text.replace(_MONITOR_LINE, _MONITOR_LINE + extra))
    return path


class BalloonObserver:
    """Async context manager: polls ``query-balloon`` on ``socket`` every ``interval`` s
    (owns the polling task; it ends on exit or when QEMU goes away).

    ``samples`` holds ``(perf_counter, actual)`` for each size seen, in order, a new entry
    only when the size changed."""

    def __init__(self, socket: Path, interval: float = 0.01) -> None:
        self.socket = socket
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._client = QMPClient("observer")
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def __aenter__(self) -> BalloonObserver:
        await self._client.connect(str(self.socket))
        self._task = asyncio.create_task(self._poll(), name="balloon-observer")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self._client.disconnect()

    async def _poll(self) -> None:
        while True:
            reply = await self._client.execute("query-balloon")
            now = time.perf_counter()
            actual = int(reply["actual"])  # type: ignore[index]
            if not self.samples or self.samples[-1][1] != actual:
                self.samples.append((now, actual))
                self._changed.set()
            await asyncio.sleep(self.interval)

    def first(self, accept: Callable[[int], bool], after: float) -> float | None:
        """When a size for which ``accept(actual)`` is true was first seen after ``after``
        (a size already there at ``after`` counts from ``after``)."""
        before = [s for s in self.samples if s[0] <= after]
        if before and accept(before[-1][1]):
            return after
        for seen, actual in self.samples:
            if seen > after and accept(actual):
                return seen
        return None

    async def wait_first(self, accept: Callable[[int], bool], after: float,
                         timeout: float) -> float:  # noqa: ASYNC109
        """:meth:`first`, waiting up to ``timeout`` s for it."""
        async with asyncio.timeout(timeout):
            while (seen := self.first(accept, after)) is None:
                if self._task is not None and self._task.done():
                    raise RuntimeError(f"the observer stopped: {self._task!r}")
                self._changed.clear()
                await self._changed.wait()
        return seen
