"""HeapTrim: once the VM runs, returns the start-up garbage to the kernel (``malloc_trim``).

Rendering, validation and the imports leave freed memory in the C heap that glibc keeps;
trimming it half a second after ``cont`` lowers the runner's resident size for the VM's
lifetime. Used by ``vmrunner run``; without glibc it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes

from vmrunner.components import BUS
from vmrunner.core import Channel, Component, handler
from vmrunner.events import VmContinued

DELAY = 0.5
"""Seconds after ``cont``: the start's last allocations are freed by then."""


def trim_heap() -> None:
    """Give free C heap memory back to the kernel (glibc only)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class HeapTrim(Component):
    """Calls :func:`trim_heap` once, :data:`DELAY` s after the VM was continued."""

    def __init__(self, channel: Channel | None = None, name: str | None = None) -> None:
        super().__init__(BUS if channel is None else channel, name)

    @handler
    def on_continued(self, event: VmContinued) -> None:
        self.schedule(DELAY, trim_heap)
