"""StartupMemory: the objects of the built tree are frozen before any other ``Start`` handler
runs, and what the start allocated is collected and frozen half a second after ``cont``.

``gc.freeze`` is process-wide: each test unfreezes again (the frozen objects are only moved
back into the collector's oldest generation)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from vmrunner.components.base import BusComponent
from vmrunner.components.startup_memory import StartupMemory
from vmrunner.core import Start, handler
from vmrunner.core.config.watcher import INITIAL_PRIORITY
from vmrunner.events import VmContinued


class FreezeProbe(BusComponent):
    """Records the frozen count when its ``Start`` handler runs at the ConfigWatcher's
    priority (the highest of the standard tree besides StartupMemory's)."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen_at_start: int | None = None

    @handler(priority=INITIAL_PRIORITY)
    def on_start(self, event: Start) -> None:
        self.frozen_at_start = gc.get_freeze_count()


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


async def test_frozen_before_the_other_start_handlers() -> None:
    root = BusComponent(name="Root")
    probe = root.attach(FreezeProbe())
    root.attach(StartupMemory())
    assert gc.get_freeze_count() == 0
    await root.fire(Start())
    assert probe.frozen_at_start is not None and probe.frozen_at_start > 0


async def test_settled_after_cont() -> None:
    root = BusComponent(name="Root")
    root.attach(StartupMemory())
    await root.fire(Start())
    at_start = gc.get_freeze_count()
    allocated_later = [[index] for index in range(1000)]  # tracked containers, still alive
    await root.fire(VmContinued())
    # (frozen objects that die leave the count: it may shrink a little meanwhile)
    assert gc.get_freeze_count() < at_start + len(allocated_later), "settled before the delay"
    for _ in range(100):  # DELAY (0.5 s), then the settle
        await asyncio.sleep(0.05)
        if gc.get_freeze_count() >= at_start + len(allocated_later):
            break
    assert gc.get_freeze_count() >= at_start + len(allocated_later)
