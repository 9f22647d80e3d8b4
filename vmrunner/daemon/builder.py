"""Building the standard component tree, for the CLI and for programs embedding the runner.

::

    from vmrunner.daemon.builder import RunnerBuilder
    from vmrunner.core import run

    runner = (RunnerBuilder("vm.yaml")
              .add(MyPolicy())                       # a component of your own (channel=BUS)
              .replace("GuestAgent", MyAgent())     # or swap a standard one
              .build())
    exit_code = await run(runner)

``standard_components(path)`` is ``RunnerBuilder(path).build()``. The standard children, by
name: ProcessManager, SwtpmManager, QemuMonitor, RamController, CpuController,
ResetController, GuestAgent, PowerdownHandler, CdromController, DisplayController,
ReloadPlanner (logs and fires the reload plan of each change), Api (status API,
vmrunner.api), SystemdNotifier, VmopAgent (auto-login), and ConfigWatcher (follows the file
for live updates).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmrunner.components.guest_agent import GuestAgent
from vmrunner.components.monitor import QemuMonitor
from vmrunner.components.powerdown import PowerdownHandler
from vmrunner.components.processes import ProcessManager
from vmrunner.components.runner import Runner
from vmrunner.components.swtpm import SwtpmManager
from vmrunner.core import Component

if TYPE_CHECKING:
    from vmrunner.config.validate import Validation
    from vmrunner.proc.child import ChildProcess
    from vmrunner.vmtypes.launch import LaunchPlan

_log = logging.getLogger(__name__)


class ConfigInvalid(Exception):
    """The configuration file cannot be used; ``problems`` name each key path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _standard(config_file: Path) -> list[Component]:
    from vmrunner.api.sdnotify import SystemdNotifier
    from vmrunner.api.server import ApiServer
    from vmrunner.components.cdrom import CdromController
    from vmrunner.components.cpus import CpuController
    from vmrunner.components.display import DisplayController
    from vmrunner.components.ram import RamController
    from vmrunner.components.reload_planner import ReloadPlanner
    from vmrunner.components.reset import ResetController
    from vmrunner.components.vmop_agent import VmopAgent

    return [ProcessManager(), SwtpmManager(), QemuMonitor(), RamController(), CpuController(),
            ResetController(), GuestAgent(), PowerdownHandler(), CdromController(),
            DisplayController(config_file.absolute().parent), ReloadPlanner(), ApiServer(),
            SystemdNotifier(), VmopAgent()]


class RunnerBuilder:
    """Collects the children of a :class:`Runner`; :meth:`build` validates and assembles."""

    def __init__(self, config_file: str | Path, *, strict: bool = False,
                 watch: bool = True) -> None:
        self.config_file = Path(config_file)
        self.strict = strict
        self.watch = watch
        self.components: list[Component] = _standard(self.config_file)
        self.warnings: list[str] = []

    def _index(self, name: str) -> int:
        for index, component in enumerate(self.components):
            if component.name == name:
                return index
        known = ", ".join(c.name for c in self.components)
        raise KeyError(f"no component named {name!r} (have: {known})")

    def add(self, component: Component) -> RunnerBuilder:
        """Attach ``component`` as a further child of the Runner (after the standard ones)."""
        self.components.append(component)
        return self

    def replace(self, name: str, component: Component) -> RunnerBuilder:
        """Use ``component`` instead of the standard child called ``name``."""
        self.components[self._index(name)] = component
        return self

    def remove(self, name: str) -> RunnerBuilder:
        """Leave the standard child called ``name`` out."""
        del self.components[self._index(name)]
        return self

    def build(self, *, runner_factory: Callable[..., Runner] = Runner,
              validation: Validation | None = None, plan: LaunchPlan | None = None,
              adopt: Sequence[ChildProcess] = ()) -> Runner:
        """Validate the configuration and assemble the tree.

        ``validation``: the file's validation if already done; ``plan``: the VM already
        prepared for it, and ``adopt``: children already started for it (``vmrunner run``,
        see :mod:`vmrunner.daemon.prelaunch`), handed to the ProcessManager.

        :raise ConfigInvalid: the file is unreadable or invalid (messages name key paths).
        """
        from vmrunner.config.validate import load_config

        if validation is None:
            validation = load_config(self.config_file, strict=self.strict)
        self.warnings = [str(p) for p in validation.warnings]
        if not self.watch:  # else the Runner reports them with its initial configuration
            for warning in self.warnings:
                _log.warning("%s", warning)
        if not validation.ok or validation.config is None:
            raise ConfigInvalid([str(p) for p in validation.errors])
        options: dict[str, Any] = {"strict": self.strict}
        if plan is not None:
            options["plan"] = plan
        runner = runner_factory(validation.config, **options)
        for component in self.components:
            runner.attach(component)
        if adopt:
            manager = self.components[self._index("ProcessManager")]
            if not isinstance(manager, ProcessManager):
                raise TypeError("children to adopt need the standard ProcessManager")
            for child in adopt:
                manager.adopt(child)
        if self.watch:
            watcher = _config_watcher(self.config_file)
            if watcher is not None:
                runner.attach(watcher)
        return runner


def _config_watcher(config_file: Path) -> Component | None:
    from vmrunner.core import ConfigWatcher

    return ConfigWatcher(config_file)


def standard_components(config_file: str | Path, *, strict: bool = False) -> Runner:
    """The standard runner for ``config_file`` (see :class:`RunnerBuilder`)."""
    return RunnerBuilder(config_file, strict=strict).build()
