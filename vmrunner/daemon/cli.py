"""The ``vmrunner`` command: ``run`` (default), ``check``, ``render``, ``status``, ``events``,
``probe`` and the commands for one running VM (:mod:`vmrunner.daemon.commands`: ``console``,
``shutdown``, ``reset``, ``list``, ``qmp``; the day-2 operations ``pause``, ``resume``,
``resize-disk``, ``fsfreeze``, ``fsthaw``, ``screenshot``).

Exit codes are :class:`vmrunner.components.exit_codes.ExitCode`: 0 ok, 1 internal error, 2 invalid
configuration or template (or bad usage), 3 forced stop, 4 QEMU died, 5 start failed,
6 already running, 7 host error (full or read-only state directories), 8 guest panicked
(``onPanic: stop``); 130 after Ctrl-C and 141
when stdout was closed early (``vmrunner render | head -1``), as a shell reports SIGINT/SIGPIPE.

Global options (``--log-level``, ``--log-format``, ``-c/--config``, ``--strict``) are taken
before and after the command; given after it, they win.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from vmrunner import __version__
from vmrunner.components.exit_codes import ExitCode

DEFAULT_CONFIG = Path("/etc/opt/vmrunner/config.yaml")
COMMANDS = ("run", "check", "render", "status", "events", "probe", "console", "shutdown",
            "reset", "list", "qmp", "pause", "resume", "resize-disk", "fsfreeze", "fsthaw",
            "screenshot", "completion", "man")
_GLOBAL_WITH_VALUE = ("--log-level", "--log-format", "-c", "--config")
_GLOBAL_FLAGS = ("--strict",)
_GLOBAL_JOINED = ("--log-level=", "--log-format=", "--config=", "-c")
"""Prefixes of a global option and its value in one word (``-cFILE``, ``--config=FILE``)."""
EXIT_INTERRUPTED = 130
"""128 + SIGINT: Ctrl-C."""
EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE: the reader of stdout went away."""

log = logging.getLogger(__name__)


def _global_options(parser: argparse.ArgumentParser, *, after: bool) -> None:
    """The options every command takes; ``after``: the copy on a subcommand, which sets a
    value only when given (``SUPPRESS``), so it overrides the one before the command."""
    def default(value: object) -> object:
        return argparse.SUPPRESS if after else value

    parser.add_argument("--log-level", default=default("INFO"), type=str.upper,
                        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                        help="log threshold (default INFO)")
    parser.add_argument("--log-format", default=default("text"), choices=["text", "json"],
                        help="log line format (default text)")
    parser.add_argument("-c", "--config", type=Path, default=default(DEFAULT_CONFIG),
                        help=f"configuration file (default {DEFAULT_CONFIG})")
    parser.add_argument("--strict", action="store_true", default=default(False),
                        help="treat unknown configuration keys as errors")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (a missing command means ``run``)."""
    parser = argparse.ArgumentParser(
        prog="vmrunner",
        description="Start and supervise one QEMU virtual machine.",
        epilog="Exit codes: 0 ok (guest powered off), 1 internal error, 2 invalid configuration, "
        "3 forced stop after powerdownTimeout, 4 QEMU died, 5 start failed, "
        "6 another runner runs this VM, 7 the host cannot hold the VM's state (a full or "
        "read-only dataDir/runtimeDir), 8 the guest panicked (vm.onPanic: stop); 130 after "
        "Ctrl-C, 141 when stdout was closed early "
        "(as a shell reports SIGINT and SIGPIPE).",
    )
    parser.add_argument("--version", action="version", version=f"vmrunner {__version__}")
    _global_options(parser, after=False)
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    config = argparse.ArgumentParser(add_help=False)
    _global_options(config, after=True)
    run = sub.add_parser("run", parents=[config], help="run the VM (default)")
    kube = run.add_argument_group(
        "Kubernetes (override /Runner/Kubernetes; in a pod the service account is used)")
    kube.add_argument("--kubeconfig", type=Path,
                      help="write the VirtualMachine status through this kubeconfig")
    kube.add_argument("--kube-context", help="the kubeconfig context (default: current)")
    kube.add_argument("--kube-namespace", help="the VirtualMachine's namespace")
    kube.add_argument("--kube-vm-name", help="the VirtualMachine's name (default: vm.name)")
    kube.add_argument("--no-kube", action="store_true",
                      help="write nothing to Kubernetes, even in a pod")
    check = sub.add_parser("check", parents=[config],
                           help="validate the configuration and render the template; exit 0 "
                           "or 2 (--host: check this host instead)")
    check.add_argument("--no-host-files", action="store_true",
                       help="do not require the disks, images, kernel, password and firmware "
                       "files to exist here (a configuration for another machine)")
    check.add_argument("--host", action="store_true",
                       help="check this host instead: QEMU, swtpm, /dev/kvm, the bridges and "
                       "OVMF (PASS/WARN/FAIL per line; exit 0, or 7 on a FAIL)")
    check.add_argument("--json", action="store_true",
                       help="the problems as JSON: {file, ok, problems: [{path, severity, "
                       "message}]}")
    sub.add_parser("render", parents=[config],
                   help="print the swtpm and QEMU command lines, starting nothing")
    status = sub.add_parser("status", parents=[config],
                            help="ask the running VM's runner what it is doing")
    status.add_argument("--json", action="store_true", help="the raw GET /status document")
    status.add_argument("--refresh", action="store_true",
                        help="ask the guest agent for the guest's facts (addresses, users, "
                        "filesystems) first")
    probe = sub.add_parser("probe", parents=[config],
                           help="exit 0 if the runner is live / the VM is ready (for probes)")
    probe.add_argument("which", choices=("live", "ready"),
                       help="live: the runner serves its API; ready: the VM runs unpaused")
    events = sub.add_parser("events", parents=[config],
                            help="follow the running VM's event stream")
    events.add_argument("--json", action="store_true", help="JSON lines as the API sends them")
    events.add_argument("--since", type=int, default=0,
                        help="replay the kept events after this sequence number (default 0)")
    from vmrunner.daemon.commands import add_parsers

    add_parsers(sub, config)
    return parser


class UnknownCommand(ValueError):
    """The first word after the global options is not a command."""


def _with_command(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``run`` inserted when no command is given (before the first option that
    is not a global one).

    :raise UnknownCommand: a word that is no command stands where the command belongs.
    """
    args = list(argv)
    index = 0
    while index < len(args):
        token = args[index]
        if token in _GLOBAL_WITH_VALUE:
            index += 2
        elif token in _GLOBAL_FLAGS or token.startswith(_GLOBAL_JOINED):
            index += 1
        elif token in ("-h", "--help", "--version"):
            return args
        else:
            break
    if index < len(args) and args[index] in COMMANDS:
        return args
    if index < len(args) and not args[index].startswith("-"):
        raise UnknownCommand(f"unknown command {args[index]!r}; the commands are: "
                             f"{', '.join(COMMANDS)} (run is the default; see vmrunner -h)")
    args.insert(index, "run")
    return args


