"""Memory sizes: parse ``"1 GiB"``, ``"512M"``, ``"8Gi"``, ``1073741824`` ... into bytes.

Accepted forms (a number, optional blanks, an optional unit; units are case-sensitive):

- no unit or ``B``: bytes (``1073741824``, ``"1073741824"``, ``"4096 B"``);
- ``KiB MiB GiB TiB PiB EiB`` and the Kubernetes spellings ``Ki Mi Gi Ti Pi Ei``: powers of 1024;
- ``K M G T P E`` (and ``k``): powers of 1024 as well, **as QEMU reads them** (``-m 1G`` is
  1 GiB). This deliberately differs from Kubernetes, where a bare ``G`` means 10⁹;
- ``kB KB MB GB TB PB EB``: powers of 1000;
- Kubernetes decimal exponents: ``1e9``, ``5E6``.

Fractions are allowed when the result is a whole number of bytes (``"1.5G"``). Negative
numbers, milli-units (``m``), unknown units and sizes above :data:`MAX_MEMORY` (checked
before any big number is built, so ``"1e999999999"`` costs nothing) are rejected with
:class:`ValueError`.
"""

from __future__ import annotations

import re
from fractions import Fraction

KIB = 1024
MIB = 1024**2
GIB = 1024**3
MAX_MEMORY = 2**52
"""4 PiB: the most an x86-64 guest can address (52 physical address bits)."""

_BINARY = {"K": 1, "k": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
_UNITS: dict[str, int] = {"": 1, "B": 1}
for _letter, _power in _BINARY.items():
    _UNITS[_letter] = 1024**_power
    if _letter != "k":
        _UNITS[_letter + "i"] = 1024**_power
        _UNITS[_letter + "iB"] = 1024**_power
        _UNITS[_letter + "B"] = 1000**_power
_UNITS["kB"] = 1000
_UNITS["Ki"] = _UNITS["KiB"] = 1024

_PATTERN = re.compile(
    r"^\s*(?P<num>\d+(?:\.\d+)?|\.\d+)(?:[eE](?P<exp>\d+))?\s*(?P<unit>[A-Za-z]*)\s*$"
)


def parse_memory(value: object) -> int:
    """The number of bytes ``value`` denotes; :class:`ValueError` with a reason otherwise."""
    if isinstance(value, bool):
        raise ValueError("a memory size must be a number or a string such as '1 GiB'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"memory size {value} is negative")
        return _bounded(value, str(value))
    if isinstance(value, float):
        if value < 0 or not value.is_integer():
            raise ValueError(f"memory size {value} is not a whole number of bytes")
        if value > MAX_MEMORY:
            raise ValueError(f"memory size {value:g} is more than 4 PiB")
        return int(value)
    if not isinstance(value, str):
        raise ValueError("a memory size must be a number or a string such as '1 GiB'")
    match = _PATTERN.match(value)
    if match is None:
        raise ValueError(f'cannot read "{value}" as a memory size (examples: "1 GiB", '
                         '"512Mi", "2G"; no sign)')
    unit = match["unit"]
    if unit not in _UNITS:
        raise ValueError(_unknown_unit(value, match["num"], unit))
    if match["exp"] is not None and unit:
        raise ValueError(f'"{value}": an exponent cannot be combined with a unit')
    amount = Fraction(match["num"]) * _UNITS[unit]
    if match["exp"] is not None:
        if int(match["exp"]) > 18:  # 1e18 B is more than 4 PiB already
            raise ValueError(f'"{value}" is more than 4 PiB')
        amount *= 10 ** int(match["exp"])
    if amount.denominator != 1:
        raise ValueError(f'"{value}" is not a whole number of bytes')
    return _bounded(int(amount), f'"{value}"')


def _bounded(size: int, written: str) -> int:
    if size > MAX_MEMORY:
        raise ValueError(f"{written} is more than 4 PiB, the most an x86-64 guest can address")
    return size


_DECIMAL = {f"{letter}B": letter for letter in "kKMGTPE"}
"""The decimal units (powers of 1000) by their letter."""


def _unknown_unit(value: str, number: str, unit: str) -> str:
    """The message for an unknown unit, with the binary unit its first letter suggests."""
    letter = unit[0].upper()
    written = f'unknown memory unit "{unit}" in "{value}"'
    if letter == "B":
        return f'{written}; did you mean "{number} B" (bytes)?'
    if letter in "KMGTPE":
        decimal = "kB" if letter == "K" else f"{letter}B"
        power = "KMGTPE".index(letter) + 1
        size = Fraction(number) * 1000**power
        bytes_ = f"{int(size)} bytes" if size.denominator == 1 else f"10^{3 * power} bytes each"
        return (f'{written}; did you mean "{number} {letter}iB" (or "{number} {decimal}" = '
                f'{bytes_})?')
    return (f"{written} (use B, KiB/Ki/K, MiB/Mi/M, GiB/Gi/G, TiB/Ti/T or kB, MB, GB, TB)")


def decimal_hint(value: object) -> str | None:
    """For a size written with a decimal unit (``"256 MB"``, 256 * 10^6 bytes), a note saying
    what it is in the binary unit people usually mean: ``"256 MB" is 244.1 MiB; did you mean
    "256 MiB"?``. ``None`` for anything else (VM-Operator writes decimal units on purpose, so
    this is a note, never an error)."""
    if not isinstance(value, str):
        return None
    match = _PATTERN.match(value)
    if match is None or match["unit"] not in _DECIMAL:
        return None
    letter = _DECIMAL[match["unit"]].upper()
    binary = f"{letter}iB"
    size = Fraction(match["num"]) * _UNITS[match["unit"]]
    shown_unit = next((f"{u}iB" for u in "EPTGMK" if size >= _UNITS[f"{u}iB"]), "B")
    amount = size / _UNITS[shown_unit]
    shown = f"{float(amount):.1f}" if amount.denominator != 1 else str(amount)
    return (f'"{value.strip()}" is {shown} {shown_unit} ({match["unit"]} = 10^'
            f'{3 * ("KMGTPE".index(letter) + 1)} bytes); did you mean "{match["num"]} {binary}"?')


def format_memory(size: int) -> str:
    """A short exact human form of ``size`` bytes, e.g. ``1 GiB``, ``1536 MiB``, ``1000 B``."""
    for unit, factor in (("EiB", 1024**6), ("PiB", 1024**5), ("TiB", 1024**4),
                         ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


RAM_TOLERANCE_MIN = 8 * MIB
"""The smallest RAM tolerance: 8 MiB."""
RAM_TOLERANCE_FRACTION = 0.01
"""The RAM tolerance as a fraction of the target: 1 %."""


def ram_tolerance(requested: int) -> int:
    """How far (bytes) the guest's RAM may be from a balloon target of ``requested`` to count
    as there (the balloon driver works in pages and keeps some back): the larger of 1 % of
    ``requested`` and 8 MiB."""
    return max(RAM_TOLERANCE_MIN, int(requested * RAM_TOLERANCE_FRACTION))


def reached(requested: int, actual: int | None) -> bool:
    """Whether ``actual`` is within :func:`ram_tolerance` of ``requested``."""
    return actual is not None and abs(actual - requested) <= ram_tolerance(requested)
