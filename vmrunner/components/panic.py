"""PanicHandler: a guest kernel panic (the VM's ``pvpanic`` device) and ``/Runner/vm/onPanic``.

QEMU's panic action is set from the policy with ``set-action`` in every ``ConfigureQemu``:
before ``cont`` (the initial one completes only once QEMU answered) and on each change, so the
key is live. What follows a ``GUEST_PANICKED``:

========  ===================  ===============================================================
onPanic   QEMU's action        the runner
========  ===================  ===============================================================
reset     ``none`` (runs on)   ``system_reset`` at once; counted in ``resets``
stop      ``pause``            exit code 8 (``GUEST_PANICKED``); ``Stop`` once QEMU has paused
                               the guest (``GuestPaused``), so the ladder goes straight to
                               ``terminate``
pause     ``pause``            nothing: the guest stays paused (the PauseWatcher's
                               ``guest-panicked``, ``/ready`` 503) until a reset (``vmrunner
                               reset``, ``resetCounter``), after which the runner sends
                               ``cont`` and the guest boots again; or a stop
========  ===================  ===============================================================

Invariants:

* Each ``GUEST_PANICKED`` and ``GUEST_CRASHLOADED`` is one :class:`GuestPanicked`, one WARNING
  line and one more in ``count``; the policy is the one in force when the event arrives.
* What QEMU did decides how the policy is carried out (a panic racing a change of the policy):
  a guest QEMU paused is resumed after a ``reset`` policy's reset; a guest QEMU let run is
  stopped through the ordinary ladder under ``stop``.
* A crash-loaded panic (pvpanic's ``GUEST_CRASHLOADED``: a kdump kernel takes over in the
  guest) and a panic while the runner is shutting down get no policy.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

import msgspec

from vmrunner.components.base import BusComponent
from vmrunner.components.exit_codes import ExitCode
from vmrunner.core import Channel, Stop, handler
from vmrunner.events import (
    ConfigureQemu,
    GuestPanicked,
    GuestPaused,
    PanicPolicy,
    PanicStatus,
    ProcessExited,
    ProcessRole,
    QmpGuestCrashloaded,
    QmpGuestPanicked,
    QmpReply,
    QmpReset,
    RunnerStateChanged,
    RunState,
    StatusQuery,
)
from vmrunner.protocols.qmp import commands

_log = logging.getLogger(__name__)

QEMU_ACTION: Mapping[PanicPolicy, Literal["none", "pause"]] = MappingProxyType({
    "reset": "none", "stop": "pause", "pause": "pause"})
"""QEMU's panic action (``set-action``) for each ``onPanic``."""


def describe_info(info: Mapping[str, Any] | None) -> str:
    """QEMU's panic detail for a log line (pvpanic gives none)."""
    if not info:
        return "no detail from the panic device"
    return json.dumps(dict(info), separators=(",", ":"), sort_keys=True, default=str)


class PanicHandler(BusComponent):
    """Applies ``onPanic`` to QEMU and to each guest panic (see the module docstring)."""

    def __init__(self, channel: Channel | None = None, name: str | None = None) -> None:
        super().__init__(channel, name)
        self._policy: PanicPolicy | None = None
        self._state = RunState.INITIALIZING
        self._status = PanicStatus()
        self._cont_after_reset = False
        """QEMU holds the guest at a panic: the next reset is followed by ``cont``."""
        self._stop_when_paused = False
        """``stop``: fire ``Stop`` once QEMU has paused the panicked guest."""

    @handler
    def on_state(self, event: RunnerStateChanged) -> None:
        self._state = event.new

    @handler
    def on_configure(self, event: ConfigureQemu) -> None:
        policy = event.config.vm.on_panic
        if policy == self._policy or event.state is RunState.STOPPED:
            return
        self._policy = policy
        self._status = self._updated(policy=policy)
        action = QEMU_ACTION[policy]

        def answered(reply: QmpReply) -> None:
            if reply.error is not None:
                _log.warning("onPanic %s: QEMU refused its panic action %s: %s",
                             policy, action, reply.error)
            else:
                _log.debug("onPanic %s: QEMU's panic action is %s", policy, action)

        self.execute_then(commands.SetAction(panic=action), answered)

    def _updated(self, **changes: Any) -> PanicStatus:
        return msgspec.structs.replace(self._status, **changes)

    @handler
    def on_panicked(self, event: QmpGuestPanicked | QmpGuestCrashloaded) -> None:
        crash_loaded = isinstance(event, QmpGuestCrashloaded)
        policy = self._policy or "reset"
        self._status = self._updated(count=self._status.count + 1, last_time=time.time(),
                                     last_action=event.action, last_info=event.info,
                                     last_crash_loaded=crash_loaded)
        self.fire(GuestPanicked(policy=policy, action=event.action, info=event.info,
                                crash_loaded=crash_loaded))
        what = f"the guest's kernel panicked ({describe_info(event.info)}; QEMU: {event.action})"
        if crash_loaded:
            _log.warning("%s: it has a crash kernel loaded and goes on into it (kdump); "
                         "onPanic is not applied", what)
        elif not self._state.vm_active:
            _log.warning("%s while the VM is %s: onPanic is not applied", what,
                         self._state.value)
        elif policy == "reset":
            _log.warning("%s; onPanic reset: resetting the VM", what)
            self._cont_after_reset = event.action == "pause"
            self.execute_then(commands.SystemReset(), self._reset_answered)
        elif policy == "stop":
            _log.warning("%s; onPanic stop: stopping the runner (exit code %d, %s)", what,
                         ExitCode.GUEST_PANICKED, ExitCode.GUEST_PANICKED.name)
            self.set_exit_code(ExitCode.GUEST_PANICKED)
            if event.action == "pause":
                self._stop_when_paused = True
            elif event.action == "run":
                self.fire(Stop())
        else:
            _log.warning("%s; onPanic pause: QEMU keeps the guest paused for debugging; "
                         "a reset (vmrunner reset) boots it again", what)
            self._cont_after_reset = event.action == "pause"

    def _reset_answered(self, reply: QmpReply) -> None:
        if reply.error is not None:
            _log.warning("onPanic reset: QEMU refused system_reset: %s", reply.error)
            return
        self._status = self._updated(resets=self._status.resets + 1)

    @handler
    def on_paused(self, event: GuestPaused) -> None:
        if self._stop_when_paused:
            self._stop_when_paused = False
            if self._state.vm_active:
                self.fire(Stop())

    @handler
    def on_reset(self, event: QmpReset) -> None:
        if not self._cont_after_reset:
            return
        self._cont_after_reset = False

        def answered(reply: QmpReply) -> None:
            if reply.error is not None:
                _log.warning("after the reset of the panicked guest: QEMU refused cont: %s",
                             reply.error)
            else:
                _log.info("the panicked guest was reset and runs again")

        self.execute_then(commands.Cont(), answered)

    @handler
    def on_exited(self, event: ProcessExited) -> None:
        if event.name == ProcessRole.QEMU:
            self._cont_after_reset = self._stop_when_paused = False

    @handler
    def on_status_query(self, event: StatusQuery) -> PanicStatus:
        return self._status