def _print_problems(lines: Sequence[object], out: TextIO,
                    sink: list[object] | None = None) -> None:
    """Print the problems to ``out``, or collect them in ``sink`` (``check --json``)."""
    for line in lines:
        if sink is not None:
            sink.append(line)
        else:
            print(line, file=out)


def _prepare(config_file: Path, strict: bool, out: TextIO,
             host_files: bool = False, sink: list[object] | None = None
             ) -> tuple[object, int]:
    """Validate and render without side effects; (rendered VM or None, exit code).
    ``host_files``: the files the configuration names must exist (vmrunner.daemon.check_files).
    The problems go to ``out``, or into ``sink`` when one is given."""
    from vmrunner.config.validate import load_config
    from vmrunner.vmtypes.errors import VmTypeError
    from vmrunner.vmtypes.prepare import plan_start

    validation = load_config(config_file, strict=strict)
    _print_problems(validation.problems, out, sink)
    if not validation.ok or validation.config is None:
        return None, ExitCode.CONFIG_ERROR
    from vmrunner.daemon.builder import ConfigInvalid, RunnerBuilder

    try:
        errors, warnings = RunnerBuilder(config_file, strict=strict, watch=False).check_nodes()
    except ConfigInvalid as exc:
        errors, warnings = exc.problems, []
    if host_files:
        from vmrunner.daemon.check_files import config_file_problems

        errors = [*errors, *config_file_problems(config_file, validation.config)]
    from vmrunner.daemon.check_hints import config_notes

    _print_problems([*errors, *(f"warning: {w}" for w in warnings),
                     *config_notes(config_file)], out, sink)
    if errors:
        return None, ExitCode.CONFIG_ERROR
    try:
        plan = plan_start(validation.config, create=False, host_files=host_files)
        rendered = plan.render()
    except VmTypeError as exc:
        _print_problems([exc], out, sink)
        return None, ExitCode.CONFIG_ERROR
    return (plan, rendered), ExitCode.OK


