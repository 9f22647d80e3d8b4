"""StartupMemory: keeps the start-up's objects out of the collector's work (added by
``vmrunner run``).

The start allocates a lot once (imports, pydantic schemas, the component tree) and little
after; those objects live as long as the runner. This component:

1. at ``Start``, before any other ``Start`` handler (the tree is built, its modules are
   imported), freezes every object tracked so far (``gc.freeze``): no later collection walks
   them, so the collection below only sees what the start itself allocated;
2. half a second after ``cont``, collects once (the start's cyclic garbage), freezes what
   survived and returns the freed C heap to the kernel (``malloc_trim``; glibc only).

Measured (docs/design/runner.md, "Performance"): a full collection after the start walks
~40 000 objects (~20 ms of CPU on the development machine) and frees none of the imports'
objects; with the freeze at ``Start`` the collection after ``cont`` costs ~1 ms. The frozen
start-up objects also keep the stop short (~35 ms against ~160 ms of stop overhead without).
Switching the collector off during the start was measured and dropped: no start-up time
gained beyond the noise (±15 ms), 0.4 MiB more resident afterwards.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc

from vmrunner.components.base import BusComponent
from vmrunner.core import Channel, Start, handler
from vmrunner.events import VmContinued

DELAY = 0.5
"""Seconds after ``cont``: the start's last allocations are freed by then."""
FREEZE_PRIORITY = 1_000_000
"""Above every other ``Start`` handler (the ConfigWatcher's initial delivery is 999 999)."""


def trim_heap() -> None:
    """Give free C heap memory back to the kernel (glibc only)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def settle() -> None:
    """Collect, freeze the survivors, trim the heap."""
    gc.collect()
    gc.freeze()
    trim_heap()


class StartupMemory(BusComponent):
    """Freezes the built tree's objects at ``Start``; calls :func:`settle` once, :data:`DELAY`
    s after the VM was continued."""

    def __init__(self, channel: Channel | None = None, name: str | None = None) -> None:
        super().__init__(channel, name)

    @handler(priority=FREEZE_PRIORITY)
    def on_start(self, event: Start) -> None:
        gc.freeze()

    @handler
    def on_continued(self, event: VmContinued) -> None:
        self.schedule(DELAY, settle)
