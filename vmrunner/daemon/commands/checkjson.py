"""``vmrunner check --json``: the problems as one JSON document.

``{"file": str, "ok": bool, "problems": [{"path": str, "severity": "error"|"warning",
"message": str}]}``. ``path`` is the key path (``/Runner/vm/maximumRam``), or ``""`` for a
problem that belongs to no key (an unreadable file, a template that does not render).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def problem(item: object) -> dict[str, Any]:
    """One problem as ``check --json`` reports it: a validation ``Problem`` (path, message,
    severity), or a line ``[warning: ]/key/path: message``, or an exception (an error)."""
    path, message, severity = getattr(item, "path", None), getattr(item, "message", None), \
        getattr(item, "severity", None)
    if isinstance(path, str) and isinstance(message, str) and isinstance(severity, str):
        return {"path": path, "severity": severity, "message": message}
    text = str(item)
    severity = "error"
    if isinstance(item, str) and text.startswith("warning: "):
        severity, text = "warning", text.removeprefix("warning: ")
    key, sep, rest = text.partition(": ")
    if sep and key.startswith("/") and " " not in key:
        return {"path": key, "severity": severity, "message": rest}
    return {"path": "", "severity": severity, "message": text}


def problems_document(file: Path, items: Sequence[object], *, ok: bool) -> str:
    """The JSON document of ``check --json`` (see the module docstring)."""
    return json.dumps({"file": str(file), "ok": ok, "problems": [problem(i) for i in items]},
                      indent=2)
