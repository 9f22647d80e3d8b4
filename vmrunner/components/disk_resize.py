"""DiskResizer: ``vmrunner resize-disk DRIVE`` (``POST /resize-disk``), on demand.

When the file or block device behind a disk has grown (``truncate -s``, ``lvextend``, a PVC
expanded), QEMU and the guest still see the old size until QMP ``block_resize`` tells them.

Invariants:

* ``DRIVE`` is the disk's node name from the standard template (``disk0`` is the first raw
  drive in ``/Runner/vm/drives``, ``disk1`` the second...) or the path of its file or
  device; anything else is ``rejected`` naming the disks there are.
* The new size is what the host has now (``stat`` for a file, the device's end for a block
  device), read by the runner itself; it must not be smaller than the size QEMU has:
  shrinking would cut off the guest's data and is ``rejected``. The same size is ``applied``
  with nothing sent. A read-only disk and a ``qcow2`` image (its virtual size does not follow
  the file's) are ``rejected``.
* ``applied`` only once ``query-named-block-nodes`` shows the new size; the outcome is a
  :class:`~vmrunner.events.day2.DiskResizeChange`, fired and returned.
* Only on request: a file that grows is not watched (the operator or the orchestrator that
  grew it asks).
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path
from typing import Any

from vmrunner.components.base import BusComponent
from vmrunner.core import Channel, handler
from vmrunner.events import ExecuteQmp, Outcome, QmpReply, RunnerStateChanged, RunState
from vmrunner.events.day2 import DiskResizeChange, DiskResizeRequested
from vmrunner.protocols.qmp import commands

_log = logging.getLogger(__name__)

DISK_NODE = re.compile(r"disk\d+")
"""The format nodes of the template's raw drives."""


def host_size(path: str) -> int:
    """The size of the file or block device at ``path`` now (OSError if unreadable)."""
    info = os.stat(path)
    if not stat.S_ISBLK(info.st_mode):
        return info.st_size
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def find_disk(nodes: list[dict[str, Any]], drive: str) -> dict[str, Any] | None:
    """The format node of ``drive`` (a node name or the path of the node's file)."""
    disks = [n for n in nodes if DISK_NODE.fullmatch(str(n.get("node-name")))]
    for node in disks:
        if node.get("node-name") == drive:
            return node
    if "/" in drive:
        wanted = os.path.realpath(drive)
        for node in disks:
            if os.path.realpath(str(node.get("file", ""))) == wanted:
                return node
    return None


class DiskResizer(BusComponent):
    """Grows a disk live on request (see the module docstring)."""

    def __init__(self, channel: Channel | None = None, name: str | None = None) -> None:
        super().__init__(channel, name)
        self._state = RunState.STARTING

    @handler
    def on_state(self, event: RunnerStateChanged) -> None:
        self._state = event.new

    def _report(self, drive: str, outcome: Outcome, detail: str = "", previous: int = 0,
                size: int = 0) -> DiskResizeChange:
        level = logging.INFO if outcome is Outcome.APPLIED else logging.WARNING
        _log.log(level, "resize of disk %s %s%s", drive, outcome.value,
                 f": {detail}" if detail else "")
        change = DiskResizeChange(drive=drive, outcome=outcome, previous=previous, size=size,
                                  detail=detail)
        self.fire(change)
        return change

    async def _nodes(self) -> list[dict[str, Any]] | str:
        """The block nodes, or the error text."""
        reply: QmpReply | None = await self.call(
            ExecuteQmp(command=commands.QueryNamedBlockNodes()))
        if reply is None or reply.error is not None or not isinstance(reply.value, list):
            return f"QEMU: {'no monitor answered' if reply is None else reply.error}"
        return [n for n in reply.value if isinstance(n, dict)]

    @handler
    async def on_request(self, event: DiskResizeRequested) -> DiskResizeChange:
        drive = event.drive
        if not self._state.vm_active:
            return self._report(drive, Outcome.REJECTED,
                                f"the VM is {self._state.value}, not running")
        nodes = await self._nodes()
        if isinstance(nodes, str):
            return self._report(drive, Outcome.FAILED, nodes)
        node = find_disk(nodes, drive)
        if node is None:
            have = sorted(f"{n['node-name']} ({n.get('file')})" for n in nodes
                          if DISK_NODE.fullmatch(str(n.get("node-name"))))
            return self._report(drive, Outcome.REJECTED, "no such disk; the disks are: "
                                + (", ".join(have) or "none"))
        name = str(node["node-name"])
        previous = int(node.get("image", {}).get("virtual-size", 0))
        if node.get("drv") != "raw":
            return self._report(name, Outcome.REJECTED, f"a {node.get('drv')} image's size is "
                                "its virtual size, not the file's: only raw disks grow with "
                                "their file", previous)
        if node.get("ro"):
            return self._report(name, Outcome.REJECTED, "the disk is read-only", previous)
        path = str(node.get("file", ""))
        try:
            size = host_size(path)
        except OSError as exc:
            return self._report(name, Outcome.FAILED, f"{path}: {exc.strerror}", previous)
        if size < previous:
            return self._report(name, Outcome.REJECTED, f"{path} has {size} bytes, fewer than "
                                f"the disk's {previous}: shrinking is refused (it would cut "
                                "off the guest's data)", previous, size)
        if size == previous:
            return self._report(name, Outcome.APPLIED, f"{path} has not grown ({size} bytes)",
                                previous, size)
        return await self._resize(name, path, previous, size)

    async def _resize(self, name: str, path: str, previous: int, size: int) -> DiskResizeChange:
        reply = await self.call(ExecuteQmp(command=commands.BlockResize(node_name=name,
                                                                         size=size)))
        if reply is None or reply.error is not None:
            error = "no monitor answered" if reply is None else reply.error
            return self._report(name, Outcome.FAILED, f"block_resize: {error}", previous, size)
        nodes = await self._nodes()
        node = None if isinstance(nodes, str) else find_disk(nodes, name)
        now = 0 if node is None else int(node.get("image", {}).get("virtual-size", 0))
        if now != size:
            return self._report(name, Outcome.NOT_REACHED,
                                f"QEMU reports {now} bytes after block_resize to {size}",
                                previous, size)
        return self._report(name, Outcome.APPLIED,
                            f"{Path(path).name}: {previous} → {size} bytes", previous, size)
