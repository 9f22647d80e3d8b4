"""``status.vmrunner.guest``: the guest agent's state and facts as the VirtualMachine shows them.

A field of our own (the contract's status has no such name, so it cannot clash with the
reference's or the manager's fields): ``agent`` (``responsive``, ``unresponsive``,
``disconnected``), then the facts as the status API shows them (``interfaces``, ``users``,
``filesystems``, ``unsupported``, ``errors``; camelCase) with ``factsTime`` (RFC 3339) for
when the agent gave them. Ping times are left out: they would make a write every ping.
"""

from __future__ import annotations

import datetime
from typing import Any

import msgspec

from vmrunner.events.guest_facts import AgentState, GuestFacts
from vmrunner.kube.status import rfc3339


def guest_status(agent: AgentState, facts: GuestFacts | None) -> dict[str, Any]:
    """The value of ``status.vmrunner`` for ``agent`` and the last ``facts``."""
    guest: dict[str, Any] = {"agent": agent.value}
    if facts is not None:
        data = msgspec.to_builtins(facts)
        data.pop("time")
        guest.update(data)
        guest["factsTime"] = rfc3339(datetime.datetime.fromtimestamp(facts.time, datetime.UTC))
    return {"guest": guest}
