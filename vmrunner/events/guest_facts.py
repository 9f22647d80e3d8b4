"""Guest facts from qemu-ga and the agent's responsiveness (the GuestAgent fires these).

Facts are what the guest's agent says about the guest: network interfaces with their
addresses, logged-in users, mounted filesystems with their usage. Each kind is ``None``
until it is known; a command the agent does not have (``CommandNotFound``, which qemu-ga
also answers for a command disabled with ``--block-rpcs``) is listed in ``unsupported`` and
never asked again on that connection. The records encode (``msgspec.to_builtins``) with camelCase
keys, as the status document and the event stream show them, leaving out unknown (``None``)
and empty values.
"""

from __future__ import annotations

import enum

import msgspec

from vmrunner.core import Event
from vmrunner.events.status import StatusPart


class AgentState(enum.StrEnum):
    """qemu-ga as the runner sees it: ``responsive`` (the last timed ``guest-ping`` was
    answered), ``unresponsive`` (its port is open but the last ping was not answered in
    time: a hung agent) or ``disconnected`` (no synchronised session)."""

    RESPONSIVE = "responsive"
    UNRESPONSIVE = "unresponsive"
    DISCONNECTED = "disconnected"


class IpAddress(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One address of an interface: ``family`` is ``ipv4`` or ``ipv6``."""

    address: str
    prefix: int
    family: str


class NetworkInterface(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One guest network interface (``guest-network-get-interfaces``)."""

    name: str
    mac: str | None = None
    addresses: tuple[IpAddress, ...] = ()


class GuestUser(msgspec.Struct, frozen=True, kw_only=True, rename="camel",
                omit_defaults=True):
    """One logged-in user (``guest-get-users``): ``login_time`` is Unix time; ``domain`` only
    on Windows guests."""

    name: str
    login_time: float
    domain: str | None = None


class GuestFilesystem(msgspec.Struct, frozen=True, kw_only=True, rename="camel",
                omit_defaults=True):
    """One mounted filesystem (``guest-get-fsinfo``): ``name`` is the guest's device name;
    the byte counts are ``None`` when the agent could not ``statvfs`` it."""

    mountpoint: str
    type: str
    name: str
    total_bytes: int | None = None
    used_bytes: int | None = None


class GuestFacts(msgspec.Struct, frozen=True, kw_only=True, rename="camel",
                omit_defaults=True):
    """What the agent said at ``time`` (Unix time). ``None``: not known (not asked yet, not
    supported, or the last attempt failed: see ``errors``, ``"command: message"``)."""

    time: float
    interfaces: tuple[NetworkInterface, ...] | None = None
    users: tuple[GuestUser, ...] | None = None
    filesystems: tuple[GuestFilesystem, ...] | None = None
    unsupported: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    def same_as(self, other: GuestFacts | None) -> bool:
        """Equal apart from ``time``."""
        return other is not None and msgspec.structs.replace(other, time=self.time) == self


class GuestFactsUpdated(Event[None], frozen=True, kw_only=True):
    """The facts changed (fired by the GuestAgent after a refresh whose answers differ from
    the previous ones; an unchanged refresh fires nothing)."""

    facts: GuestFacts


class RefreshGuestFacts(Event[GuestFacts], frozen=True, kw_only=True):
    """Ask the agent for the facts now (``POST /guest/refresh``). Result: the facts after
    the refresh (the last ones, unasked, while the agent is unresponsive); no result when
    no agent is connected."""


class GuestAgentUnresponsive(Event[None], frozen=True, kw_only=True):
    """qemu-ga's port is open but ``guest-ping`` got no answer within ``timeout`` s (a hung
    agent). The shutdown ladder then skips the agent and presses the ACPI button at once."""

    timeout: float
    detail: str = ""


class GuestAgentResponsive(Event[None], frozen=True, kw_only=True):
    """qemu-ga answers ``guest-ping`` again after :class:`GuestAgentUnresponsive`."""


class GuestFactsStatus(StatusPart, frozen=True, kw_only=True):
    """The GuestAgent's view for ``GET /status``: the agent's state, when the last ping was
    answered (Unix time) and its round trip (s), the last facts (kept after a disconnect)."""

    agent: AgentState = AgentState.DISCONNECTED
    last_pong: float | None = None
    ping_seconds: float | None = None
    facts: GuestFacts | None = None
