"""The status document's ``guest`` part as lines of ``vmrunner status``.

Reads only the JSON document (:func:`vmrunner.api.status.guest_document`), so it works
against any runner that answers ``GET /status``; a document without ``guest`` (an older
runner) gives no lines.
"""

from __future__ import annotations

import time
from typing import Any

MIB = 2**20


def _size(value: int | None) -> str:
    return "?" if value is None else f"{value / MIB:.1f} MiB"


def guest_lines(guest: dict[str, Any] | None, now: float | None = None) -> list[str]:
    """The agent's state, then each interface (loopback left out) with its MAC and
    addresses, the logged-in users, each filesystem's usage, unsupported commands and
    errors; facts the agent has not given yet are left out."""
    if not guest:
        return []
    now = time.time() if now is None else now
    state = guest["agent"]
    pong = guest.get("lastPong")
    rtt = guest.get("pingSeconds")
    detail = ", ".join(part for part in (
        None if rtt is None else f"ping {rtt * 1000:.0f} ms",
        None if pong is None else f"last answer {max(0, now - pong):.0f} s ago") if part)
    lines = [f"    agent:      {state}" + (f" ({detail})" if detail else "")]
    facts = guest.get("facts")
    if not facts:
        return lines
    for interface in facts.get("interfaces") or []:
        if interface["name"] == "lo":
            continue
        addresses = " ".join(f"{a['address']}/{a['prefix']}" for a in interface["addresses"])
        lines.append(f"    {interface['name'] + ':':<11} {interface.get('mac') or '-'}"
                     + (f" {addresses}" if addresses else " (no address)"))
    users = facts.get("users")
    if users is not None:
        names = ", ".join(
            f"{u['name']} (since {time.strftime('%H:%M', time.localtime(u['loginTime']))})"
            for u in users)
        lines.append(f"    users:      {names or 'nobody logged in'}")
    for fs in facts.get("filesystems") or []:
        lines.append(f"    {fs['mountpoint'] + ':':<11} {fs['type']} on {fs['name']}, "
                     f"{_size(fs.get('usedBytes'))} of {_size(fs.get('totalBytes'))} used")
    if facts.get("unsupported"):
        lines.append(f"    not supported by the agent: {', '.join(facts['unsupported'])}")
    for error in facts.get("errors") or []:
        lines.append(f"    fact error: {error}")
    lines.append(f"    facts from: {max(0, now - facts['time']):.0f} s ago")
    return lines
