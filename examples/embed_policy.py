"""Embedding the runner: the standard components plus a policy of your own.

``MaxUptime`` prints every state change of the runner and, once the guest has booted (its
guest agent answered), gives it ``--uptime`` seconds before asking for a graceful stop, as a
batch job runner might. It talks to the standard components only through their events.

Run: ``python examples/embed_policy.py -c examples/demo-vm.yaml --uptime 5``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from vmrunner.components import BUS
from vmrunner.core import Component, Stop, handler, run
from vmrunner.daemon.builder import ConfigInvalid, RunnerBuilder
from vmrunner.events import RunnerStateChanged, RunState, TerminationSignal


class MaxUptime(Component):
    """Reports state changes; stops the VM ``seconds`` after it has booted."""

    def __init__(self, seconds: float) -> None:
        super().__init__(BUS)  # join the runner's bus
        self.seconds = seconds

    @handler
    def on_state(self, event: RunnerStateChanged) -> None:
        print(f"policy: {event.old.value} -> {event.new.value} ({event.reason})", flush=True)
        if event.new is RunState.BOOTED:
            print(f"policy: stopping the VM in {self.seconds:g} s", flush=True)
            self.schedule(self.seconds, lambda: self.fire(Stop()))


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--uptime", type=float, default=5.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        runner = RunnerBuilder(args.config).add(MaxUptime(args.uptime)).build()
    except ConfigInvalid as exc:
        print(exc, file=sys.stderr)
        return 2
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.fire, TerminationSignal(signal=int(sig)))
    return await run(runner)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
