"""``vmrunner console``: the terminal on the VM's serial console (``runtimeDir/console.sock``).

* The runner serves the socket (:mod:`vmrunner.protocols.console`): it first sends a notice
  line, then the last screen of earlier output (``/Runner/SerialConsole/replay``; shown
  unless ``--no-replay``), then the live output. ``--tail`` prints what the runner keeps in
  memory (``GET /console/tail``) and exits without attaching.
* One session at a time: the runner refuses a second connection naming the holder's pid;
  ``vmrunner console`` also holds ``runtimeDir/console.lock`` (``flock``, its pid written in
  it), which covers a VM type whose QEMU serves the socket itself (QEMU's socket takes one
  client and lets later ones wait unserved). Such a socket sends no notice line: its output
  is shown as it comes, without a replay.
* The detach key (default Ctrl-], ``--detach-key ^X``) ends the session; so does the end of
  stdin. On a terminal, stdin is put in raw mode (Ctrl-C goes to the guest) and restored.

Exit codes: 0 detached, 1 no console (VM not running, ``serialConsole: false``), or the VM
closed it, or another session holds it; 2 a bad configuration or detach key.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import selectors
import socket
import sys
import termios
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

from vmrunner.daemon.commands import DETACH_DEFAULT
from vmrunner.protocols.console import MAX_NOTICE, Notice, parse_notice

LOCK_NAME = "console.lock"
READ_SIZE = 4096
NOTICE_TIMEOUT = 2.0
"""Seconds to wait for the runner's notice line (a QEMU-served socket sends none)."""
NOTICE_PREFIX = b"[vmrunner: "


class ConsoleBusy(Exception):
    """Another session holds the console."""


def detach_byte(key: str) -> int:
    """``^]`` → 0x1d: the control character of ``^X``.

    :raise ValueError: not of the form ``^X`` with X in ``@A-Z[\\]^_``.
    """
    if len(key) == 2 and key[0] == "^" and 0x40 <= ord(key[1].upper()) <= 0x5F:
        return ord(key[1].upper()) - 0x40
    raise ValueError(f"--detach-key {key!r}: expected ^ and a letter or one of @[\\]^_")


@contextlib.contextmanager
def session_lock(runtime_dir: Path) -> Iterator[None]:
    """Hold ``runtimeDir/console.lock`` while the session lasts.

    :raise ConsoleBusy: another session holds it (the message names its pid).
    """
    path = runtime_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ConsoleBusy(f"the console is in use by another session (pid {holder}); "
                              "only one session at a time") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Raw mode on ``fd`` while inside, if it is a terminal."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def read_notice(conn: socket.socket, timeout: float = NOTICE_TIMEOUT
                ) -> tuple[Notice | None, bytes]:
    """The runner's notice line and the bytes read after it; ``(None, bytes read)`` when the
    socket starts with anything else (a QEMU-served socket: plain console output)."""
    data = b""
    conn.settimeout(timeout)
    try:
        while True:
            line, newline, rest = data.partition(b"\n")
            if newline:
                notice = parse_notice(line + newline)
                return (notice, rest) if notice is not None else (None, data)
            if not NOTICE_PREFIX.startswith(data[:len(NOTICE_PREFIX)]) or len(
                    data) >= MAX_NOTICE:
                break
            chunk = conn.recv(READ_SIZE)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pass
    finally:
        conn.settimeout(None)
    return None, data


def skip_replay(conn: socket.socket, replay: int, already: bytes) -> bytes:
    """Drop the first ``replay`` bytes of the stream (``already`` read); what follows them."""
    while len(already) < replay:
        chunk = conn.recv(READ_SIZE)
        if not chunk:
            break
        already += chunk
    return already[replay:]


