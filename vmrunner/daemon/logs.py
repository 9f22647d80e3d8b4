"""Logging set-up for the command line: plain text or one JSON object per line.

Plain text to a stream that is the journal (``$JOURNAL_STREAM`` is ``<dev>:<inode>`` of that
fd, set by systemd) has an sd-daemon(3) ``<N>`` priority prefix and no timestamp.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Literal, TextIO

LogFormat = Literal["text", "json"]


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message (and exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class JournalFormatter(logging.Formatter):
    """``<N>level logger: message`` (N: sd-daemon(3) priority); journald adds the time."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{journal_priority(record.levelno)}>"
        return prefix + super().format(record).replace("\n", "\n" + prefix)


def journal_priority(level: int) -> int:
    """sd-daemon(3) priority of a logging level: ERROR and above 3, WARNING 4, INFO 6, else 7."""
    if level >= logging.ERROR:
        return 3
    if level >= logging.WARNING:
        return 4
    return 6 if level >= logging.INFO else 7


def is_journal(stream: TextIO, env: Mapping[str, str]) -> bool:
    """Whether ``stream``'s fd is the one ``$JOURNAL_STREAM`` names (``dev:inode``)."""
    dev, _, inode = env.get("JOURNAL_STREAM", "").partition(":")
    if not (dev.isascii() and inode.isascii() and dev.isdigit() and inode.isdigit()):
        return False
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return (info.st_dev, info.st_ino) == (int(dev), int(inode))


def setup_logging(level: str = "INFO", fmt: LogFormat = "text",
                  stream: TextIO | None = None, env: Mapping[str, str] | None = None) -> None:
    """Log to ``stream`` (default stderr) at ``level`` in format ``fmt`` (replaces earlier
    handlers of the root); ``env`` (default ``os.environ``) is checked for the journal."""
    out = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(out)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    elif is_journal(out, os.environ if env is None else env):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
