"""The commands for one running VM: ``console``, ``shutdown``, ``reset``, ``list``, ``qmp``,
and the day-2 operations (:mod:`.day2`: ``pause``, ``resume``, ``resize-disk``,
``fsfreeze``, ``fsthaw``, ``screenshot``); and ``completion`` and ``man``, which print the
shell completion script and the man page generated from the parser (:mod:`.docgen`).

Each VM command talks to the runner through its API (``runtimeDir/api.sock``) or, for
``console``, the serial console socket; none opens QEMU's monitor. ``list`` looks for the
runners of this host; ``completion`` and ``man`` talk to nobody. :func:`add_parsers` adds
them to the ``vmrunner`` parser; :data:`COMMANDS` maps each name to its function (argparse
namespace → exit code). The modules are imported when a command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

DETACH_DEFAULT = "^]"
"""The console's default detach key (Ctrl-])."""


def add_parsers(sub: Any, config: argparse.ArgumentParser) -> None:
    """Add the subcommands to ``sub`` (the ``vmrunner`` parser's subparsers); ``config``
    is the parent parser with the global options."""
    console = sub.add_parser(
        "console", parents=[config],
        help="attach to the VM's serial console (detach with Ctrl-])",
        description="Attach the terminal to the VM's serial console (runtimeDir/console.sock, "
        "served by the runner): the last screen of earlier output first, then the live "
        "output. One session at a time: a second attach is refused, naming the holder's pid.")
    console.add_argument("--detach-key", default=DETACH_DEFAULT, metavar="KEY",
                         help="the detach key as ^X (default ^])")
    console.add_argument("--no-replay", dest="replay", action="store_false",
                         help="do not show the earlier output, only what comes from now on")
    console.add_argument("--tail", type=int, nargs="?", const=-1, default=None, metavar="BYTES",
                         help="print the output the runner keeps in memory (the last BYTES, "
                         "default all) and exit, without attaching")
    shutdown = sub.add_parser(
        "shutdown", parents=[config],
        help="shut the VM down like a TERM (the powerdown ladder)")
    shutdown.add_argument("--wait", action="store_true",
                          help="wait until the runner has exited")
    shutdown.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                          help="give up waiting after this long (default 300); exit 1")
    sub.add_parser("reset", parents=[config],
                   help="hard-reset the VM (QMP system_reset through the runner)")
    listing = sub.add_parser(
        "list", parents=[config],
        help="list the runners on this host (name, state, pid, uptime, RAM, vCPUs)")
    listing.add_argument("--dir", type=Path, action="append", default=[], metavar="DIR",
                         help="look here too: a runtimeDir, or a directory of them (for VMs "
                         "with a configured runtimeDir); may be repeated")
    listing.add_argument("--json", action="store_true", help="one JSON object per runner")
    qmp = sub.add_parser(
        "qmp", parents=[config],
        help="send one raw QMP command through the runner (debugging only)")
    qmp.add_argument("qmp_command", metavar="JSON",
                     help='the command, e.g. \'{"execute": "query-status"}\'')
    from vmrunner.daemon.commands import day2

    day2.add_parsers(sub, config)
    completion = sub.add_parser(
        "completion", help="print the shell completion script (e.g. into "
        "/usr/share/bash-completion/completions/vmrunner)")
    completion.add_argument("shell", choices=("bash",), help="the shell")
    sub.add_parser("man", help="print the man page, roff (e.g. into "
                   "/usr/local/share/man/man1/vmrunner.1)")


def _console(args: argparse.Namespace) -> int:
    from vmrunner.daemon.commands.console import console_main, tail_main

    if args.tail is not None:
        return tail_main(args.config, None if args.tail < 0 else args.tail, strict=args.strict)
    return console_main(args.config, detach_key=args.detach_key, strict=args.strict,
                        replay=args.replay)


def _shutdown(args: argparse.Namespace) -> int:
    from vmrunner.daemon.commands.control import shutdown_main

    return shutdown_main(args.config, wait=args.wait, timeout=args.timeout,
                         strict=args.strict)


def _reset(args: argparse.Namespace) -> int:
    from vmrunner.daemon.commands.control import reset_main

    return reset_main(args.config, strict=args.strict)


def _qmp(args: argparse.Namespace) -> int:
    from vmrunner.daemon.commands.control import qmp_main

    return qmp_main(args.config, args.qmp_command, strict=args.strict)


def _list(args: argparse.Namespace) -> int:
    from vmrunner.daemon.commands.listing import list_main

    return list_main(extra=args.dir, as_json=args.json)


def _completion(args: argparse.Namespace) -> int:
    from vmrunner.daemon.cli import build_parser
    from vmrunner.daemon.commands.docgen import bash_completion

    print(bash_completion(build_parser()), end="")
    return 0


def _man(args: argparse.Namespace) -> int:
    from vmrunner.daemon.cli import build_parser
    from vmrunner.daemon.commands.docgen import man_page

    print(man_page(build_parser()), end="")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "console": _console, "shutdown": _shutdown, "reset": _reset, "list": _list, "qmp": _qmp,
    "completion": _completion, "man": _man}
NO_CONFIG = frozenset({"list", "completion", "man"})
"""The commands that read no configuration file (no hint when the default one is missing)."""


def _day2_commands() -> dict[str, Callable[[argparse.Namespace], int]]:
    from vmrunner.daemon.commands.day2 import COMMANDS as DAY2

    return DAY2


COMMANDS.update(_day2_commands())
