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
vmrunner.api), SystemdNotifier, ConsoleTracker (the SPICE console client), VmopAgent
(auto-login), PauseWatcher (a guest QEMU paused), PanicHandler (guest kernel panics,
``onPanic``), DiskErrorWatcher (failed disk requests), PauseController, DiskResizer,
FsFreezer and Screenshotter (day-2 operations: pause/resume, live disk resize,
filesystem freeze, screenshot), StatsCollector (resource use for the metrics, the
shutdown histogram), SerialConsole (keeps and serves the serial console), and
ConfigWatcher (follows the file for live updates).

In Kubernetes mode (a pod with a service account, or a kubeconfig given by the
``/Runner/Kubernetes`` node or ``kube=``; see :mod:`vmrunner.kube.settings`) ``build()``
also attaches ``Kubernetes`` (:class:`vmrunner.kube.component.KubeStatusWriter`): the
``VirtualMachine`` status, Events and spec patch. Stand-alone, nothing of it is imported
beyond the settings check.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from vmrunner.components.guest_agent import GuestAgent
from vmrunner.components.monitor import QemuMonitor
from vmrunner.components.powerdown import PowerdownHandler
from vmrunner.components.processes import ProcessManager
from vmrunner.components.runner import Runner
from vmrunner.components.swtpm import SwtpmManager
from vmrunner.core import Component
from vmrunner.daemon.grace import grace_warnings

_log = logging.getLogger(__name__)

RUNNER_NODE = "/Runner"


class ConfigInvalid(Exception):
    """The configuration file cannot be used; ``problems`` name each key path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _standard(config_file: Path) -> list[Component]:
    from vmrunner.api.sdnotify import SystemdNotifier
    from vmrunner.api.server import ApiServer
    from vmrunner.components.cdrom import CdromController
    from vmrunner.components.console import ConsoleTracker
    from vmrunner.components.cpus import CpuController
    from vmrunner.components.disk_errors import DiskErrorWatcher
    from vmrunner.components.display import DisplayController
    from vmrunner.components.panic import PanicHandler
    from vmrunner.components.pause import PauseWatcher
    from vmrunner.components.ram import RamController
    from vmrunner.components.reload_planner import ReloadPlanner
    from vmrunner.components.reset import ResetController
    from vmrunner.components.serial_console import SerialConsole
    from vmrunner.components.stats import StatsCollector
    from vmrunner.components.vmop_agent import VmopAgent

    return [ProcessManager(), SwtpmManager(), QemuMonitor(), RamController(), CpuController(),
            ResetController(), GuestAgent(), PowerdownHandler(), CdromController(),
            DisplayController(config_file.absolute().parent), ReloadPlanner(), ApiServer(),
            SystemdNotifier(), ConsoleTracker(), VmopAgent(), PauseWatcher(), PanicHandler(),
            DiskErrorWatcher(), StatsCollector(), SerialConsole(),
            *_day2()]


def _day2() -> list[Component]:
    """The day-2 operations' components (pause/resume, disk resize, fsfreeze, screenshot)."""
    from vmrunner.components.disk_resize import DiskResizer
    from vmrunner.components.fsfreeze import FsFreezer
    from vmrunner.components.pause_control import PauseController
    from vmrunner.components.screenshot import Screenshotter

    return [PauseController(), DiskResizer(), FsFreezer(), Screenshotter()]


