"""The serial console's keepers without a VM: the ring buffer, the rotated log file (a real
file system, and a real full one: a tiny tmpfs), the line forwarder, the socket's notice."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmrunner.components.console_output import (
    GUEST_LOGGER,
    MAX_LINE,
    LineForwarder,
    RingBuffer,
    RotatingLog,
    escape,
)
from vmrunner.protocols.console import attached_notice, busy_notice, parse_notice


def test_ring_buffer_keeps_the_newest_bytes_and_counts_all() -> None:
    ring = RingBuffer(10)
    ring.append(b"0123456789")
    ring.append(b"abc")
    assert ring.seen == 13
    assert ring.tail(100) == b"3456789abc"
    ring.resize(4)
    assert ring.tail(100) == b"9abc" and ring.seen == 13


def test_ring_buffer_tail_starts_at_a_line() -> None:
    ring = RingBuffer(1000)
    ring.append(b"first line\nsecond line\nthird")
    assert ring.tail(1000) == b"first line\nsecond line\nthird"  # all of it: no cut
    assert ring.tail(15) == b"third"  # cut inside "second line": from the next line on
    assert ring.tail(20) == b"second line\nthird"  # cut inside "first line"
    assert ring.tail(3) == b"ird"  # no newline in the window: the bytes as they are
    assert ring.tail(0) == b""


def test_rotating_log_rotates_at_the_size_and_keeps_n_files(tmp_path: Path) -> None:
    log = RotatingLog(tmp_path / "console.log", 10, 2)
    stream = b"aaaaaa" + b"bbbbbb" + b"c" * 20 + b"dd"
    for chunk in (b"aaaaaa", b"bbbbbb", b"c" * 20, b"dd"):
        log.write(chunk)
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["console.log", "console.log.1", "console.log.2"]
    assert (tmp_path / "console.log").read_bytes() == b"ccdd"
    assert (tmp_path / "console.log.1").read_bytes() == b"c" * 10
    assert (tmp_path / "console.log.2").read_bytes() == b"bb" + b"c" * 8
    # oldest first, the kept files are the stream's end, in order, each at most the limit
    kept = b"".join((tmp_path / n).read_bytes() for n in reversed(files[1:]))
    assert kept + (tmp_path / "console.log").read_bytes() == stream[-24:]
    assert all(p.stat().st_size <= 10 for p in tmp_path.iterdir())
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in tmp_path.iterdir())


def test_rotating_log_appends_to_an_existing_file_and_zero_keeps_none(tmp_path: Path) -> None:
    path = tmp_path / "console.log"
    path.write_bytes(b"12345678")
    log = RotatingLog(path, 10, 0)
    log.write(b"abcd")  # 2 fit, then the file is started again
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["console.log"]
    assert path.read_bytes() == b"cd"
    RotatingLog(tmp_path / "off.log", 0, 3).write(b"nothing")
    assert not (tmp_path / "off.log").exists()


def test_rotating_log_does_not_follow_a_planted_link(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"keep")
    (tmp_path / "console.log").symlink_to(target)
    log = RotatingLog(tmp_path / "console.log", 100, 1)
    log.write(b"x")
    assert target.read_bytes() == b"keep"


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (a real full file system); skipped where mounting is not allowed."""
    mount = tmp_path / "fs"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode(errors='replace')}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_rotating_log_on_a_full_disk_warns_once_and_recovers(
        tiny_fs: Path, caplog: pytest.LogCaptureFixture) -> None:
    filler = tiny_fs / "filler"
    with open(filler, "wb") as out, pytest.raises(OSError):
        out.write(b"\0" * 200_000)
        out.flush()
    log = RotatingLog(tiny_fs / "console.log", 1 << 20, 1)
    with caplog.at_level(logging.INFO, logger="vmrunner.components.console_output"):
        for _ in range(5):
            log.write(b"x" * 8192)  # no exception: the runner goes on
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, caplog.text
        assert "No space left on device" in warnings[0].getMessage()
        filler.unlink()
        log.write(b"back\n")
        assert "writing " in caplog.text and " again" in caplog.text
    log.close()
    assert (tiny_fs / "console.log").read_bytes().endswith(b"back\n")


def test_line_forwarder_logs_one_record_per_line_escaped(
        caplog: pytest.LogCaptureFixture) -> None:
    forwarder = LineForwarder()
    with caplog.at_level(logging.INFO, logger=GUEST_LOGGER):
        forwarder.feed(b"[    0.000000] Linux version 6.1\r\nhalf")
        forwarder.feed(b" a line\n\n\x1b[1mbold\x1b[0m\ttab\n")
        forwarder.feed(b"x" * (MAX_LINE + 5))
        forwarder.flush()
    lines = [r.getMessage() for r in caplog.records if r.name == GUEST_LOGGER]
    assert lines == ["[    0.000000] Linux version 6.1", "half a line",
                     "\\x1b[1mbold\\x1b[0m\ttab", "x" * MAX_LINE, "xxxxx"]
    assert escape("a\x00b\x7f") == "a\\x00b\\x7f"


def test_notice_lines_read_back() -> None:
    attached = parse_notice(attached_notice("web\n1", 42))
    assert attached is not None and attached.replay == 42 and attached.busy is None
    assert attached.vm == "web 1"
    busy = parse_notice(busy_notice(4242))
    assert busy is not None and busy.busy == ("the console is in use by another session "
                                              "(pid 4242); only one session at a time")
    assert parse_notice(b"[    0.000000] Linux version\r\n") is None
