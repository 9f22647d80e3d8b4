"""KubeStatusWriter: the runner's events mapped onto its ``VirtualMachine`` (contract §3, §4).

Each source of the status has one small mapping below (a handler that changes the desired
state and tells the writer); another source is added the same way, without touching the
writer. The mappings:

============================  ==============================================================
bus event                     status
============================  ==============================================================
``RunnerStateChanged``        ``Running``/``Booted`` (the transition's reason and message),
                              a ``StatusUpdate`` Event; STARTING: ``runnerVersion``,
                              ``cpus`` 1, ``ram`` = maximumRam; STARTING and STOPPED: the
                              VM-bound fields and conditions reset (``VmStopped``); STOPPED:
                              ``cpus`` 0, ``ram`` "0", maybe the spec patch, the final write
``VmPrepared``/``ConfigureQemu``  the applied configuration: ``observedGeneration``,
                              wanted login, whether a display password exists
``CpuChange``                 ``cpus`` = the vCPUs QEMU has
``QmpBalloonChange``/``RamChange``  ``ram`` (at most every 15 s unless the target is reached)
``OsInfo``                    ``osinfo``
``GuestAgent*``, ``GuestFactsUpdated``  ``vmrunner.guest`` (our own field,
                              :mod:`vmrunner.kube.guest`), removed when not running
``DisplayPasswordChange``     ``displayPasswordSerial``
``ConsoleConnected``/...      ``consoleClient``, ``ConsoleConnected``, an Event
``VmopAgent*``, ``UserLogged*``, ``LoginFailed``  ``VmopAgentConnected``, ``loggedInUser``,
                              ``UserLoggedIn``
``QmpShutdown``/``ProcessExited``  the guest powered off by itself (for the spec patch)
============================  ==============================================================

The component never waits for the API server: the :class:`~vmrunner.kube.writer.StatusWriter`
task does. Only after the VM has stopped (``RunnerStateChanged`` to STOPPED, after the whole
shutdown ladder) is that event held until the last writes are done or
``finalWriteTimeout`` s have passed.
"""

from __future__ import annotations

import datetime
import logging
import re
import time
from pathlib import Path

from vmrunner import __version__
from vmrunner.components.base import BusComponent
from vmrunner.config.model import RunnerConfig
from vmrunner.config.sizes import reached
from vmrunner.core import Channel, HandlerContext, Start, Timer, handler
from vmrunner.events import (
    ConfigureQemu,
    ConsoleConnected,
    ConsoleDisconnected,
    CpuChange,
    DisplayPasswordChange,
    GuestAgentConnected,
    GuestAgentDisconnected,
    LoginFailed,
    OsInfo,
    Outcome,
    ProcessExited,
    ProcessRole,
    QmpBalloonChange,
    QmpShutdown,
    RamChange,
    RunnerStateChanged,
    RunState,
    UserLoggedIn,
    UserLoggedOut,
    VmopAgentConnected,
    VmopAgentDisconnected,
    VmPrepared,
)
from vmrunner.events.guest_facts import (
    AgentState,
    GuestAgentResponsive,
    GuestAgentUnresponsive,
    GuestFacts,
    GuestFactsUpdated,
)
from vmrunner.kube.guest import guest_status
from vmrunner.kube.quantity import quantity
from vmrunner.kube.records import CONSOLE_UPDATE, STATUS_UPDATE, EventRecord
from vmrunner.kube.settings import KubeSettings
from vmrunner.kube.status import DesiredStatus
from vmrunner.kube.writer import StatusWriter

_log = logging.getLogger("vmrunner.kube")

RAM_INTERVAL = 15.0
"""Seconds between two ``ram`` updates while the balloon moves (the reference's limit)."""
FINAL_PRIORITY = -2_000_000
"""Of the handler that holds the STOPPED transition for the final write: after all others."""
NOT_RUNNING = "The VM is not running"
_INSTANCE_ID = re.compile(r"v(\d+)")


def config_generation(config: RunnerConfig) -> int | None:
    """The VM generation the manager wrote into this configuration (cloud-init
    ``instance-id: v<generation>``), if it says."""
    if config.cloud_init is None:
        return None
    match = _INSTANCE_ID.fullmatch(str(config.cloud_init.meta_data.get("instance-id", "")))
    return int(match.group(1)) if match else None


