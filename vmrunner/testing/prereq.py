"""Test prerequisites: skip outside CI, fail in CI (``CI`` set), never skip silently."""

from __future__ import annotations

import os
import shutil

import pytest

GUEST_TOOLS = ("qemu-system-x86_64", "apt-get", "dpkg-deb")


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def missing_tools(*tools: str) -> list[str]:
    return [t for t in tools if shutil.which(t) is None]


def require_tools(*tools: str) -> None:
    """Skip (or, with ``CI`` set, fail) the current test unless ``tools`` are on PATH."""
    missing = missing_tools(*tools)
    if not missing:
        return
    reason = f"not installed: {', '.join(missing)} (run scripts/setup.sh)"
    if in_ci():
        pytest.fail(f"{reason}; CI is set, so this is a failure, not a skip", pytrace=False)
    pytest.skip(reason)