class RunnerBuilder:
    """Collects the children of a :class:`Runner`; :meth:`build` validates and assembles."""

    def __init__(self, config_file: str | Path, *, strict: bool = False,
                 watch: bool = True, kube: Mapping[str, Any] | None = None,
                 environ: Mapping[str, str] | None = None, host_files: bool = True) -> None:
        """``kube``: ``/Runner/Kubernetes`` keys that override the file's (the CLI's
        ``--kubeconfig`` etc.); ``environ``: the environment that tells whether the runner
        is in a pod (default: ``os.environ``); ``host_files``: require the files the
        configuration names (disks, kernel, ...) to exist (:mod:`vmrunner.daemon.check_files`)."""
        self.config_file = Path(config_file)
        self.strict = strict
        self.watch = watch
        self.kube = dict(kube or {})
        self.environ = environ
        self.host_files = host_files
        self.components: list[Component] = _standard(self.config_file)
        self.warnings: list[str] = []

    def _environ(self) -> Mapping[str, str]:
        return os.environ if self.environ is None else self.environ

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

    def build(self, *, runner_factory: Callable[..., Runner] = Runner) -> Runner:
        """Read and validate the configuration file (once) and assemble the tree.

        The file is read and its ``/Runner`` node validated here, with ``vmrunner check``'s
        messages; the warnings are logged. The Runner takes that configuration as already
        validated and the ConfigWatcher the file's content as already read, so the initial
        ``/Runner`` node is neither read nor validated again at the start. Every other node is
        checked here too (:func:`node_problems`), and so are the host files the configuration
        names (:func:`~vmrunner.daemon.check_files.file_problems`, unless ``host_files`` is
        false), so an invalid one stops the start before anything is prepared; its
        ``Configurable`` validates it once more when it applies it at the start (a few small
        nodes; presetting would skip ``on_config``).

        :raise ConfigInvalid: the file is unreadable or invalid (messages name key paths).
        """
        from vmrunner.config.validate import runner_values, validate_values
        from vmrunner.core.config import ConfigError, ConfigWatcher

        watcher = ConfigWatcher(self.config_file) if self.watch else None
        try:
            nodes = (watcher.load() if watcher is not None
                     else _read_nodes(self.config_file))
        except ConfigError as exc:
            raise ConfigInvalid(list(exc.messages)) from None
        values, problems = runner_values(
            {RUNNER_NODE: nodes[RUNNER_NODE]} if RUNNER_NODE in nodes else {})
        if values is None:
            raise ConfigInvalid([str(p) for p in problems])
        validation = validate_values(values, strict=self.strict,
                                     base_dir=self.config_file.absolute().parent)
        self.warnings = [str(p) for p in validation.warnings]
        for warning in self.warnings:
            _log.warning("%s", warning)
        if not validation.ok or validation.config is None:
            raise ConfigInvalid([str(p) for p in validation.errors])
        kube = self._kube_component(nodes, validation.config.vm.name)
        runner = runner_factory(validation.config, strict=self.strict)
        runner.preset_config(validation.config, values)
        for component in self.components:
            runner.attach(component)
        if kube is not None:
            runner.attach(kube)
        errors, warnings = node_problems(runner, nodes, strict=self.strict,
                                         base_dir=self.config_file.absolute().parent)
        warnings += grace_warnings(nodes.get(RUNNER_NODE), self._environ())
        for warning in warnings:
            _log.warning("%s", warning)
        self.warnings += warnings
        if self.host_files:
            from vmrunner.daemon.check_files import file_problems

            errors += file_problems(validation.config, nodes)
        if errors:
            raise ConfigInvalid(errors)
        if watcher is not None:
            runner.attach(watcher)
        return runner


    def check_nodes(self) -> tuple[list[str], list[str]]:
        """``vmrunner check``'s view of the nodes besides ``/Runner``: (errors, warnings) of
        :func:`node_problems` for the components this builder holds (on a scratch root; the
        builder is not to be built afterwards).

        :raise ConfigInvalid: the file cannot be read.
        """
        from vmrunner.components import BUS
        from vmrunner.core.config import ConfigError

        try:
            nodes = _read_nodes(self.config_file)
        except ConfigError as exc:
            raise ConfigInvalid(list(exc.messages)) from None
        from vmrunner.kube.settings import KUBE_NODE, KubeSettingsError, parse_node

        root = Component(BUS, "Runner")
        for component in self.components:
            root.attach(component)
        errors, warnings = node_problems(root, nodes, strict=self.strict,
                                         base_dir=self.config_file.absolute().parent)
        if KUBE_NODE in nodes:  # as build() does (without the command line's overrides)
            try:
                parse_node(nodes[KUBE_NODE])
            except KubeSettingsError as exc:
                errors += exc.problems
        return errors, warnings + grace_warnings(nodes.get(RUNNER_NODE), self._environ())

    def _kube_component(self, nodes: Mapping[str, Any], vm_name: str) -> Component | None:
        """The KubeStatusWriter if Kubernetes mode is on (imported only then)."""
        from vmrunner.kube.settings import KUBE_NODE, KubeSettingsError, parse_node, resolve

        values = nodes.get(KUBE_NODE)
        try:
            node = parse_node({**(values if isinstance(values, Mapping) else {}),
                               **self.kube})
            settings = resolve(node, vm_name=vm_name,
                               base_dir=self.config_file.absolute().parent,
                               environ=self.environ)
        except KubeSettingsError as exc:
            raise ConfigInvalid(exc.problems) from None
        if settings is None:
            if values is not None and node.enabled:
                _log.warning("%s: no kubeconfig and not in a pod: the VirtualMachine status "
                             "is not written", KUBE_NODE)
            return None
        from vmrunner.kube.component import KubeStatusWriter

        return KubeStatusWriter(settings, self.config_file.absolute().parent)


def node_problems(root: Component, nodes: Mapping[str, Any], *, strict: bool,
                  base_dir: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) of every node of the file except ``/Runner`` (validated before):
    each is checked against the configurable component at its path, as that component will
    at the start (nothing is spawned before all pass); a node no component has is unknown
    (with a did-you-mean). ``strict`` makes unknown nodes and keys errors."""
    import difflib

    from vmrunner.core import Configurable
    from vmrunner.kube.settings import KUBE_NODE

    errors: list[str] = []
    warnings: list[str] = []
    known = {RUNNER_NODE, KUBE_NODE}  # /Runner/Kubernetes: checked by the kube settings
    context = {"base_dir": base_dir}
    for component in root.walk():
        if component is root or not isinstance(component, Configurable):
            continue
        path = component.component_path
        known.add(path)
        if path not in nodes:
            continue
        section = nodes[path]
        outcome = component.validate_config(
            path, dict(section) if isinstance(section, Mapping) else {}, context)
        errors.extend(outcome.errors)
        (errors if strict else warnings).extend(outcome.warnings)
    for path in nodes:
        if path in known:
            continue
        close = difflib.get_close_matches(path, sorted(known), n=1, cutoff=0.7)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        (errors if strict else warnings).append(
            f"{path}: unknown node, no component has this path{hint}")
    return errors, warnings


def _read_nodes(config_file: Path) -> dict[str, Any]:
    from vmrunner.core.config.loader import parse, read_bytes

    return parse(config_file, read_bytes(config_file))


def standard_components(config_file: str | Path, *, strict: bool = False) -> Runner:
    """The standard runner for ``config_file`` (see :class:`RunnerBuilder`)."""
    return RunnerBuilder(config_file, strict=strict).build()
