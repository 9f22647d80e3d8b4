"""CdromController: changes, ejects and inserts CD-ROM media as the configuration says.

Every ``ide-cd`` drive of the configuration (ids ``cd0``, ``cd1``... in list order, as the
standard template renders them, on either bus) gets the medium its ``file`` names; no
``file`` means empty. A change goes:

1. ``blockdev-open-tray`` without force. QEMU answers success even on a tray the guest has
   locked (it only forwards an eject request), so only ``DEVICE_TRAY_MOVED tray-open=true``
   (matched on ``id``) proves the tray opened.
2. No such event within ``open_window`` seconds → the change is **pending**
   (:class:`~vmrunner.events.CdromMediumChange` with ``Outcome.PENDING``, a log line,
   :meth:`CdromController.status`). While pending, the open is retried with a bounded
   backoff (a guest that unmounts without ejecting leaves the tray closed but unlocked), and
   the change lands as soon as the guest opens the tray itself. Between the attempts
   ``query-block`` is asked every ``lock_poll`` seconds: a tray the guest unlocked (no
   event tells) is opened at once instead of at the next attempt (once per unlock). With the drive's
   ``forceAfter``, the tray is opened by force once that many seconds have passed.
3. With the tray open: ``blockdev-change-medium`` (which closes the tray) or
   ``blockdev-remove-medium`` + ``blockdev-close-tray``; then ``query-block`` confirms the
   medium before ``Outcome.APPLIED`` is reported.

A tray the guest opens with no change pending is reported
(:class:`~vmrunner.events.CdromEjectedByGuest`) and left alone: the medium is never
pushed back. A ``file`` that does not exist is rejected (``Outcome.REJECTED``, naming the key
path) without touching the VM; the drive keeps its previous target.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import msgspec

from vmrunner.components.base import BusComponent
from vmrunner.config.model import RunnerConfig
from vmrunner.core import Channel, HandlerContext, handler
from vmrunner.core.waiting import first_of
from vmrunner.events import (
    CdromEjectedByGuest,
    CdromMediumChange,
    ConfigureQemu,
    MonitorClosed,
    Outcome,
    QmpDeviceTrayMoved,
)
from vmrunner.events.lifecycle import VmPrepared
from vmrunner.events.status import CdromDriveStatus, CdromStatus, StatusQuery
from vmrunner.protocols.qmp import QmpError, commands

_log = logging.getLogger(__name__)

MAX_APPLY_ATTEMPTS = 3
"""Consecutive failed insert attempts (tray open, QEMU refuses) before giving up."""


class DriveStatus(msgspec.Struct, frozen=True):
    """What the controller knows of one CD-ROM drive (for status reports)."""

    drive: str
    key: str
    medium: Path | None
    """The medium QEMU has (confirmed), ``None`` when empty."""
    tray_open: bool
    pending: Path | None
    """The medium waiting to be inserted when ``pending_change`` is true."""
    pending_change: bool
    pending_since: float | None
    """``time.monotonic()`` when the change became pending."""



class CdromDrive(msgspec.Struct, frozen=True):
    """An ``ide-cd`` drive of the configuration."""

    id: str
    key: str
    file: Path | None
    force_after: float | None


def cdrom_drives(config: RunnerConfig) -> list[CdromDrive]:
    """The CD-ROM drives of ``config`` with the ids the standard template gives them."""
    found: list[CdromDrive] = []
    for index, drive in enumerate(config.vm.drives):
        if drive.type == "ide-cd":
            found.append(CdromDrive(id=f"cd{len(found)}", key=f"/Runner/vm/drives/{index}",
                                    file=drive.file, force_after=drive.force_after))
    return found


class _Drive:
    """The controller's mutable view of one drive, with its wake-up and its change task."""

    __slots__ = ("busy", "force_after", "id", "key", "medium", "pending_since", "target",
                 "task", "tray_open", "wake")

    def __init__(self, *, id: str, key: str, medium: Path | None, target: Path | None,
                 force_after: float | None = None) -> None:
        self.id = id
        self.key = key
        self.medium = medium
        """The medium QEMU has (confirmed)."""
        self.target = target
        """The medium the configuration wants."""
        self.force_after = force_after
        self.tray_open = False
        self.busy = False
        """A change task owns the tray events."""
        self.pending_since: float | None = None
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def status(self) -> DriveStatus:
        pending = self.target != self.medium
        return DriveStatus(drive=self.id, key=self.key, medium=self.medium,
                           tray_open=self.tray_open, pending=self.target if pending else None,
                           pending_change=pending, pending_since=self.pending_since)