def _format_command(argv: Sequence[str]) -> str:
    """A shell command, one option (with its value) per line."""
    lines: list[list[str]] = [[argv[0]]]
    for token in argv[1:]:
        if token.startswith("-"):
            lines.append([])
        lines[-1].append(token)
    return " \\\n    ".join(shlex.join(group) for group in lines if group)


def cmd_check(args: argparse.Namespace) -> int:
    """``vmrunner check`` (``--host``: vmrunner.daemon.check_host)."""
    if args.host:
        from vmrunner.daemon.check_host import host_main

        return host_main(args.config, optional=args.config == DEFAULT_CONFIG)
    host_files = not args.no_host_files
    if args.json:
        from vmrunner.daemon.commands.checkjson import problems_document

        sink: list[object] = []
        _, code = _prepare(args.config, args.strict, sys.stderr, host_files, sink)
        print(problems_document(args.config, sink, ok=code == ExitCode.OK))
        return code
    _, code = _prepare(args.config, args.strict, sys.stdout, host_files)
    if code == ExitCode.OK:
        print(f"{args.config}: OK")
    return code


def cmd_render(args: argparse.Namespace) -> int:
    """``vmrunner render``."""
    from vmrunner.vmtypes.prepare import StartPlan
    from vmrunner.vmtypes.render import RenderedVm

    result, code = _prepare(args.config, args.strict, sys.stderr)
    if code != ExitCode.OK or not isinstance(result, tuple):
        return code
    plan, rendered = result
    assert isinstance(plan, StartPlan) and isinstance(rendered, RenderedVm)
    print(f"# template: {rendered.template}")
    for note in plan.notes:
        print(f"# {note}")
    if rendered.swtpm is not None:
        print("# swtpm")
        print(_format_command(rendered.swtpm.argv))
    print("# qemu")
    print(_format_command(rendered.qemu.argv))
    return ExitCode.OK


def cmd_run(args: argparse.Namespace) -> int:
    """``vmrunner run``: start the VM and supervise it until it stops (see vmrunner.daemon.run)."""
    from vmrunner.daemon.run import main as run_main

    return run_main(args.config, strict=args.strict, kube=kube_overrides(args))


def kube_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The ``/Runner/Kubernetes`` keys given on the command line (``run``)."""
    kube: dict[str, object] = {}
    if args.kubeconfig is not None:
        kube["kubeconfig"] = args.kubeconfig.absolute()
    for key, value in (("context", args.kube_context), ("namespace", args.kube_namespace),
                       ("vmName", args.kube_vm_name)):
        if value is not None:
            kube[key] = value
    if args.no_kube:
        kube["enabled"] = False
    return kube


def cmd_status(args: argparse.Namespace) -> int:
    """``vmrunner status`` (see vmrunner.api.client)."""
    from vmrunner.api.client import status_main

    return status_main(args.config, as_json=args.json, strict=args.strict,
                       refresh=args.refresh)


def cmd_probe(args: argparse.Namespace) -> int:
    """``vmrunner probe live|ready`` (see vmrunner.api.client)."""
    from vmrunner.api.client import probe_main

    return probe_main(args.config, args.which, strict=args.strict)


def cmd_events(args: argparse.Namespace) -> int:
    """``vmrunner events`` (see vmrunner.api.client)."""
    from vmrunner.api.client import events_main

    return events_main(args.config, as_json=args.json, since=args.since, strict=args.strict)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``vmrunner`` and ``python -m vmrunner``; returns the exit code."""
    from vmrunner.daemon.commands import COMMANDS as VM_COMMANDS
    from vmrunner.daemon.commands import NO_CONFIG
    from vmrunner.daemon.logs import setup_logging

    parser = build_parser()
    try:
        args = parser.parse_args(_with_command(sys.argv[1:] if argv is None else argv))
    except UnknownCommand as exc:
        parser.error(str(exc))
    # The daemon logs to stdout (containers, journald); the tools keep stdout for their output.
    setup_logging(args.log_level, args.log_format,
                  sys.stdout if args.command == "run" else sys.stderr)
    from vmrunner.daemon.check_hints import missing_default_config

    missing = missing_default_config(args.config, DEFAULT_CONFIG)
    if missing is not None and args.command not in NO_CONFIG and not (
            args.command == "check" and args.host):
        print(missing, file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    commands = {"run": cmd_run, "check": cmd_check, "render": cmd_render,
                "status": cmd_status, "events": cmd_events, "probe": cmd_probe, **VM_COMMANDS}
    try:
        code = commands[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
        return code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        print(f"vmrunner: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return ExitCode.INTERNAL_ERROR


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush does not fail again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
