"""A storm of config edits converges to the last valid one while the VM keeps running
(issue 5: "1,000 edits in 10 s, including invalid ones").

The configuration directory is laid out like a Kubernetes ConfigMap volume
(``config.yaml -> ..data/config.yaml``, ``..data -> ..vNNNN``), and each edit is made in one
of three ways, mixed at random: an in-place write (through the symlinks), an atomic rename
inside the data directory, or a kubelet-style swap of the ``..data`` symlink to a new
directory (the old one is deleted). About a third of the edits are invalid: wrong types,
an unknown firmware, ``currentRam`` above ``maximumRam``, YAML syntax errors. Valid edits
change ``currentRam`` (balloon), ``powerdownTimeout`` and sometimes ``bootMenu`` (needs a
restart). The last edit is invalid, so the runner must end on the last *valid* one. (A state
overwritten within milliseconds may be coalesced away, as bursts are meant to be, so the
test lets the runner see the last valid edit before it writes the final, invalid one.)

Checked afterwards, from typed events and the guest: the Runner's configuration, the last
``ConfigureQemu``, the shutdown deadline and the balloon target equal the last valid edit;
the guest's balloon got there (``RamChange`` applied) and the guest reports its memory;
the reload plan's pending restart matches ``bootMenu``; QEMU is the same process throughout.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from vmrunner.components.powerdown import PowerdownHandler
from vmrunner.components.ram import RamController
from vmrunner.components.reload_planner import ReloadPlanner
from vmrunner.config.model import RunnerConfig
from vmrunner.config.reload_plan import classify
from vmrunner.config.sizes import MIB
from vmrunner.core import ConfigurationRejected, ConfigurationUpdate
from vmrunner.daemon.builder import RunnerBuilder
from vmrunner.events import (
    ConfigureQemu,
    ExecuteQmp,
    Outcome,
    ProcessExited,
    ProcessRole,
    ProcessStarted,
    RamChange,
)
from vmrunner.protocols.qmp import commands
from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.inproc import InProcessRunner
from vmrunner.testing.runnerproc import guest_config, scratch_dir

pytestmark = pytest.mark.guest

EDITS = 1000
SPAN = 10.0
BOOT = 60.0
SETTLE = 45.0
_log = logging.getLogger(__name__)


@pytest.fixture
def vmdir() -> Iterator[Path]:
    with scratch_dir("vst") as path:
        yield path


class ConfigMapDir:
    """A directory laid out like a ConfigMap volume; edits by write, rename or swap."""

    def __init__(self, base: Path, text: str) -> None:
        self.base = base
        self.serial = 0
        self.file = base / "config.yaml"
        data = self._new_dir(text)
        (base / "..data").symlink_to(data.name)
        self.file.symlink_to("..data/config.yaml")

    def _new_dir(self, text: str) -> Path:
        self.serial += 1
        data = self.base / f"..v{self.serial:04d}"
        data.mkdir()
        (data / "config.yaml").write_text(text)
        return data

    def write(self, text: str, how: str) -> None:
        if how == "inplace":
            with open(self.file, "w") as f:  # through both symlinks
                f.write(text)
        elif how == "rename":
            data = (self.base / "..data").resolve()
            tmp = data / ".config.yaml.tmp"
            tmp.write_text(text)
            os.replace(tmp, data / "config.yaml")
        else:  # "swap", as kubelet does it
            old = (self.base / "..data").resolve()
            new = self._new_dir(text)
            tmp_link = self.base / "..data_tmp"
            tmp_link.symlink_to(new.name)
            os.replace(tmp_link, self.base / "..data")
            shutil.rmtree(old)


def dump(values: dict[str, Any]) -> str:
    return yaml.safe_dump({"/Runner": values}, sort_keys=False)


def invalid_edit(rng: random.Random, values: dict[str, Any]) -> str:
    vm = dict(values["vm"])
    kind = rng.randrange(6)
    if kind == 0:
        vm["currentRam"] = rng.choice(["lots", [1, 2], {"a": 1}])
    elif kind == 1:
        vm["powerdownTimeout"] = rng.choice(["soon", -5, 1.5])
    elif kind == 2:
        vm["firmware"] = rng.choice(["floppy", "coreboot", "UEFI"])
    elif kind == 3:
        vm["currentRam"] = "512 MiB"  # above maximumRam (256 MiB)
    elif kind == 4:
        return dump({**values, "vm": vm}).replace("vm:", "vm: [", 1)  # YAML syntax error
    else:
        return dump({**values, "vm": vm}).replace("name:", "name: 'unclosed", 1)
    return dump({**values, "vm": vm})


async def test_storm_of_edits_converges_to_the_last_valid_one(
        vmdir: Path, guest_image: GuestImage, accel: AccelVerdict) -> None:
    seed = int(os.environ.get("STORM_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    staging = vmdir / "staging"
    staging.mkdir()
    initial = yaml.safe_load(guest_config(staging, guest_image, accel=str(accel.accel),
                                          currentRam="224 MiB").read_text())["/Runner"]
    initial["runtimeDir"] = str(vmdir / "run")
    initial["dataDir"] = str(vmdir / "data")
    volume = ConfigMapDir(vmdir, dump(initial))

    def customize(builder: RunnerBuilder) -> None:
        names = [c.name for c in builder.components]
        for name in {n for n in names if names.count(n) > 1}:
            builder.remove(name)  # an extra replaces the standard one of the same name

    ram, planner = RamController(settle_timeout=SETTLE), ReloadPlanner()
    async with InProcessRunner(volume.file, ram, planner, customize=customize) as vm:
        assert vm.runner is not None
        rec = vm.recorder
        await vm.console.wait_ready(BOOT)
        (started,) = [e for e in rec.events
                      if isinstance(e, ProcessStarted) and e.name == ProcessRole.QEMU]
        powerdown = next(c for c in vm.runner.children if isinstance(c, PowerdownHandler))

        # the storm: EDITS edits in SPAN seconds; the one before last is valid, the last not
        last_valid = initial
        hows = {"inplace": 0, "rename": 0, "swap": 0}
        invalid = 0
        mark = len(rec.events)
        begin = time.monotonic()
        for index in range(EDITS):
            how = rng.choice(list(hows))
            hows[how] += 1
            if index == EDITS - 1:
                # A state that is overwritten within milliseconds may be coalesced away (a
                # burst converges to the last *content*), so the last valid edit must have
                # been seen before the final, invalid one is written.
                want = RunnerConfig.model_validate(last_valid, context={"base_dir": vmdir})
                waited = time.monotonic()
                await rec.wait_for(ConfigureQemu, lambda e, w=want: e.config == w, 10)
                begin += time.monotonic() - waited  # the pace counts the writing only
                invalid += 1
                text = "# the last edit\n" * 50 + "vm: [\n"  # a syntax error on line 52
            elif index < EDITS - 2 and rng.random() < 0.3:
                invalid += 1
                text = invalid_edit(rng, last_valid)
            else:
                values = {**last_valid, "vm": {
                    **last_valid["vm"], "currentRam": f"{rng.randrange(160, 257)} MiB",
                    "powerdownTimeout": rng.randrange(10, 100)}}
                if rng.random() < 0.05:
                    values["vm"]["bootMenu"] = not values["vm"].get("bootMenu", False)
                text, last_valid = dump(values), values
            volume.write(text, how)
            delay = begin + (index + 1) * SPAN / EDITS - time.monotonic()
            await asyncio.sleep(max(0.0, delay))
        elapsed = time.monotonic() - begin

        # the last (invalid) edit is seen and rejected...
        def final_rejection(e: ConfigurationRejected) -> bool:
            # the parser reports the unclosed "[" at the end of the stream, line 52
            return e.path == "/" and f"{volume.file}:52: invalid YAML" in " ".join(e.errors)

        await rec.wait_for(ConfigurationRejected, final_rejection, 10)
        events = rec.events[mark:]
        updates = sum(isinstance(e, ConfigurationUpdate) for e in events)
        rejections = sum(isinstance(e, ConfigurationRejected) for e in events)
        _log.info("storm seed %d: %d edits (%d invalid, %s) in %.1f s; %d updates, "
                  "%d rejections", seed, EDITS, invalid, hows, elapsed, updates, rejections)
        # the edits came at (about) the intended pace: the runner in this process did not hold
        # up the writer's loop for long (the bound leaves room for a loaded CI machine)
        assert elapsed < SPAN * 2, elapsed

        # ...and everything stands on the last valid edit
        assert vm.runner.config is not None
        assert vm.runner.config == want, (seed, classify(want, vm.runner.config))
        last_configure = [e for e in rec.events if isinstance(e, ConfigureQemu)][-1]
        assert last_configure.config == want, seed
        assert powerdown.timeout == want.vm.powerdown_timeout
        target = want.vm.effective_current_ram
        balloons = [e.command for e in rec.events
                    if isinstance(e, ExecuteQmp) and isinstance(e.command, commands.Balloon)]
        assert balloons[-1] == commands.Balloon(value=target), seed
        reached = await rec.wait_for(
            RamChange, lambda e: e.requested == target and e.outcome is Outcome.APPLIED, SETTLE)
        assert reached.actual is not None
        bootmenu_changed = want.vm.boot_menu != bool(initial["vm"].get("bootMenu", False))
        assert planner.last is not None
        assert (planner.last.restart_pending == ("/Runner/vm/bootMenu",)) == bootmenu_changed

        # the VM ran throughout: one QEMU process, never exited, and the guest answers
        assert not [e for e in rec.events
                    if isinstance(e, ProcessExited) and e.name == ProcessRole.QEMU]
        assert [e.pid for e in rec.events
                if isinstance(e, ProcessStarted) and e.name == ProcessRole.QEMU] == [started.pid]
        os.kill(started.pid, 0)
        # the guest's own view: MemTotal is the balloon target less what its kernel reserved
        mem = "\n".join(await vm.console.check("tg mem", 30))
        found = re.search(r"MemTotal: +(\d+) kB", mem)
        assert found, mem
        assert target - 64 * MIB <= int(found.group(1)) * 1024 <= target, (mem, target)
        assert await vm.stop() == 0
