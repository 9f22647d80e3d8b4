"""The status the runner wants its ``VirtualMachine`` to show, and the merge patch to it.

:class:`DesiredStatus` holds only what the runner owns (contract §3): the fields
``runnerVersion``, ``cpus``, ``ram``, ``osinfo``, ``displayPasswordSerial``,
``consoleClient``, ``loggedInUser`` (plus ``vmrunner``, a field of our own that the
contract does not know: ``vmrunner.guest``, the guest agent's facts) and the conditions
``Running``, ``Booted``, ``VmopAgentConnected``, ``UserLoggedIn``, ``ConsoleConnected``. It
is one value, changed in place by the event mappings and read by the writer whenever it
writes: a write always carries the current truth, never an older state.

:func:`status_patch` compares it with the status the server last showed and returns a JSON
merge patch (RFC 7386) of the differences only, so the manager's fields (``consoleUser``,
``assignment``) and any field the runner does not own are never part of a write:

* a field set to ``None`` (``osinfo``, ``loggedInUser``) is removed (``null``);
* ``osinfo`` and ``vmrunner`` replace the server's object exactly (keys they no longer have
  are nulled);
* ``conditions`` is a list, which a merge patch replaces whole: the list sent keeps every
  condition of a type the runner does not own as the server had it, and is sent with the
  object's ``resourceVersion`` (a concurrent change makes it a 409 and the writer re-reads);
* a condition's ``lastTransitionTime`` is the server's while its ``status`` is unchanged and
  ``now`` when it flips or is new; ``observedGeneration`` is the generation of the applied
  configuration.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import msgspec

CONDITION_TYPES = ("Running", "Booted", "VmopAgentConnected", "UserLoggedIn",
                   "ConsoleConnected")
"""The conditions the runner owns, in the order it creates them."""
FIELDS = ("runnerVersion", "cpus", "ram", "osinfo", "displayPasswordSerial",
          "consoleClient", "loggedInUser", "vmrunner")
"""The status fields the runner owns (``vmrunner``: our own object, not in the contract:
``vmrunner.guest`` holds the guest agent's state and facts)."""
REPLACED = ("osinfo", "vmrunner")
"""Object fields sent so that the server's copy becomes exactly ours (vanished keys nulled)."""


class Condition(msgspec.Struct, frozen=True):
    """One wanted condition: ``status`` is ``True`` or ``False``."""

    status: bool
    reason: str
    message: str


class DesiredStatus:
    """What the runner wants the status to be (mutable; the writer reads it on each write).

    ``fields`` maps the owned field names to their values (``None``: absent); a field not in
    ``fields`` is not written at all. ``conditions`` maps owned condition types to
    :class:`Condition`.
    """

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}
        self.conditions: dict[str, Condition] = {}

    def set(self, name: str, value: Any) -> None:
        """Set owned field ``name`` (``None`` removes it from the status)."""
        if name not in FIELDS:
            raise KeyError(f"{name!r} is not a status field the runner owns")
        self.fields[name] = value

    def condition(self, type_: str, status: bool, reason: str, message: str) -> None:
        """Set owned condition ``type_``."""
        if type_ not in CONDITION_TYPES:
            raise KeyError(f"{type_!r} is not a condition the runner owns")
        self.conditions[type_] = Condition(status, reason, message)


def rfc3339(moment: datetime.datetime) -> str:
    """``moment`` (aware) as RFC 3339 UTC with seconds: ``2026-01-01T00:00:00Z`` (the form of
    ``metav1.Time``, which ``lastTransitionTime`` is)."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_replace(old: Any, new: Any) -> Any:
    """A merge-patch value that turns ``old`` into exactly ``new`` (nested objects: their
    vanished keys set to ``None``)."""
    if isinstance(new, Mapping) and isinstance(old, Mapping):
        patch: dict[str, Any] = {key: None for key in old if key not in new}
        for key, value in new.items():
            if key not in old or old[key] != value:
                patch[key] = merge_replace(old.get(key), value)
        return patch
    return new


def _conditions(desired: DesiredStatus, server: list[Any], generation: int | None,
                now: str) -> list[dict[str, Any]] | None:
    """The full conditions list to send, ``None`` when the server's already matches."""
    by_type = {c.get("type"): c for c in server if isinstance(c, Mapping)}
    result: list[dict[str, Any]] = []
    changed = False
    for entry in server:
        if not isinstance(entry, Mapping) or entry.get("type") not in desired.conditions:
            result.append(dict(entry) if isinstance(entry, Mapping) else entry)
    for type_ in CONDITION_TYPES:
        wanted = desired.conditions.get(type_)
        old = by_type.get(type_)
        if wanted is None:
            if old is not None:
                result.append(dict(old))
            continue
        status = "True" if wanted.status else "False"
        kept = None if old is None or old.get("status") != status \
            else old.get("lastTransitionTime")
        transition = kept or now
        condition: dict[str, Any] = {"type": type_, "status": status, "reason": wanted.reason,
                                     "message": wanted.message,
                                     "lastTransitionTime": transition}
        if generation is not None:
            condition["observedGeneration"] = generation
        elif old is not None and "observedGeneration" in old:
            condition["observedGeneration"] = old["observedGeneration"]
        if old is None or any(old.get(k) != v for k, v in condition.items()):
            changed = True
        result.append(condition)
    return result if changed else None


def status_patch(desired: DesiredStatus, server_status: Mapping[str, Any] | None,
                 generation: int | None, now: datetime.datetime) -> dict[str, Any]:
    """The ``status`` merge patch from ``server_status`` to ``desired`` (``{}``: nothing to
    write). ``generation``: the ``observedGeneration`` for the conditions (``None``: keep)."""
    server = server_status or {}
    patch: dict[str, Any] = {}
    for name, value in desired.fields.items():
        if name not in server:
            if value is not None:
                patch[name] = value
        elif server[name] != value:
            patch[name] = (merge_replace(server[name], value)
                           if name in REPLACED else value)
    server_conditions = server.get("conditions")
    conditions = _conditions(desired, server_conditions if isinstance(server_conditions, list)
                             else [], generation, rfc3339(now))
    if conditions is not None:
        patch["conditions"] = conditions
    return patch