class KubeStatusWriter(BusComponent):
    """Writes the runner's part of the ``VirtualMachine`` status, its Events and the spec
    patch (``settings``: where; ``config_dir``: where ``display-password`` would be)."""

    def __init__(self, settings: KubeSettings, config_dir: str | Path,
                 channel: Channel | None = None, name: str = "Kubernetes", *,
                 ram_interval: float = RAM_INTERVAL) -> None:
        super().__init__(channel, name)
        self.ram_interval = ram_interval
        self.settings = settings
        self.config_dir = Path(config_dir).absolute()
        self.desired = DesiredStatus()
        self.writer = StatusWriter(settings, self.desired)
        self._state = RunState.INITIALIZING
        self._config: RunnerConfig | None = None
        self._agent = False
        self._user: str | None = None
        self._login_error: str | None = None
        self._ram_written = -ram_interval
        self._ram_latest: int | None = None
        self._ram_timer: Timer | None = None
        self._guest_poweroff = False
        self._qemu_clean = False
        self._guest_agent = AgentState.DISCONNECTED
        self._guest_facts: GuestFacts | None = None

    # -- start and the final write -------------------------------------------------------------

    @handler
    def on_start(self, event: Start) -> None:
        self.spawn(self.writer.run(), name="kube-status-writer")

    @handler(priority=FINAL_PRIORITY)
    def on_final(self, event: RunnerStateChanged, ctx: HandlerContext[None]) -> None:
        """Hold STOPPED until the last status, Events and spec patch are written (bounded)."""
        if event.new is not RunState.STOPPED:
            return
        resumer = ctx.suspend()

        async def final() -> None:
            try:
                await self.writer.flush(self.settings.final_write_timeout)
            finally:
                resumer.resume()

        self.spawn(final(), name="kube-final-write")

    # -- the runner's state ----------------------------------------------------------------

    @handler
    def on_state(self, event: RunnerStateChanged) -> None:
        new = self._state = event.new
        status = self.desired
        running = new in (RunState.BOOTING, RunState.BOOTED, RunState.TERMINATING)
        if new is RunState.INITIALIZING:
            return
        status.condition("Running", running, event.reason, event.message)
        status.condition("Booted", new is RunState.BOOTED, event.reason, event.message)
        if new is RunState.STARTING:
            status.set("runnerVersion", __version__)
            status.set("cpus", 1)
        if not running:
            self._not_running()
        self._user_condition()
        if new is RunState.STOPPED:
            status.set("cpus", 0)
            self._cancel_ram_timer()
            status.set("ram", "0")
        self.writer.event(EventRecord(action=STATUS_UPDATE, reason=event.reason,
                                      note=event.message or event.reason, time=_now()))
        if new is RunState.STOPPED and self._stops_spec():
            self.writer.spec_stopped()
        self.writer.changed()

    def _not_running(self) -> None:
        status = self.desired
        status.set("osinfo", None)
        status.set("vmrunner", None)
        self._guest_agent, self._guest_facts = AgentState.DISCONNECTED, None
        status.set("loggedInUser", None)
        status.set("consoleClient", "")
        status.condition("ConsoleConnected", False, "VmStopped", NOT_RUNNING)
        status.condition("VmopAgentConnected", False, "VmStopped", NOT_RUNNING)
        self._agent, self._user, self._login_error = False, None, None

    def _stops_spec(self) -> bool:
        config = self._config
        return (config is not None and config.guest_shutdown_stops and self._guest_poweroff
                and self._qemu_clean and self.exit_code == 0)

    # -- the applied configuration ---------------------------------------------------------

    @handler
    def on_prepared(self, event: VmPrepared) -> None:
        config = event.plan.config
        self.desired.set("ram", quantity(config.vm.maximum_ram))
        self._ram_written = time.monotonic()
        self._applied(config)

    @handler
    def on_configure(self, event: ConfigureQemu) -> None:
        if not event.initial:
            self._applied(event.config)

    def _applied(self, config: RunnerConfig) -> None:
        self._config = config
        self.writer.password_expected = (self.config_dir / "display-password").exists()
        self._user_condition()
        self.writer.config_applied(config_generation(config))

    # -- vCPUs and RAM ---------------------------------------------------------------------

    @handler
    def on_cpus(self, event: CpuChange) -> None:
        if event.present is not None and self._state is not RunState.STOPPED:
            self.desired.set("cpus", event.present)
            self.writer.changed()

    @handler
    def on_balloon(self, event: QmpBalloonChange) -> None:
        self._ram(event.actual)

    @handler
    def on_ram(self, event: RamChange) -> None:
        if event.actual is not None:
            self._ram(event.actual)

    def _ram(self, actual: int) -> None:
        """Write ``actual`` now if the target is reached or the last write is 15 s old,
        else once, 15 s after the last write (with the latest size by then)."""
        if self._state is RunState.STOPPED:
            return
        self._ram_latest = actual
        target = None if self._config is None else self._config.vm.effective_current_ram
        wait = self._ram_written + self.ram_interval - time.monotonic()
        if wait <= 0 or (target is not None and reached(target, actual)):
            self._write_ram()
        elif self._ram_timer is None:
            self._ram_timer = self.schedule(wait, self._write_ram)

    def _write_ram(self) -> None:
        self._cancel_ram_timer()
        if self._ram_latest is None or self._state is RunState.STOPPED:
            return
        self._ram_written = time.monotonic()
        self.desired.set("ram", quantity(self._ram_latest))
        self.writer.changed()

    def _cancel_ram_timer(self) -> None:
        timer, self._ram_timer = self._ram_timer, None
        if timer is not None:
            timer.cancel()

    # -- the guest -------------------------------------------------------------------------

    @handler
    def on_osinfo(self, event: OsInfo) -> None:
        self.desired.set("osinfo", dict(event.info))
        self.writer.changed()

    @handler
    def on_guest_agent(self, event: GuestAgentConnected | GuestAgentDisconnected
                       | GuestAgentResponsive | GuestAgentUnresponsive
                       | GuestFactsUpdated) -> None:
        if isinstance(event, GuestFactsUpdated):
            self._guest_facts = event.facts
        else:
            self._guest_agent = (
                AgentState.RESPONSIVE if isinstance(event, GuestAgentConnected
                                                    | GuestAgentResponsive)
                else AgentState.UNRESPONSIVE if isinstance(event, GuestAgentUnresponsive)
                else AgentState.DISCONNECTED)
        if self._state.vm_active:
            self.desired.set("vmrunner", guest_status(self._guest_agent, self._guest_facts))
            self.writer.changed()

    @handler
    def on_shutdown(self, event: QmpShutdown) -> None:
        if event.guest and self._state.vm_active:
            self._guest_poweroff = True

    @handler
    def on_exited(self, event: ProcessExited) -> None:
        if event.name == ProcessRole.QEMU:
            self._qemu_clean = event.status.success

    # -- the display password --------------------------------------------------------------

    @handler
    def on_password(self, event: DisplayPasswordChange) -> None:
        if event.outcome is Outcome.APPLIED and event.password_changed:
            self.writer.password_expected = True
            self.writer.passwords_applied = event.serial
            self.writer.changed()

    # -- the console -----------------------------------------------------------------------

    @handler
    def on_console(self, event: ConsoleConnected) -> None:
        message = f"Connection from {event.host}"
        self.desired.set("consoleClient", event.host)
        self.desired.condition("ConsoleConnected", True, "Connected", message)
        self.writer.event(EventRecord(action=CONSOLE_UPDATE, reason=message, note=message,
                                      time=_now()))

    @handler
    def on_console_gone(self, event: ConsoleDisconnected) -> None:
        current = event.console_client
        if current:
            self.desired.set("consoleClient", current)
            self.desired.condition("ConsoleConnected", True, "Connected",
                                   f"Connection from {current}")
        elif event.reason == "vm-stopped":
            self.desired.set("consoleClient", "")
            self.desired.condition("ConsoleConnected", False, "VmStopped", NOT_RUNNING)
        else:
            self.desired.set("consoleClient", "")
            self.desired.condition("ConsoleConnected", False, "Disconnected",
                                   f"Disconnected from {event.host}")
        if event.reason == "disconnected":
            message = f"Disconnected from {event.host}"
            self.writer.event(EventRecord(action=CONSOLE_UPDATE, reason=message,
                                          note=message, time=_now()))
        self.writer.changed()

    # -- the vmop agent (auto-login) -------------------------------------------------------

    @handler
    def on_agent(self, event: VmopAgentConnected) -> None:
        self._agent = True
        self.desired.condition("VmopAgentConnected", True, "VmopAgentStarted",
                               "The VM operator agent is running")
        self._user_condition()

    @handler
    def on_agent_gone(self, event: VmopAgentDisconnected) -> None:
        self._agent, self._user = False, None
        self.desired.set("loggedInUser", None)
        self.desired.condition(
            "VmopAgentConnected", False, "VmopAgentDisconnected",
            "The VM operator agent is not running" + (f" ({event.reason})" if event.reason
                                                      else ""))
        self._user_condition()

    @handler
    def on_logged_in(self, event: UserLoggedIn) -> None:
        self._user, self._login_error = event.user, None
        self.desired.set("loggedInUser", event.user)
        self._user_condition()

    @handler
    def on_logged_out(self, event: UserLoggedOut) -> None:
        self._user, self._login_error = None, None
        self.desired.set("loggedInUser", None)
        self._user_condition()

    @handler
    def on_login_failed(self, event: LoginFailed) -> None:
        self._login_error = f"{event.code} {event.text}"
        self._user_condition()

    def _user_condition(self) -> None:
        """``UserLoggedIn`` from the wish, the agent and what it confirmed."""
        wanted = None if self._config is None else self._config.vm.wanted_user
        running = self._state in (RunState.BOOTING, RunState.BOOTED, RunState.TERMINATING)
        if not running:
            args = (False, "VmStopped", NOT_RUNNING)
        elif wanted is None:
            args = (False, "NotRequested", "No user login requested")
        elif not self._agent:
            args = (False, "VmopAgentDisconnected", "The VM operator agent is not running")
        elif self._user == wanted:
            args = (True, "LoggedIn", f"User {wanted} is logged in")
        elif self._login_error is not None:
            args = (False, "Processing", f"Login of {wanted} refused: {self._login_error}")
        else:
            args = (False, "Processing", f"Logging in {wanted}")
        self.desired.condition("UserLoggedIn", *args)
        self.writer.changed()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