def pump(conn: socket.socket, stdin: int, stdout: BinaryIO, detach: int) -> str:
    """Copy stdin → console and console → stdout until the detach byte, the end of stdin
    ("detached") or the end of the console ("closed")."""
    with selectors.DefaultSelector() as selector:
        selector.register(conn, selectors.EVENT_READ, "console")
        selector.register(stdin, selectors.EVENT_READ, "stdin")
        while True:
            for key, _ in selector.select():
                if key.data == "console":
                    data = conn.recv(READ_SIZE)
                    if not data:
                        return "closed"
                    stdout.write(data)
                    stdout.flush()
                    continue
                data = os.read(stdin, READ_SIZE)
                head, found, _ = data.partition(bytes([detach]))
                if head:
                    conn.sendall(head)
                if found or not data:
                    return "detached"


def console_main(config_file: Path, *, detach_key: str = DETACH_DEFAULT, strict: bool = False,
                 replay: bool = True, err: TextIO = sys.stderr) -> int:
    """``vmrunner console`` (see the module docstring)."""
    from vmrunner.config.validate import load_config
    from vmrunner.vmtypes.state import resolve_paths

    try:
        detach = detach_byte(detach_key)
    except ValueError as exc:
        print(f"vmrunner console: {exc}", file=err)
        return 2
    validation = load_config(config_file, strict=strict)
    if not validation.ok or validation.config is None:
        print("\n".join(str(p) for p in validation.errors), file=err)
        return 2
    config = validation.config
    paths = resolve_paths(config)
    if not config.vm.serial_console:
        print("vmrunner console: /Runner/vm/serialConsole is false: this VM has no serial "
              "console", file=err)
        return 1
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with session_lock(paths.runtime_dir):
            try:
                conn.connect(str(paths.console_socket))
            except OSError as exc:
                print(f"vmrunner console: no console at {paths.console_socket} (is the VM "
                      f"running?): {exc.strerror or exc}", file=err)
                return 1
            notice, early = read_notice(conn)
            if notice is not None and notice.busy is not None:
                print(f"vmrunner console: {notice.busy}", file=err)
                return 1
            if notice is not None and not replay:
                early = skip_replay(conn, notice.replay, early)
            stdin = sys.stdin.fileno()
            with raw_terminal(stdin):
                # said once the terminal is raw (hence the \r): whoever reads it may type
                print(f"Connected to the serial console of VM {config.vm.name}; detach with "
                      f"{detach_key}.", end="\r\n", file=err, flush=True)
                sys.stdout.buffer.write(early)
                sys.stdout.buffer.flush()
                how = pump(conn, stdin, sys.stdout.buffer, detach)
    except ConsoleBusy as exc:
        print(f"vmrunner console: {exc}", file=err)
        return 1
    except FileNotFoundError:
        print(f"vmrunner console: no runtime directory {paths.runtime_dir} (is the VM "
              "running?)", file=err)
        return 1
    finally:
        conn.close()
    if how == "closed":
        print("\r\nvmrunner console: the console closed (the VM stopped)", file=err)
        return 1
    print("\r\ndetached", file=err)
    return 0


def tail_main(config_file: Path, size: int | None, *, strict: bool = False,
              out: BinaryIO | None = None, err: TextIO = sys.stderr) -> int:
    """``vmrunner console --tail [BYTES]``: the kept output (``GET /console/tail``) to
    ``out``; 0, 1 when no runner answers or it keeps no console, 2 a bad configuration."""
    import asyncio

    from vmrunner.api.client import ApiUnavailable, request, socket_or_report

    if size is not None and size < 0:
        print("vmrunner console: --tail BYTES must not be negative", file=err)
        return 2
    path = socket_or_report(config_file, strict, err)
    if path is None:
        return 2
    target = "/console/tail" if size is None else f"/console/tail?bytes={size}"
    try:
        status, body = asyncio.run(request(path, "GET", target))
    except ApiUnavailable as exc:
        print(f"vmrunner console: {exc}", file=err)
        return 1
    if status != 200:
        print(f"vmrunner console: HTTP {status}: {body.decode(errors='replace').strip()}",
              file=err)
        return 1
    sink = sys.stdout.buffer if out is None else out
    sink.write(body)
    sink.flush()
    return 0
