"""An independent QMP observer of the runner's QEMU, for live tests and benchmarks.

QEMU serves one client per monitor socket and the runner holds the one its template gives
it. :func:`observer_template` writes a copy of the standard VM type with a second QMP monitor
on a socket of the caller's choosing; a :class:`QmpObserver` connects to it and runs a
query every ``interval`` seconds, keeping each answer with the moment
(``time.perf_counter()``) it was first seen: :class:`BalloonObserver` (``query-balloon``),
:class:`TrayLockObserver` (``query-block``). That is QEMU's own view, taken without going
through the runner: what the runner reports can be timed against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from qemu.qmp import QMPClient

T = TypeVar("T")
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


class QmpObserver(Generic[T]):
    """Async context manager: runs ``command`` on ``socket`` every ``interval`` s and keeps
    ``extract(reply)`` (owns the polling task; it ends on exit or when QEMU goes away).

    ``samples`` holds ``(perf_counter, value)`` for each value seen, in order, a new entry
    only when the value changed."""

    def __init__(self, socket: Path, command: str, extract: Callable[[Any], T],
                 interval: float = 0.01) -> None:
        self.socket = socket
        self.command = command
        self.extract = extract
        self.interval = interval
        self.samples: list[tuple[float, T]] = []
        self._client = QMPClient("observer")
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def __aenter__(self) -> Self:
        await self._client.connect(str(self.socket))
        self._task = asyncio.create_task(self._poll(), name=f"observer-{self.command}")
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
            reply = await self._client.execute(self.command)
            now = time.perf_counter()
            value = self.extract(reply)
            if not self.samples or self.samples[-1][1] != value:
                self.samples.append((now, value))
                self._changed.set()
            await asyncio.sleep(self.interval)

    def first(self, accept: Callable[[T], bool], after: float) -> float | None:
        """When a value ``accept`` takes was first seen after ``after`` (one already there
        at ``after`` counts from ``after``)."""
        before = [s for s in self.samples if s[0] <= after]
        if before and accept(before[-1][1]):
            return after
        for seen, value in self.samples:
            if seen > after and accept(value):
                return seen
        return None

    async def wait_first(self, accept: Callable[[T], bool], after: float,
                         timeout: float) -> float:  # noqa: ASYNC109
        """:meth:`first`, waiting up to ``timeout`` s for it."""
        async with asyncio.timeout(timeout):
            while (seen := self.first(accept, after)) is None:
                if self._task is not None and self._task.done():
                    raise RuntimeError(f"the observer stopped: {self._task!r}")
                self._changed.clear()
                await self._changed.wait()
        return seen


class BalloonObserver(QmpObserver[int]):
    """The balloon's size (bytes) as ``query-balloon`` reports it."""

    def __init__(self, socket: Path, interval: float = 0.01) -> None:
        super().__init__(socket, "query-balloon", lambda reply: int(reply["actual"]), interval)


class TrayLockObserver(QmpObserver[bool | None]):
    """Whether the guest holds ``drive``'s tray locked (``query-block``; ``None``: no such
    drive)."""

    def __init__(self, socket: Path, drive: str, interval: float = 0.01) -> None:
        def locked(reply: Any) -> bool | None:
            return next((bool(b.get("locked")) for b in reply if b.get("qdev") == drive), None)

        super().__init__(socket, "query-block", locked, interval)
