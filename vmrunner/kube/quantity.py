"""Byte counts as Kubernetes quantity strings (``"2Gi"``, ``"1G"``, ``"0"``)."""

from __future__ import annotations

_BINARY = (("Ei", 1 << 60), ("Pi", 1 << 50), ("Ti", 1 << 40), ("Gi", 1 << 30),
           ("Mi", 1 << 20), ("Ki", 1 << 10))
_DECIMAL = (("E", 10**18), ("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6),
            ("k", 10**3))


def quantity(size: int) -> str:
    """``size`` bytes exactly, with the largest binary suffix that divides it, else the
    largest decimal one, else none: 2 GiB → ``"2Gi"``, 10⁹ → ``"1G"``, 1000448 → ``"977Ki"``,
    0 → ``"0"``."""
    if size < 0:
        raise ValueError(f"a negative size: {size}")
    if size == 0:
        return "0"
    for suffix, unit in (*_BINARY, *_DECIMAL):
        if size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)
