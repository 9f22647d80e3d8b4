"""ReloadPlanner: logs and fires the :class:`~vmrunner.events.ReloadPlan` of each change.

It follows the configurations the controllers get (``ConfigureQemu``) and compares each with
the previous one (:func:`~vmrunner.config.reload_plan.classify`). The baseline is the configuration
QEMU was started with (``VmPrepared``), so a change made while QEMU was still starting shows
up in the first plan. One log line per changed key: INFO for ``live`` keys (the controller's
own outcome event follows), WARNING for keys that need a restart. ``restart_pending`` lists
the keys that differ from what QEMU runs with, so undoing an edit clears it again, plus the
live keys a controller could not apply (``RestartNeeded``) until it applies one again.
"""

from __future__ import annotations

import logging

from vmrunner.components.base import BusComponent
from vmrunner.config.model import RunnerConfig
from vmrunner.config.reload_plan import classify, describe
from vmrunner.core import Channel, handler
from vmrunner.events import ConfigureQemu, PlanClass, ReloadPlan, RestartNeeded, VmPrepared
from vmrunner.events.status import ConfigStatus, StatusQuery

_log = logging.getLogger(__name__)


class ReloadPlanner(BusComponent):
    """Fires a :class:`ReloadPlan` for every accepted configuration change."""

    def __init__(self, channel: Channel | None = None, name: str | None = None) -> None:
        super().__init__(channel, name)
        self.launched: RunnerConfig | None = None
        """The configuration QEMU was started with."""
        self.current: RunnerConfig | None = None
        """The configuration of the last plan."""
        self.generation = 0
        self.last: ReloadPlan | None = None
        """The last plan fired."""
        self.refused: dict[str, str] = {}
        """Live keys a controller could not apply: path → reason."""

    @handler
    def on_prepared(self, event: VmPrepared) -> None:
        self.launched = self.current = event.plan.config

    @handler
    def on_configure(self, event: ConfigureQemu) -> None:
        if self.current is None or self.launched is None or event.config == self.current:
            return
        entries = classify(self.current, event.config)
        self.current = event.config
        if not entries:
            return
        pending = tuple(e.path for e in classify(self.launched, event.config)
                        if e.klass is not PlanClass.LIVE)
        self.generation += 1
        for entry in entries:
            level = logging.INFO if entry.klass is PlanClass.LIVE else logging.WARNING
            _log.log(level, "reload plan %d: %s", self.generation, describe(entry))
        if pending:
            _log.warning("reload plan %d: the running VM differs from the configuration in "
                         "%s; restart the runner to apply", self.generation, ", ".join(pending))
        self.last = ReloadPlan(generation=self.generation, entries=entries,
                               restart_pending=pending)
        self.fire(self.last)

    @handler
    def on_restart_needed(self, event: RestartNeeded) -> None:
        if not event.needed:
            self.refused.pop(event.path, None)
        elif event.path not in self.refused:
            _log.warning("%s cannot be applied to the running QEMU (%s); restart the runner "
                         "to apply", event.path, event.reason)
            self.refused[event.path] = event.reason

    # -- status (GET /status) ----------------------------------------------------------------

    @handler
    def on_status_query(self, event: StatusQuery) -> ConfigStatus:
        pending = () if self.last is None else self.last.restart_pending
        pending += tuple(path for path in self.refused if path not in pending)
        return ConfigStatus(generation=self.generation, last_plan=self.last,
                            restart_pending=pending)
