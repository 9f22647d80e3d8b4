"""Dispatch throughput of vmrunner.core compared with raw pyee.

A 20-component tree (all sharing the root's channel, handlers at mixed priorities) handles
``--events`` events, half ``Tick`` (every component has a Tick handler) and half ``Tock``
(five components handle it on a named channel). The same handler work then runs through a
raw pyee ``EventEmitter.emit`` with the listeners registered in the bus's order.

A second run fires single-handler events (one ``Tock`` handler) through both.

Last line: ``bus: <N> events/s; raw pyee: <M> events/s; ratio: <N/M>; single: <R>``, R being
the single-handler ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from pyee import EventEmitter

from vmrunner.core import Component, Event, NamedChannel, Start, handler

GROUP = NamedChannel("group")
BATCH = 1000


class Tick(Event[None], frozen=True, kw_only=True):
    n: int


class Tock(Event[None], frozen=True, kw_only=True):
    n: int


class Worker(Component):
    """Counts what it handles; the handler body is the "work" both runs share."""

    def __init__(self, channel: Component | None, index: int) -> None:
        super().__init__(channel, name=f"w{index}")
        self.total = 0

    def work(self, event: Tick | Tock) -> None:
        self.total += event.n

    @handler
    def on_tick(self, event: Tick) -> None:
        self.total += event.n


class HighWorker(Worker):
    @handler(priority=100)
    def on_tick(self, event: Tick) -> None:
        self.total += event.n


class LowWorker(Worker):
    @handler(priority=-50)
    def on_tick(self, event: Tick) -> None:
        self.total += event.n


class GroupWorker(Worker):
    @handler(priority=10, channels=(GROUP,))
    def on_tock(self, event: Tock) -> None:
        self.total += event.n


def build() -> tuple[Component, list[Worker]]:
    root = Worker(None, 0)
    kinds = (Worker, HighWorker, LowWorker, GroupWorker)
    workers: list[Worker] = [root]
    parents: list[Component] = [root]
    for i in range(1, 20):
        w = kinds[i % 4](root, i)
        parents[(i - 1) // 4].attach(w)
        parents.append(w)
        workers.append(w)
    return root, workers


async def run_bus(events: int) -> tuple[float, int]:
    root, workers = build()
    await root.fire(Start())
    began = time.perf_counter()
    half = BATCH // 2
    for _ in range(events // BATCH):
        for n in range(half):
            root.fire(Tick(n=n))
            last = root.fire(Tock(n=n), GROUP)
        await last
    elapsed = time.perf_counter() - began
    return elapsed, sum(w.total for w in workers)


def run_pyee(events: int) -> tuple[float, int]:
    root, workers = build()
    ee = EventEmitter()
    # register the same handlers, in the bus's dispatch order
    tree = root.component_tree  # core-internal: the bus's own dispatch order
    for cls, channels, name in ((Tick, (root,), "Tick"), (Tock, (GROUP,), "Tock")):
        for entry in tree.handlers_for(cls, channels).entries:
            ee.on(name, entry.method)
    began = time.perf_counter()
    half = BATCH // 2
    for _ in range(events // BATCH):
        for n in range(half):
            ee.emit("Tick", Tick(n=n))
            ee.emit("Tock", Tock(n=n))
    elapsed = time.perf_counter() - began
    return elapsed, sum(w.total for w in workers)


async def run_bus_single(events: int) -> float:
    root, workers = build()
    await root.fire(Start())
    target = workers[3]
    began = time.perf_counter()
    for _ in range(events // BATCH):
        for n in range(BATCH):
            last = root.fire(Tock(n=n), target)
        await last
    return time.perf_counter() - began


def run_pyee_single(events: int) -> float:
    _, workers = build()
    ee = EventEmitter()
    ee.on("Tock", workers[3].on_tock)  # type: ignore[attr-defined]
    began = time.perf_counter()
    for _ in range(events // BATCH):
        for n in range(BATCH):
            ee.emit("Tock", Tock(n=n))
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    events = max(BATCH, parser.parse_args().events // BATCH * BATCH)
    bus_s, bus_work = asyncio.run(run_bus(events))
    pyee_s, pyee_work = run_pyee(events)
    if bus_work != pyee_work:
        raise SystemExit(f"work differs: bus {bus_work} vs pyee {pyee_work}")
    bus_rate, pyee_rate = events / bus_s, events / pyee_s
    single_bus, single_pyee = asyncio.run(run_bus_single(events)), run_pyee_single(events)
    print(f"{events} events through 20 components; handler work checksum {bus_work}")
    single = single_pyee / single_bus
    print(f"(single-handler events: bus {events / single_bus:.0f} events/s; raw pyee "
          f"{events / single_pyee:.0f} events/s; ratio: {single:.2f})")
    print(f"bus: {bus_rate:.0f} events/s; raw pyee: {pyee_rate:.0f} events/s; "
          f"ratio: {bus_rate / pyee_rate:.2f}; single: {single:.2f}")


if __name__ == "__main__":
    main()