class CdromController(BusComponent):
    """Keeps each CD-ROM drive's medium in line with the configuration (module docs).

    Args:
        open_window: seconds to wait for the tray to open before a change counts as pending.
        retry_initial, retry_max: the backoff between open attempts while pending.
        lock_poll: seconds between ``query-block`` while pending, to open a tray as soon as
            the guest unlocks it (``0``: only at the next attempt).
    """

    def __init__(self, channel: Channel | None = None, name: str | None = None, *,
                 open_window: float = 2.5, retry_initial: float = 2.0,
                 retry_max: float = 30.0, lock_poll: float = 0.1) -> None:
        super().__init__(channel, name)
        self.open_window = open_window
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.lock_poll = lock_poll
        self._drives: dict[str, _Drive] = {}
        self._status_planned: tuple[CdromDrive, ...] = ()
        """The drives of the prepared configuration (until the initial ``ConfigureQemu``)."""
        self._status_last: dict[str, tuple[Outcome, str]] | None = None
        """Per drive: the outcome and message of its last :class:`CdromMediumChange`."""

    def status(self) -> list[DriveStatus]:
        """The known state of every drive, in id order."""
        return [d.status() for d in self._drives.values()]

    # -- handlers ----------------------------------------------------------------------------

    @handler
    def on_configure(self, event: ConfigureQemu, ctx: HandlerContext[None]) -> None:
        wanted = cdrom_drives(event.config)
        if event.initial:
            self._drives = {w.id: _Drive(id=w.id, key=w.key, medium=w.file, target=w.file,
                                         force_after=w.force_after) for w in wanted}
            if self._drives:
                lock = ctx.hold()
                task = self.spawn(self._learn_trays(), name="cdrom-query")
                task.add_done_callback(lambda _t: lock.release())
            return
        if not event.state.vm_active:
            return
        for want in wanted:
            drive = self._drives.get(want.id)
            if drive is None:
                _log.info("%s: new CD-ROM drive %s needs a restart", want.key, want.id)
                continue
            drive.force_after = want.force_after
            self._retarget(drive, want)

    @handler
    def on_tray_moved(self, event: QmpDeviceTrayMoved) -> None:
        qmp = event
        drive = self._drives.get(qmp.id)
        if drive is None:
            return
        drive.tray_open = qmp.tray_open
        _log.debug("%s: tray %s", drive.id, "open" if qmp.tray_open else "closed")
        if drive.busy:
            drive.wake.set()
        elif qmp.tray_open:
            _log.info("%s: the guest opened the tray (ejected %s); left as it is",
                      drive.id, drive.medium or "nothing")
            self.fire(CdromEjectedByGuest(drive=drive.id, medium=drive.medium))

    @handler
    def on_monitor_closed(self, event: MonitorClosed) -> None:
        for drive in self._drives.values():
            if drive.task is not None:
                drive.task.cancel()
                drive.task = None

    # -- changes -----------------------------------------------------------------------------

    def _retarget(self, drive: _Drive, want: CdromDrive) -> None:
        if want.file == drive.target:
            return
        if want.file is not None and not want.file.is_file():
            message = (f"{want.key}/file: {want.file}: no such file; "
                       f"{drive.id} keeps {drive.target or 'no medium'}")
            _log.error("%s", message)
            self.fire(CdromMediumChange(drive=drive.id, key=want.key, old=drive.medium,
                                        new=want.file, outcome=Outcome.REJECTED,
                                        message=message))
            return
        if drive.target != drive.medium:
            _log.info("%s: pending change to %s superseded by %s", drive.id, drive.target,
                      want.file or "no medium")
            self.fire(CdromMediumChange(drive=drive.id, key=want.key, old=drive.medium,
                                        new=drive.target, outcome=Outcome.SUPERSEDED))
        drive.target = want.file
        drive.pending_since = None
        drive.wake.set()
        if drive.task is None or drive.task.done():
            drive.busy = True  # from now on tray events belong to this change
            drive.task = self.spawn(self._converge(drive), name=f"cdrom-{drive.id}")

    async def _learn_trays(self) -> None:
        try:
            blocks: list[dict[str, Any]] = (await self.execute(commands.QueryBlock())).unwrap()
        except QmpError as exc:
            _log.warning("query-block failed, assuming closed trays: %s", exc)
            return
        for block in blocks:
            drive = self._drives.get(str(block.get("qdev", "")))
            if drive is not None:
                drive.tray_open = bool(block.get("tray_open", False))

    async def _wait_unlock(self, drive: _Drive, seconds: float, held: bool) -> bool:
        """Until the tray moves, the target changes, or ``seconds`` pass; asking
        ``query-block`` every ``lock_poll`` s, also until the tray is closed and unlocked after
        it was ``held`` (locked) or seen locked. Returns whether it ended for that reason."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        unlocked = False
        while (left := deadline - loop.time()) > 0:
            if self.lock_poll <= 0:
                await first_of(drive.wake.wait(), timeout=left)
                break
            if await first_of(drive.wake.wait(), timeout=min(self.lock_poll, left)):
                break
            locked = await self._locked(drive)
            if locked is False and held and not drive.tray_open:
                _log.info("%s: the guest unlocked the tray; opening it again", drive.id)
                unlocked = True
                break
            held = held or bool(locked)
        drive.wake.clear()
        return unlocked

    async def _locked(self, drive: _Drive) -> bool | None:
        """Whether QEMU has ``drive``'s tray locked by the guest (``None``: unknown)."""
        reply = await self.execute(commands.QueryBlock())
        if reply.error is not None or not isinstance(reply.value, list):
            _log.debug("query-block: %s", reply.error or reply.value)
            return None
        for block in reply.value:
            if isinstance(block, dict) and block.get("qdev") == drive.id:
                return bool(block.get("locked", False))
        return None

    def _report(self, drive: _Drive, new: Path | None, outcome: Outcome, message: str,
                forced: bool = False) -> None:
        self.fire(CdromMediumChange(drive=drive.id, key=drive.key, old=drive.medium, new=new,
                                    outcome=outcome, message=message, forced=forced))

    async def _converge(self, drive: _Drive) -> None:
        """Open the tray (retrying while the guest holds it) and apply ``drive.target``."""
        started = time.monotonic()
        attempts = 0
        failures = 0
        forced = False
        early = False  # the last wait ended because the guest unlocked the tray
        last: Path | None = drive.medium
        try:
            while drive.target != drive.medium:
                target = drive.target
                if target != last:  # a new request: fresh backoff and force deadline
                    last, attempts, started, early = target, 0, time.monotonic(), False
                if not drive.tray_open:
                    force = (drive.force_after is not None
                             and time.monotonic() - started >= drive.force_after)
                    drive.wake.clear()
                    opening = commands.BlockdevOpenTray(id=drive.id, force=force)
                    (await self.execute(opening)).unwrap()
                    forced = forced or force
                    wait = self.open_window if attempts == 0 else min(
                        self.retry_initial * 2 ** (attempts - 1), self.retry_max)
                    attempts += 1
                    if drive.force_after is not None and not force:
                        wait = min(wait, max(0.0, started + drive.force_after
                                             - time.monotonic()))
                    # after a failed attempt the tray was locked: its unlock opens it again
                    # at once (once: a tray that stays shut when unlocked waits the backoff)
                    early = await self._wait_unlock(drive, wait,
                                                    held=attempts > 1 and not early)
                    if drive.target != target:
                        continue
                    if not drive.tray_open:
                        if drive.pending_since is None:
                            drive.pending_since = time.monotonic()
                            message = (f"{drive.id}: the guest keeps the tray closed (locked);"
                                       f" {target or 'the removal'} waits until it opens it")
                            _log.warning("%s", message)
                            self._report(drive, target, Outcome.PENDING, message)
                        continue
                try:
                    await self._insert(drive, target)
                except QmpError as exc:
                    failures += 1
                    if failures >= MAX_APPLY_ATTEMPTS:
                        raise
                    _log.info("%s: change not accepted (%s); retrying", drive.id, exc)
                    continue
                message = f"{drive.id}: {target or 'no medium'} in place" + (
                    " (tray opened by force)" if forced else "")
                _log.info("%s", message)
                self._report(drive, target, Outcome.APPLIED, message, forced)
                drive.medium = target
                drive.pending_since = None
        except QmpError as exc:
            message = f"{drive.id}: changing to {drive.target or 'no medium'} failed: {exc}"
            _log.error("%s", message)
            self._report(drive, drive.target, Outcome.FAILED, message)
            drive.target = drive.medium
            drive.pending_since = None
        finally:
            drive.busy = False
            drive.wake.clear()

    async def _insert(self, drive: _Drive, target: Path | None) -> None:
        """With the tray open: put ``target`` in (or empty the drive) and confirm it."""
        if target is None:
            (await self.execute(commands.BlockdevRemoveMedium(id=drive.id))).unwrap()
            (await self.execute(commands.BlockdevCloseTray(id=drive.id))).unwrap()
        else:
            change = commands.BlockdevChangeMedium(id=drive.id, filename=str(target))
            (await self.execute(change)).unwrap()
        blocks: list[dict[str, Any]] = (await self.execute(commands.QueryBlock())).unwrap()
        for block in blocks:
            if block.get("qdev") != drive.id:
                continue
            inserted = block.get("inserted")
            have = Path(str(inserted["file"])) if isinstance(inserted, dict) else None
            drive.tray_open = bool(block.get("tray_open", False))
            if have != target:
                raise QmpError(f"query-block shows {have or 'no medium'} in {drive.id}")
            return
        raise QmpError(f"query-block does not list {drive.id}")

    # -- status (GET /status) ----------------------------------------------------------------

    @handler
    def on_status_prepared(self, event: VmPrepared) -> None:
        self._status_planned = tuple(cdrom_drives(event.plan.config))

    @handler
    def on_status_change(self, event: CdromMediumChange) -> None:
        self._status_last = {**(self._status_last or {}),
                             event.drive: (event.outcome, event.message)}

    @handler
    def on_status_query(self, event: StatusQuery) -> CdromStatus:
        """Every drive; a change counts as pending once it has been reported pending."""
        drives = self.status() if self._drives else [
            DriveStatus(drive=p.id, key=p.key, medium=p.file, tray_open=False, pending=None,
                        pending_change=False, pending_since=None) for p in self._status_planned]
        last = self._status_last or {}
        to_unix = time.time() - time.monotonic()
        records = []
        for d in drives:
            outcome, message = last.get(d.drive, (None, ""))
            since = None if d.pending_since is None else to_unix + d.pending_since
            waiting = d.pending_change and since is not None
            records.append(CdromDriveStatus(
                drive=d.drive, key=d.key, medium=d.medium, tray_open=d.tray_open,
                pending=d.pending if waiting else None, pending_since=since if waiting else None,
                last_outcome=outcome, message=message))
        return CdromStatus(drives=tuple(records))
