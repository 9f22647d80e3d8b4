"""Memory size parsing (vmrunner.config.sizes)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vmrunner.config.sizes import GIB, MIB, format_memory, parse_memory


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (1073741824, GIB),
        ("1073741824", GIB),
        ("1G", GIB),
        ("1GiB", GIB),
        ("1 GiB", GIB),
        (" 1 GiB ", GIB),
        ("1Gi", GIB),
        ("8Gi", 8 * GIB),
        ("512M", 512 * MIB),
        ("512MiB", 512 * MIB),
        ("512Mi", 512 * MIB),
        ("1.5G", 1536 * MIB),
        ("1GB", 10**9),
        ("1e9", 10**9),
        ("5E6", 5 * 10**6),
        ("100k", 102400),
        ("100K", 102400),
        ("100kB", 100000),
        ("4096 B", 4096),
        ("1T", 1024**4),
        (2.0, 2),
    ],
)
def test_accepted(text: object, expected: int) -> None:
    assert parse_memory(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "abc", "-1", "-1G", "1m", "1000m", "1 GX", "1gib", "1.5B", "1e3K", "G", True, None,
     [1], 1.5, -3],
)
def test_rejected(text: object) -> None:
    with pytest.raises(ValueError):
        parse_memory(text)


def test_format() -> None:
    assert format_memory(GIB) == "1 GiB"
    assert format_memory(1536 * MIB) == "1536 MiB"
    assert format_memory(10**9) == "1000000000 B"


@given(st.integers(min_value=0, max_value=2**52))
def test_format_round_trips(size: int) -> None:
    assert parse_memory(format_memory(size).replace(" ", "")) == size


@pytest.mark.parametrize("value", [1e300, "1e999999999", "5 EiB", 2**60, "4097 TiB"])
def test_sizes_above_what_a_guest_can_address_are_refused_cheaply(value: object) -> None:
    with pytest.raises(ValueError, match="more than 4 PiB"):
        parse_memory(value)
    assert parse_memory("4 PiB") == 2**52
