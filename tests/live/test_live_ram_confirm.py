"""A balloon change is confirmed as soon as QEMU shows it (issue 16, item 5), on the real
test guest under the standard RamController.

QEMU sends ``BALLOON_CHANGE`` at most once a second, so a controller waiting for the event
alone reports a reached size a uniformly spread 0 to 1 s after QEMU has it. The reference here
is independent of the runner: a second QMP monitor (:mod:`vmrunner.testing.observer`) asks
``query-balloon`` every 10 ms, and the runner's ``RamChange`` (applied) must come within
300 ms of the first answer at the target in each of four changes. Event-only confirmation
passes one round with a chance of ~0.3, all four with ~1 %; the polling (50 ms) passes with
a wide margin on the loaded 2 cores (median lag 29 ms, p95 50 ms in the benchmark).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vmrunner.components import BUS
from vmrunner.components.ram import RamController
from vmrunner.config.sizes import MIB, ram_tolerance
from vmrunner.core import Component, handler
from vmrunner.events import ExecuteQmp, Outcome, QmpBalloonChange, RamChange, VmContinued
from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.inproc import InProcessRunner
from vmrunner.testing.observer import BalloonObserver, observer_template
from vmrunner.testing.runnerproc import guest_config, scratch_dir

pytestmark = pytest.mark.guest

BOOT = 60.0
LAG_BOUND = 0.3
"""Seconds the report may come after QEMU's value (event only: uniform over 0 to 1 s)."""


class Stamps(Component):
    """Notes when ``RamChange`` and ``BALLOON_CHANGE`` are dispatched (perf_counter)."""

    def __init__(self) -> None:
        super().__init__(BUS)
        self.reports: list[tuple[float, RamChange]] = []
        self.balloon: list[tuple[float, int]] = []
        self.changed = asyncio.Event()

    @handler(priority=sys.maxsize)
    def on_ram(self, event: RamChange) -> None:
        self.reports.append((time.perf_counter(), event))
        self.changed.set()

    @handler(priority=sys.maxsize)
    def on_balloon(self, event: QmpBalloonChange) -> None:
        self.balloon.append((time.perf_counter(), event.actual))

    async def final(self, requested: int, after: float,
                    timeout: float) -> tuple[float, RamChange]:  # noqa: ASYNC109
        """The first report on ``requested`` after ``after`` that is not ``pending``."""
        def find() -> tuple[float, RamChange] | None:
            return next(((t, e) for t, e in self.reports if t > after
                         and e.requested == requested and e.outcome is not Outcome.PENDING),
                        None)

        async with asyncio.timeout(timeout):
            while (found := find()) is None:
                self.changed.clear()
                await self.changed.wait()
        return found


def within(target: int) -> Callable[[int], bool]:
    """Whether a size is within the controller's tolerance of ``target``."""
    return lambda actual: abs(actual - target) <= ram_tolerance(target)


@pytest.fixture
def base() -> Iterator[Path]:
    with scratch_dir("rc") as path:
        yield path


async def test_balloon_change_is_reported_within_300_ms_of_qemus_value(
        base: Path, guest_image: GuestImage, accel: AccelVerdict) -> None:
    socket = base / "obs.sock"
    template = observer_template(base, socket)
    runner = {"template": template.name, "templateDirs": [str(base)]}

    def write(mib: int) -> None:
        guest_config(base, guest_image, accel=str(accel.accel), runner=runner,
                     maximumRam="256 MiB", currentRam=f"{mib} MiB")

    write(256)
    stamps = Stamps()
    async with InProcessRunner(base / "config.yaml", stamps) as vm:
        await vm.recorder.wait_for(VmContinued, timeout=BOOT)
        await vm.console.wait_ready(BOOT)
        rounds: list[str] = []
        lags: list[float] = []
        async with BalloonObserver(socket) as observer:
            for mib in (128, 256, 128, 256):
                target = mib * MIB
                at_target = within(target)
                start = time.perf_counter()
                write(mib)
                reported, change = await stamps.final(target, start, 40)
                assert change.outcome is Outcome.APPLIED, change
                assert change.actual is not None and at_target(change.actual), change
                seen = await observer.wait_first(at_target, start, 10)
                event = next((t for t, a in stamps.balloon if t > start and at_target(a)), None)
                lags.append(reported - seen)
                rounds.append(f"{mib} MiB: QEMU {seen - start:.3f} s, report "
                              f"{reported - start:.3f} s, BALLOON_CHANGE "
                              f"{'-' if event is None else f'{event - start:.3f} s'}")
                await asyncio.sleep(1.2)  # a quiet second: the next change's first event passes
        assert max(lags) < LAG_BOUND, "report later than QEMU's value:\n" + "\n".join(rounds)


async def test_polling_pauses_while_the_size_stands_still(
        base: Path, guest_image: GuestImage, accel: AccelVerdict) -> None:
    """A guest without a balloon driver never moves: the controller asks ``query-balloon``
    only during the first ``poll_quiet`` s of the change (every 50 ms: about 40 times), not
    for the whole wait (6 s: about 120), and still ends ``not-reached``."""
    guest_config(base, guest_image, accel=str(accel.accel), knobs=("tg.balloon=0",),
                 maximumRam="256 MiB")
    ram = RamController(settle_timeout=6.0, poll_interval=0.05, poll_quiet=2.0)
    async with InProcessRunner(base / "config.yaml", ram) as vm:
        await vm.recorder.wait_for(VmContinued, timeout=BOOT)
        await vm.console.wait_ready(BOOT)
        since = len(vm.recorder.events)
        guest_config(base, guest_image, accel=str(accel.accel), knobs=("tg.balloon=0",),
                     maximumRam="256 MiB", currentRam="160 MiB")
        change = await vm.recorder.wait_for(
            RamChange, lambda e: e.requested == 160 * MIB and e.outcome is Outcome.NOT_REACHED,
            30)
        assert change.actual == 256 * MIB, change
        queries = [e for e in vm.recorder.events[since:]
                   if isinstance(e, ExecuteQmp) and e.command.name == "query-balloon"]
        # right after the command, ≤ 40 polls in the first 2 s, one at the end of the wait
        assert 5 <= len(queries) <= 2 + 2.0 / 0.05 + 3, len(queries)
