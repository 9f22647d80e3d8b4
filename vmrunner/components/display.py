"""DisplayController: the SPICE password and its expiry, from files next to the configuration.

The files ``display-password`` and ``password-expiry`` in the configuration's directory (the
keys of a Kubernetes Secret mounted there) are applied to the running QEMU with
``set_password`` and ``expire_password``: once before the guest starts (the initial
``ConfigureQemu`` is held until QEMU answered) and whenever either file changes (inotify on
the directory via :class:`~vmrunner.core.config.watch.FileWatch`, so in-place writes, renames
and the Secret volume's ``..data`` swap are all seen).

* ``display-password`` is used verbatim (no trimming, like QEMU's ``-object secret,file=``).
  The password never appears in logs, events, argv or rendered output; QMP traffic logs
  mask it.
* ``password-expiry`` holds ``now``, ``never``, ``+SECONDS`` or seconds since the epoch;
  without the file the expiry is ``never``. QEMU keeps the old expiry when only the password
  changes, so the expiry is sent again after every new password (and a ``+SECONDS`` window
  restarts with it). An invalid expiry rejects the whole change: the old password and
  expiry stay in force.
* QEMU takes a password live only if SPICE was started with one (``-spice
  password-secret``): ``passwordFile`` is set, or ``display-password`` existed beside the
  configuration when the VM started (VM-Operator's display secret: QEMU's first password is
  read from it), or the deprecated ``ticket`` is set; see
  :func:`~vmrunner.config.spice.spice_password_source`. Without any of them, a
  ``display-password`` file that appears later is rejected (once per content) with a "needs
  restart" message and nothing is sent (QEMU 7.2 answers ``set_password`` with "Could not
  set password", and an ``expire_password`` would lock every client out).
* Removing ``display-password`` changes nothing (the current password stays until it
  expires); ticketing itself (on or off) is fixed when QEMU starts.

Each outcome is a :class:`~vmrunner.events.DisplayPasswordChange` with a ``serial`` that
counts the passwords QEMU accepted. Without SPICE in the configuration nothing happens.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

from vmrunner.components.base import BusComponent
from vmrunner.config.spice import spice_password_source
from vmrunner.core import Channel, HandlerContext, handler
from vmrunner.core.config.watch import FileWatch
from vmrunner.core.waiting import first_of
from vmrunner.events import (
    ConfigureQemu,
    DisplayPasswordChange,
    MonitorClosed,
    Outcome,
)
from vmrunner.protocols.qmp import QmpError, commands

_log = logging.getLogger(__name__)

PASSWORD_FILE = "display-password"
EXPIRY_FILE = "password-expiry"
_EXPIRY = re.compile(r"now|never|\+?\d+")
NO_TICKETING = (
    "/Runner/vm/display/spice/passwordFile: unset (and there was no display-password file and "
    "no ticket when the VM started), so QEMU runs SPICE without passwords and cannot take {} "
    "live (QEMU refuses set_password, and an expiry would lock everybody out); restart the VM "
    "with the display-password file in place, or set passwordFile")


class DisplayController(BusComponent):
    """Applies ``config_dir/display-password`` and ``config_dir/password-expiry`` live."""

    def __init__(self, config_dir: str | Path, channel: Channel | None = None,
                 name: str | None = None) -> None:
        super().__init__(channel, name)
        self.config_dir = Path(config_dir).absolute()
        self.serial = 0
        """How many passwords QEMU has accepted."""
        self._protocol: commands.PasswordProtocol | None = None
        self._password: str | None = None
        self._expiry: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._removed_reported = False
        self._ticketing = False
        """Whether QEMU's SPICE started with a password (else none can be set live)."""
        self._refused: str | None = None

    @property
    def password_path(self) -> Path:
        return self.config_dir / PASSWORD_FILE

    @property
    def expiry_path(self) -> Path:
        return self.config_dir / EXPIRY_FILE

    @handler
    def on_configure(self, event: ConfigureQemu, ctx: HandlerContext[None]) -> None:
        if not event.initial or self._task is not None:
            return
        display = event.config.vm.display
        if display is None or display.spice is None:
            _log.debug("no SPICE display: %s is not used", self.password_path)
            return
        self._protocol = "spice"
        self._ticketing = spice_password_source(event.config, self.config_dir) is not None
        lock = ctx.hold()
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ready.add_done_callback(lambda _f: lock.release())
        self._task = self.spawn(self._follow(ready), name="display-password")
        self._task.add_done_callback(lambda _t: lock.release())

    @handler
    def on_monitor_closed(self, event: MonitorClosed) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _follow(self, ready: asyncio.Future[None]) -> None:
        async with FileWatch(self.password_path) as password, \
                FileWatch(self.expiry_path) as expiry:
            try:
                await self.sync()
            finally:
                if not ready.done():
                    ready.set_result(None)
            while True:
                await first_of(password.changed(), expiry.changed())
                password.refresh()
                expiry.refresh()
                await self.sync()

    def _read(self, path: Path) -> str | None:
        try:
            return path.read_bytes().decode()
        except FileNotFoundError:
            return None

    def _report(self, outcome: Outcome, message: str, *, changed: bool = False,
                expiry: str | None = None) -> None:
        assert self._protocol is not None
        (_log.info if outcome is Outcome.APPLIED else _log.error)("%s", message)
        self.fire(DisplayPasswordChange(protocol=self._protocol, outcome=outcome,
                                        serial=self.serial, password_changed=changed,
                                        expiry=expiry, message=message))

    async def sync(self) -> None:
        """Read both files and send what differs from what QEMU has (idempotent)."""
        protocol = self._protocol
        if protocol is None:
            return
        try:
            password = self._read(self.password_path)
            raw_expiry = self._read(self.expiry_path)
        except (OSError, UnicodeDecodeError) as exc:
            self._report(Outcome.REJECTED, f"display password not changed: {exc}")
            return
        if password is None:
            if self._password is not None and not self._removed_reported:
                self._removed_reported = True
                _log.warning("%s was removed; the current display password stays in force "
                             "until it expires", self.password_path)
            return
        self._removed_reported = False
        if not self._ticketing:
            if password != self._refused:  # once per content
                self._refused = password
                self._report(Outcome.REJECTED, NO_TICKETING.format(self.password_path))
            return
        expiry = "never" if raw_expiry is None else raw_expiry.strip()
        if not _EXPIRY.fullmatch(expiry):
            self._report(Outcome.REJECTED,
                         f"{self.expiry_path}: {expiry!r} is not now, never, +SECONDS or "
                         "seconds since the epoch; display password and expiry unchanged")
            return
        changed = password != self._password
        if not changed and expiry == self._expiry:
            return
        try:
            if changed:
                setting = commands.SetPassword(protocol=protocol, password=password)
                (await self.execute(setting)).unwrap()
                self._password = password
                self.serial += 1
            (await self.execute(commands.ExpirePassword(protocol=protocol, time=expiry))).unwrap()
            self._expiry = expiry
        except QmpError as exc:
            self._report(Outcome.FAILED, f"display password not applied: {exc}",
                         changed=False, expiry=None)
            return
        what = "display password set" if changed else "display password expiry set"
        self._report(Outcome.APPLIED, f"{what} (serial {self.serial}, expires {expiry})",
                     changed=changed, expiry=expiry)
