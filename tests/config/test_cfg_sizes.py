"""Memory size parsing (vmrunner.config.sizes)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vmrunner.config.sizes import GIB, MIB, decimal_hint, format_memory, parse_memory


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


@pytest.mark.parametrize(("written", "hint"), [
    ("256 MB", '"256 MB" is 244.1 MiB (MB = 10^6 bytes); did you mean "256 MiB"?'),
    ("1GB", '"1GB" is 953.7 MiB (GB = 10^9 bytes); did you mean "1 GiB"?'),
    ("4 kB", '"4 kB" is 3.9 KiB (kB = 10^3 bytes); did you mean "4 KiB"?'),
    ("2 TB", '"2 TB" is 1.8 TiB (TB = 10^12 bytes); did you mean "2 TiB"?'),
])
def test_decimal_units_get_a_hint(written: str, hint: str) -> None:
    assert decimal_hint(written) == hint


@pytest.mark.parametrize("written", ["256 MiB", "256Mi", "256M", "268435456", 268435456, None])
def test_other_sizes_get_no_hint(written: object) -> None:
    assert decimal_hint(written) is None


@pytest.mark.parametrize(("written", "message"), [
    ("256 mb", 'unknown memory unit "mb" in "256 mb"; did you mean "256 MiB" (or "256 MB" = '
               '256000000 bytes)?'),
    ("2 gigabytes", 'unknown memory unit "gigabytes" in "2 gigabytes"; did you mean "2 GiB" '
                    '(or "2 GB" = 2000000000 bytes)?'),
    ("10 bytes", 'unknown memory unit "bytes" in "10 bytes"; did you mean "10 B" (bytes)?'),
    ("5 xyz", 'unknown memory unit "xyz" in "5 xyz" (use B, KiB/Ki/K'),
])
def test_unknown_units_quote_the_value_and_suggest_one(written: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_memory(written)
    assert str(caught.value).startswith(message)
