"""The runner's console socket (``runtimeDir/console.sock``): what a client is told first.

The stream is the guest's serial console, raw both ways, after one notice line from the
runner, readable as it is by a person on ``socat``:

* ``[vmrunner: serial console of VM <name>; <N> bytes of earlier output follow]\\r\\n``, then
  those N bytes (the replay), then the live output. Whatever the client writes goes to the
  guest.
* ``[vmrunner: the console is in use by another session (pid <P>); only one session at a
  time]\\r\\n``, then the runner closes the connection.

:func:`parse_notice` reads either line back (``vmrunner console``, the test helpers).
"""

from __future__ import annotations

import re

import msgspec

_ATTACHED = re.compile(
    rb"^\[vmrunner: serial console of VM (?P<vm>.*); (?P<replay>\d+) bytes of earlier "
    rb"output follow\]\r?\n$")
_BUSY = re.compile(rb"^\[vmrunner: (?P<message>the console is in use by another session "
                   rb"\(pid (?P<pid>[^)]*)\); only one session at a time)\]\r?\n$")
MAX_NOTICE = 512
"""The longest notice line a client needs to read."""


class Notice(msgspec.Struct, frozen=True, kw_only=True):
    """The runner's first line: attached (``replay`` bytes of earlier output follow) or busy
    (``busy`` is the message naming the holder's pid)."""

    replay: int = 0
    vm: str = ""
    busy: str | None = None


def attached_notice(vm: str, replay: int) -> bytes:
    """The line that starts a session."""
    name = vm.replace("\r", " ").replace("\n", " ")
    return (f"[vmrunner: serial console of VM {name}; {replay} bytes of earlier output "
            f"follow]\r\n").encode()


def busy_notice(pid: int | None) -> bytes:
    """The line that refuses a second session."""
    holder = "unknown" if pid is None else str(pid)
    return (f"[vmrunner: the console is in use by another session (pid {holder}); only one "
            f"session at a time]\r\n").encode()


def parse_notice(line: bytes) -> Notice | None:
    """The notice in ``line`` (with its line end), ``None`` if it is none."""
    if match := _ATTACHED.match(line):
        return Notice(replay=int(match["replay"]), vm=match["vm"].decode(errors="replace"))
    if match := _BUSY.match(line):
        return Notice(busy=match["message"].decode(errors="replace"))
    return None
