"""The phases of ``Stop`` (``StopPhase``): which standard handler runs in which phase, in order."""

from __future__ import annotations

from vmrunner.components.cdrom import CdromController
from vmrunner.components.cpus import CpuController
from vmrunner.components.display import DisplayController
from vmrunner.components.guest_agent import GuestAgent
from vmrunner.components.monitor import QemuMonitor
from vmrunner.components.powerdown import PowerdownHandler
from vmrunner.components.processes import ProcessManager
from vmrunner.components.ram import RamController
from vmrunner.components.reset import ResetController
from vmrunner.components.runner import Runner
from vmrunner.components.swtpm import SwtpmManager
from vmrunner.core import Component, Stop, handler
from vmrunner.events.lifecycle import StopPhase

STANDARD: tuple[type[Component], ...] = (
    Runner, ProcessManager, SwtpmManager, QemuMonitor, RamController, CpuController,
    ResetController, GuestAgent, PowerdownHandler, CdromController, DisplayController)


def _stop_handlers() -> list[tuple[int, str]]:
    return [(info.priority, info.qualname) for cls in STANDARD for info in cls.__handlers__
            if any(issubclass(Stop, e) for e in info.events)]


def test_phases_are_ordered_and_default_is_the_handler_default() -> None:
    assert list(StopPhase) == sorted(StopPhase, reverse=True)
    assert StopPhase.DEFAULT == 0

    class Plain(Component):
        @handler
        def on_stop(self, event: Stop) -> None: ...

    assert [i.priority for i in Plain.__handlers__] == [StopPhase.DEFAULT]


def test_every_standard_stop_handler_declares_its_phase() -> None:
    ordered = sorted(_stop_handlers(), key=lambda h: -h[0])
    assert ordered == [
        (StopPhase.CLOSE, "ProcessManager.on_stop_first"),
        (StopPhase.ANNOUNCE, "Runner.on_stop"),
        (StopPhase.ANNOUNCE, "SwtpmManager.on_stop"),
        (StopPhase.SHUTDOWN_GUEST, "PowerdownHandler.on_stop"),
        (StopPhase.STOP_PROCESSES, "ProcessManager.on_stop"),
    ]
    assert all(isinstance(p, StopPhase) for p, _ in ordered)
