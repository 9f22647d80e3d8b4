"""Config edits reach the running runner, bad ones are rejected, and every change gets a plan
(issue 5, items 1 and 8), with the real runner tree, QEMU and the test guest.

Edits are made by rewriting the configuration file; the test awaits the typed events
(``ConfigurationRejected``, ``ReloadPlan``, ``ConfigureQemu``) and checks that the VM kept
running: the same QEMU process, and a guest that still answers on its serial console.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from vmrunner.components.powerdown import PowerdownHandler
from vmrunner.components.reload_planner import ReloadPlanner
from vmrunner.core import ConfigurationRejected, Event
from vmrunner.daemon.builder import RunnerBuilder
from vmrunner.events import ConfigureQemu, PlanClass, ProcessRole, ProcessStarted, ReloadPlan
from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.inproc import InProcessRunner
from vmrunner.testing.qemu import raw_disk
from vmrunner.testing.runnerproc import guest_config, scratch_dir

pytestmark = pytest.mark.guest

BOOT = 60.0
CMD = 20.0
EVENT = 10.0


@pytest.fixture
def vmdir() -> Iterator[Path]:
    with scratch_dir("vcf") as path:
        yield path


def single(builder: RunnerBuilder) -> None:
    """Keep one component per name (an extra replaces a standard one of the same name)."""
    names = [c.name for c in builder.components]
    for name in {n for n in names if names.count(n) > 1}:
        builder.remove(name)


def after(vm: InProcessRunner, mark: int) -> Any:
    """A predicate: the event was recorded after ``mark``."""
    old = {id(e) for e in vm.recorder.events[:mark]}
    return lambda e: id(e) not in old


def qemu_pid(events: list[Event[Any]]) -> int:
    started = [e.pid for e in events
               if isinstance(e, ProcessStarted) and e.name == ProcessRole.QEMU]
    assert len(started) == 1, started
    return started[0]


async def test_edits_are_applied_rejected_and_planned(
        vmdir: Path, guest_image: GuestImage, accel: AccelVerdict,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="vmrunner")
    settings: dict[str, Any] = {"accel": str(accel.accel), "powerdown_timeout": 30}

    def write(**vm: Any) -> Path:
        settings.update(vm)
        return guest_config(vmdir, guest_image, **settings)

    def write_text(text: str) -> None:
        (vmdir / "config.yaml").write_text(text)

    async with InProcessRunner(write(), ReloadPlanner(), customize=single) as vm:
        assert vm.runner is not None
        await vm.console.wait_ready(BOOT)
        rec = vm.recorder
        pid = qemu_pid(rec.events)
        good = vm.runner.config
        assert good is not None

        # 1. a bad value: rejected with the key path; the last good config stays
        mark = len(rec.events)
        write(currentRam="lots")
        rejected = await rec.wait_for(ConfigurationRejected, after(vm, mark), EVENT)
        assert rejected.path == "/Runner" and not rejected.initial
        assert rejected.errors[0].startswith("/Runner/vm/currentRam: "), rejected
        assert vm.runner.config == good
        assert "configuration update rejected; keeping the last good one" in caplog.text

        # 2. a YAML syntax error: rejected as a whole, naming the file and line
        mark = len(rec.events)
        text = (vmdir / "config.yaml").read_text()
        write_text(text.replace("vm:", "vm: [", 1))
        broken = await rec.wait_for(ConfigurationRejected, after(vm, mark), EVENT)
        assert broken.path == "/" and "invalid YAML" in broken.errors[0], broken
        assert str(vmdir / "config.yaml") in broken.errors[0]
        assert vm.runner.config == good

        # 3. maximumRam: accepted, but the plan says it needs a restart
        mark = len(rec.events)
        write(currentRam=None, maximumRam="512 MiB", powerdown_timeout=31)
        plan = await rec.wait_for(ReloadPlan, after(vm, mark), EVENT)
        classes = {e.path: e.klass for e in plan.entries}
        assert classes == {"/Runner/vm/maximumRam": PlanClass.RESTART,
                           "/Runner/vm/powerdownTimeout": PlanClass.LIVE}, plan
        assert plan.needs_restart and plan.restart_pending == ("/Runner/vm/maximumRam",)
        assert ("/Runner/vm/maximumRam: 256 MiB → 512 MiB: needs restart "
                "(QEMU's -m is fixed for the life of the process)") in caplog.text
        configured = await rec.wait_for(ConfigureQemu, after(vm, mark), EVENT)
        assert configured.config.vm.maximum_ram == 512 * 2**20 and not configured.initial
        powerdown = next(c for c in vm.runner.children if isinstance(c, PowerdownHandler))
        assert powerdown.timeout == 31  # live: the next shutdown waits 31 s

        # 4. adding a disk needs a restart, too; the plan lists the new drive
        mark = len(rec.events)
        disk = raw_disk(vmdir / "extra.img")
        write(drives=[{"file": str(disk)}])
        plan = await rec.wait_for(ReloadPlan, after(vm, mark), EVENT)
        (entry,) = plan.entries
        assert entry.path == "/Runner/vm/drives/0" and entry.klass is PlanClass.RESTART
        assert entry.new["file"] == str(disk) and "drive 0 added" in entry.reason
        assert set(plan.restart_pending) == {"/Runner/vm/maximumRam", "/Runner/vm/drives/0"}
        assert "/Runner/vm/drives/0: (unset) → " in caplog.text

        # 5. undoing both: the plan is still explicit, and nothing is pending any more
        mark = len(rec.events)
        write(maximumRam="256 MiB", drives=[])
        plan = await rec.wait_for(ReloadPlan, after(vm, mark), EVENT)
        assert {e.path for e in plan.entries} == {"/Runner/vm/maximumRam",
                                                  "/Runner/vm/drives/0"}
        assert plan.restart_pending == ()

        # the VM ran throughout: same QEMU, guest answers, still the one QEMU process
        assert qemu_pid(rec.events) == pid
        os.kill(pid, 0)
        assert (await vm.console.check("tg info", CMD))[0].startswith("cpus=")
        assert yaml.safe_load((vmdir / "config.yaml").read_text())["/Runner"]["vm"]["drives"] == []
        assert await vm.stop() == 0
