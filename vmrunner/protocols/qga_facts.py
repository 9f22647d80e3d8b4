"""Guest facts from qemu-ga: the three commands, their answers as typed records.

:func:`gather` asks ``guest-network-get-interfaces``, ``guest-get-users`` and
``guest-get-fsinfo`` one after the other. Invariants:

* a command the agent does not have (:attr:`QgaExecuteError.unsupported`) is reported in
  ``GuestFacts.unsupported`` and its fact stays ``None``; the caller passes the set back as
  ``skip`` so it is not asked again on that connection;
* any other failure (an error answer, a timeout) is one ``"command: message"`` in
  ``GuestFacts.errors``; the fact keeps its ``previous`` value (stale beats nothing);
* a disconnect is not a fact: :class:`QgaDisconnected` propagates.

The parsers take what qemu-ga documents and ignore what they do not know; a malformed entry
(not an object, no name) is dropped, never fatal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from vmrunner.events.guest_facts import (
    GuestFacts,
    GuestFilesystem,
    GuestUser,
    IpAddress,
    NetworkInterface,
)
from vmrunner.protocols.qga import GuestAgent, QgaDisconnected, QgaError, QgaExecuteError

INTERFACES = "guest-network-get-interfaces"
USERS = "guest-get-users"
FILESYSTEMS = "guest-get-fsinfo"
COMMANDS = (INTERFACES, USERS, FILESYSTEMS)


def _objects(value: Any) -> Iterable[dict[str, Any]]:
    return (item for item in value if isinstance(item, dict)) if isinstance(value, list) else ()


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_interfaces(value: Any) -> tuple[NetworkInterface, ...]:
    """``guest-network-get-interfaces``' answer (loopback included, as the guest lists it)."""
    result = []
    for item in _objects(value):
        name = item.get("name")
        if not isinstance(name, str):
            continue
        addresses = tuple(
            IpAddress(address=a["ip-address"], prefix=_int(a.get("prefix")) or 0,
                      family=str(a.get("ip-address-type", "")))
            for a in _objects(item.get("ip-addresses"))
            if isinstance(a.get("ip-address"), str))
        mac = item.get("hardware-address")
        result.append(NetworkInterface(name=name, mac=mac if isinstance(mac, str) else None,
                                       addresses=addresses))
    return tuple(result)


def parse_users(value: Any) -> tuple[GuestUser, ...]:
    """``guest-get-users``' answer (``login-time``: seconds, a float)."""
    result = []
    for item in _objects(value):
        name = item.get("user")
        if not isinstance(name, str):
            continue
        login = item.get("login-time")
        domain = item.get("domain")
        result.append(GuestUser(
            name=name, login_time=float(login) if isinstance(login, int | float) else 0.0,
            domain=domain if isinstance(domain, str) else None))
    return tuple(result)


def parse_filesystems(value: Any) -> tuple[GuestFilesystem, ...]:
    """``guest-get-fsinfo``' answer, sorted by mount point."""
    result = []
    for item in _objects(value):
        mountpoint = item.get("mountpoint")
        if not isinstance(mountpoint, str):
            continue
        result.append(GuestFilesystem(
            mountpoint=mountpoint, type=str(item.get("type", "")),
            name=str(item.get("name", "")), total_bytes=_int(item.get("total-bytes")),
            used_bytes=_int(item.get("used-bytes"))))
    return tuple(sorted(result, key=lambda fs: fs.mountpoint))


_PARSERS: dict[str, Callable[[Any], tuple[Any, ...]]] = {
    INTERFACES: parse_interfaces, USERS: parse_users, FILESYSTEMS: parse_filesystems}


async def gather(client: GuestAgent, *, skip: Iterable[str] = (),
                 previous: GuestFacts | None = None,
                 command_timeout: float | None = None) -> GuestFacts:
    """Ask the agent for every fact not in ``skip`` (see the module docstring);
    ``command_timeout`` bounds each command.

    :raise QgaDisconnected: the connection is gone.
    """
    skipped = set(skip)
    found: dict[str, tuple[Any, ...] | None] = {
        INTERFACES: None if previous is None else previous.interfaces,
        USERS: None if previous is None else previous.users,
        FILESYSTEMS: None if previous is None else previous.filesystems}
    unsupported = [command for command in COMMANDS if command in skipped]
    errors = []
    for command in COMMANDS:
        if command in skipped:
            found[command] = None
            continue
        try:
            answer = await client.execute(command, timeout=command_timeout)
            found[command] = _PARSERS[command](answer)
        except QgaDisconnected:
            raise
        except QgaExecuteError as exc:
            if exc.unsupported:
                unsupported.append(command)
                found[command] = None
            else:
                errors.append(f"{command}: {exc.error_class}: {exc.desc}")
        except QgaError as exc:
            errors.append(f"{command}: {exc}")
    return GuestFacts(time=round(time.time(), 3), interfaces=found[INTERFACES], users=found[USERS],
                      filesystems=found[FILESYSTEMS], unsupported=tuple(unsupported),
                      errors=tuple(errors))
