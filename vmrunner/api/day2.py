"""The API's day-2 routes (all ``POST``): ``/pause``, ``/resume``, ``/resize-disk``,
``/fsfreeze``, ``/fsthaw``, ``/screenshot``.

Each fires its request event (:mod:`vmrunner.events.day2`) on a fresh pipeline and answers
with the outcome: JSON ``{"outcome", "detail", ...}``, 200 when ``applied``, 409 otherwise
(503 when no component handled it); ``/screenshot`` answers 200 with the ``image/png`` bytes.
The body is a JSON object or empty: ``/resize-disk`` needs ``{"drive": NAME}``,
``/fsfreeze`` takes ``{"timeout": SECONDS}``; an unknown key or a bad value is a 400 naming it.
"""

from __future__ import annotations

import json
from typing import Any

from vmrunner.components.base import BusComponent
from vmrunner.events import Outcome
from vmrunner.events.day2 import (
    MAX_FREEZE_TIMEOUT,
    DiskResizeRequested,
    FsFreezeRequested,
    FsThawRequested,
    PauseRequested,
    ResumeRequested,
    ScreenshotRequested,
)

ROUTES = {path: "POST" for path in ("/pause", "/resume", "/resize-disk", "/fsfreeze",
                                    "/fsthaw", "/screenshot")}
"""The day-2 routes and their method."""
BODY_KEYS = {"/resize-disk": {"drive"}, "/fsfreeze": {"timeout"}}
DEFAULT_FREEZE_TIMEOUT = 60.0
JSON = "application/json"
PNG = "image/png"

Answer = tuple[int, str, bytes]
"""HTTP status, content type, body."""


def _json(status: int, body: dict[str, Any]) -> Answer:
    return status, JSON, json.dumps(body, indent=1).encode() + b"\n"


def _body(path: str, body: bytes) -> dict[str, Any]:
    """The request's JSON object (``{}`` when empty); ValueError naming a bad key."""
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"the body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("the body must be a JSON object")
    unknown = sorted(set(value) - BODY_KEYS.get(path, set()))
    if unknown:
        raise ValueError(f"{path} takes no key {unknown[0]!r}")
    return value


def _outcome(change: Any, extra: dict[str, Any] | None = None) -> Answer:
    if change is None:
        return _json(503, {"outcome": "failed", "detail": "no component handled the request"})
    outcome: Outcome = change.outcome
    return _json(200 if outcome is Outcome.APPLIED else 409,
                 {"outcome": outcome.value, "detail": change.detail, **(extra or {})})


async def answer(component: BusComponent, path: str, body: bytes) -> Answer:
    """Handle the day-2 route ``path`` (one of :data:`ROUTES`) for ``component``'s bus."""
    try:
        args = _body(path, body)
    except ValueError as exc:
        return _json(400, {"error": str(exc)})
    if path in ("/pause", "/resume"):
        event = PauseRequested() if path == "/pause" else ResumeRequested()
        change = await component.call(event)
        return _outcome(change, None if change is None else {"clock": change.clock})
    if path == "/resize-disk":
        drive = args.get("drive")
        if not isinstance(drive, str) or not drive:
            return _json(400, {"error": "drive: a disk's name (disk0...) or path is needed"})
        resized = await component.call(DiskResizeRequested(drive=drive))
        return _outcome(resized, None if resized is None else {
            "drive": resized.drive, "previous": resized.previous, "size": resized.size})
    if path == "/fsfreeze":
        timeout = args.get("timeout", DEFAULT_FREEZE_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) \
                or not 0 < timeout <= MAX_FREEZE_TIMEOUT:
            return _json(400, {"error": f"timeout: {timeout!r} is not a number of seconds "
                                        f"more than 0 and at most {MAX_FREEZE_TIMEOUT:g}"})
        frozen = await component.call(FsFreezeRequested(timeout=float(timeout)))
        return _freeze(frozen)
    if path == "/fsthaw":
        return _freeze(await component.call(FsThawRequested()))
    shot = await component.call(ScreenshotRequested())
    if shot is None:
        return _json(503, {"outcome": "failed", "detail": "no component took screenshots"})
    if shot.error:
        return _json(409, {"outcome": "failed", "detail": shot.error})
    return 200, PNG, shot.data


def _freeze(change: Any) -> Answer:
    return _outcome(change, None if change is None else {
        "filesystems": change.filesystems, "status": change.status, "thawAt": change.thaw_at})
