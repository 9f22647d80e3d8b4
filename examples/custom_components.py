"""A custom component set on the vmrunner.core bus (no VM involved).

A tiny "greenhouse": a Sensor task produces readings, Statistics keeps the mean,
a Limiter raises alarms, and a Reporter prints them. When the readings are exhausted
the Sensor fires Stop; the Reporter's first-phase Stop handler asks Statistics for the
mean on a fresh pipeline (``await self.call(...)``) and holds Stop open with a
completion lock while it "flushes" its report. ``run()`` returns the exit code.

Run: ``python examples/custom_components.py``
"""

from __future__ import annotations

import asyncio
import sys

from vmrunner.core import (
    Component,
    Event,
    HandlerContext,
    HandlingError,
    Start,
    Started,
    Stop,
    Stopped,
    handler,
    run,
)

READINGS = (21.0, 22.5, 31.0, 23.5, 35.5)
LIMIT = 30.0


class Reading(Event[None], frozen=True, kw_only=True):
    """A temperature reading; fired by the Sensor on the greenhouse channel."""

    celsius: float


class TooHot(Event[None], frozen=True, kw_only=True):
    """A reading above the limit; fired by the Limiter."""

    celsius: float


class MeanRequested(Event[float], frozen=True, kw_only=True):
    """Asks for the mean reading; Statistics returns it as the result."""


class Greenhouse(Component):
    """The root; prints lifecycle milestones."""

    @handler
    def on_started(self, event: Started) -> None:
        print("greenhouse: started")

    @handler
    def on_stopped(self, event: Stopped) -> None:
        print("greenhouse: stopped")

    @handler(priority=-1000)
    def on_handling_error(self, event: HandlingError) -> None:
        print(f"greenhouse: error in {event.handler}: {event.exception!r}")


class Sensor(Component):
    """Reads the thermometer in a background task owned by the component."""

    @handler
    def on_start(self, event: Start) -> None:
        self.spawn(self._read(), name="thermometer")

    async def _read(self) -> None:
        for value in READINGS:
            await asyncio.sleep(0.001)
            # outside any handler: goes to the main pipeline; awaiting it waits until the
            # reading and everything it caused (alarms) have been handled
            await self.fire(Reading(celsius=value))
        self.fire(Stop())


class Statistics(Component):
    """Keeps the mean; sees readings first (high priority)."""

    def __init__(self, channel: Component) -> None:
        super().__init__(channel)
        self.values: list[float] = []

    @handler(priority=100)
    def on_reading(self, event: Reading) -> None:
        self.values.append(event.celsius)

    @handler
    def on_mean(self, event: MeanRequested) -> float:
        return sum(self.values) / len(self.values)


class Limiter(Component):
    """Turns hot readings into alarms."""

    @handler
    def on_reading(self, event: Reading) -> None:
        if event.celsius > LIMIT:
            self.fire(TooHot(celsius=event.celsius))


class Reporter(Component):
    """Prints readings and alarms, and a summary when stopping."""

    def __init__(self, channel: Component) -> None:
        super().__init__(channel)
        self.alarms = 0

    @handler(priority=-10)
    def on_reading(self, event: Reading) -> None:
        print(f"reporter: {event.celsius:.1f} °C")

    @handler
    def on_too_hot(self, event: TooHot) -> None:
        self.alarms += 1
        print(f"reporter: ALARM {event.celsius:.1f} °C > {LIMIT:.1f} °C")

    @handler(priority=10_000)
    async def on_stop(self, event: Stop, ctx: HandlerContext[None]) -> None:
        mean = await self.call(MeanRequested())
        print(f"reporter: mean {mean:.2f} °C, {self.alarms} alarm(s)")
        lock = ctx.hold(timeout=1.0)  # Stop completes only after the flush

        def flushed() -> None:
            print("reporter: report flushed")
            lock.release()

        self.schedule(0.001, flushed)
        self.set_exit_code(1 if self.alarms else 0)


def build() -> Greenhouse:
    """Assemble the tree; all components share the root's channel."""
    root = Greenhouse()
    root.attach(Sensor(root))
    root.attach(Statistics(root))
    root.attach(Limiter(root))
    root.attach(Reporter(root))
    return root


def main() -> int:
    """Run the greenhouse; the exit code is 1 when an alarm was raised."""
    return asyncio.run(run(build()))


if __name__ == "__main__":
    sys.exit(main())
