"""The loader's limits: regular files only, bounded size, nesting and alias expansion, no
duplicate keys (the same rules for ``vmrunner check``, the start and every live re-read)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vmrunner.core.config import ConfigFileError, ConfigFileMissingError
from vmrunner.core.config.loader import (
    MAX_ALIAS_NODES,
    MAX_CONFIG_BYTES,
    MAX_DEPTH,
    load,
    load_document,
    parse,
    read_bytes,
)


def billion_laughs(levels: int = 9, fan_out: int = 9) -> str:
    lines = ['"/Runner":', "  x:", f"    l0: &l0 [{', '.join(['lol'] * fan_out)}]"]
    for i in range(1, levels):
        lines.append(f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fan_out)}]")
    return "\n".join(lines) + "\n"


def nested(depth: int) -> str:
    """A document of ``depth`` nested collections (the top mapping and "/Runner" count)."""
    return '"/Runner":\n  x: ' + "[" * (depth - 2) + "]" * (depth - 2) + "\n"


def error_of(call: Callable[[], Any]) -> str:
    started = time.monotonic()
    with pytest.raises(ConfigFileError) as info:
        call()
    assert time.monotonic() - started < 1.0
    [message] = info.value.messages
    return message


def finishes(call: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Run ``call`` in a thread; fail (instead of hanging) if it blocks."""
    result: list[Any] = []

    def target() -> None:
        try:
            result.append(call())
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "blocked"
    return result[0]


# -- what is read ---------------------------------------------------------------------------


def test_a_fifo_is_not_read_and_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    exc = finishes(lambda: read_bytes(fifo))
    assert isinstance(exc, ConfigFileError)
    assert exc.messages == (f"{fifo}: not a regular file (a FIFO)",)


def test_a_symlink_to_dev_zero_is_not_read(tmp_path: Path) -> None:
    link = tmp_path / "config.yaml"
    link.symlink_to("/dev/zero")
    assert error_of(lambda: read_bytes(link)) == (
        f"{link}: not a regular file (a character device)")


def test_a_directory_is_not_read(tmp_path: Path) -> None:
    assert error_of(lambda: read_bytes(tmp_path)) == (
        f"{tmp_path}: not a regular file (a directory)")


def test_a_symlinked_regular_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "..data").mkdir()
    (tmp_path / "..data" / "config.yaml").write_text("a: 1\n")
    (tmp_path / "config.yaml").symlink_to("..data/config.yaml")
    assert read_bytes(tmp_path / "config.yaml") == b"a: 1\n"


def test_missing_and_dangling_are_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileMissingError):
        read_bytes(tmp_path / "nope.yaml")
    (tmp_path / "dangling.yaml").symlink_to("gone.yaml")
    with pytest.raises(ConfigFileMissingError):
        read_bytes(tmp_path / "dangling.yaml")


def test_size_limit(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    file.write_bytes(b"#" * MAX_CONFIG_BYTES)
    assert len(read_bytes(file)) == MAX_CONFIG_BYTES
    file.write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    assert error_of(lambda: read_bytes(file)) == (
        f"{file}: larger than {MAX_CONFIG_BYTES} bytes")


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    assert error_of(lambda: parse(file, b"a: 1\nb: caf\xe9\n")).startswith(
        f"{file}:2: not UTF-8 text")


# -- nesting --------------------------------------------------------------------------------


def test_nesting_up_to_the_limit_is_accepted(tmp_path: Path) -> None:
    value = parse(tmp_path / "c.yaml", nested(MAX_DEPTH).encode())["/Runner"]["x"]
    depth = 1
    while value:
        value, depth = value[0], depth + 1
    assert depth == MAX_DEPTH - 2  # plus the document mapping and "/Runner"


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 500, 990, 100_000])
def test_deeper_nesting_is_rejected_with_the_line(tmp_path: Path, depth: int) -> None:
    file = tmp_path / "c.yaml"
    message = error_of(lambda: parse(file, nested(depth).encode()))
    # PyYAML >= 6.0.4 has a nesting limit of its own in the scanner, which reads ahead of
    # the events our check walks: very deep input may be refused by it first (same line).
    assert message in (f"{file}:2: nested deeper than {MAX_DEPTH} levels",
                       f"{file}:2: invalid YAML: while increasing flow level exceeded "
                       "maximum nesting depth"), message


def test_nesting_through_an_alias_counts(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    deep = "[" * 40 + "]" * 40
    text = f"a: &a {deep}\nb: {'[' * 30}*a{']' * 30}\n"
    assert error_of(lambda: load_document(file, text.encode())) == (
        f"{file}:2: alias *a nests deeper than {MAX_DEPTH} levels")


# -- aliases --------------------------------------------------------------------------------


def test_billion_laughs_is_rejected_quickly(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    assert error_of(lambda: parse(file, billion_laughs().encode())) == (
        f"{file}:8: aliases expand to more than {MAX_ALIAS_NODES} nodes")


def test_moderate_aliases_and_merge_keys_are_accepted(tmp_path: Path) -> None:
    text = (
        'base: &base {cpus: 2, ram: 1G}\n'
        '"/Runner":\n'
        '  vm:\n'
        '    <<: *base\n'
        '    ram: 2G\n'
        '  list: &l [1, 2, 3]\n'
        '  again: *l\n'
    )
    nodes = parse(tmp_path / "c.yaml", text.encode())
    assert nodes["/Runner"]["vm"] == {"cpus": 2, "ram": "2G"}
    assert nodes["/Runner"]["again"] == [1, 2, 3]


def test_a_recursive_alias_is_rejected(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    assert error_of(lambda: parse(file, b'"/Runner":\n  x: &a [1, *a]\n')) == (
        f"{file}:2: alias *a refers to a node that contains it")


def test_an_undefined_alias_is_rejected(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    assert error_of(lambda: parse(file, b'"/Runner":\n  x: *nowhere\n')) == (
        f"{file}:2: alias *nowhere is not defined before")


# -- duplicate keys -------------------------------------------------------------------------


@pytest.mark.parametrize("text, line, key", [
    ('"/Runner":\n  vm:\n    name: a\n    name: b\n', 4, "'name'"),
    ('"/Runner": {a: 1, b: 2, a: 3}\n', 1, "'a'"),
    ('"/Runner": {}\n"/Other": {}\n"/Runner": {}\n', 3, "'/Runner'"),
    ('a:\n  1: x\n  0x1: y\n', 3, "1"),
])
def test_duplicate_keys_are_rejected_by_key_and_line(
    tmp_path: Path, text: str, line: int, key: str
) -> None:
    file = tmp_path / "c.yaml"
    message = error_of(lambda: load_document(file, text.encode()))
    assert message.startswith(f"{file}:{line}: ")
    assert f"key {key} is given more than once" in message


def test_load_applies_the_limits(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text(billion_laughs())
    with pytest.raises(ConfigFileError):
        load(file)
