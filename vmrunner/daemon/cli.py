"""The ``vmrunner`` command: ``run`` (default), ``check``, ``render``, ``status``, ``events``.

Exit codes are :class:`vmrunner.components.exit_codes.ExitCode`: 0 ok, 1 internal error, 2 invalid
configuration or template, 3 forced stop, 4 QEMU died, 5 start failed, 6 already running,
7 host error (full or read-only state directories).
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
COMMANDS = ("run", "check", "render", "status", "events", "probe")
_GLOBAL_WITH_VALUE = ("--log-level", "--log-format")

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (a missing command means ``run``)."""
    parser = argparse.ArgumentParser(
        prog="vmrunner",
        description="Start and supervise one QEMU virtual machine.",
        epilog="Exit codes: 0 ok (guest powered off), 1 internal error, 2 invalid configuration, "
        "3 forced stop after powerdownTimeout, 4 QEMU died, 5 start failed, "
        "6 another runner runs this VM, 7 the host cannot hold the VM's state (a full or "
        "read-only dataDir/runtimeDir).",
    )
    parser.add_argument("--version", action="version", version=f"vmrunner {__version__}")
    parser.add_argument("--log-level", default="INFO", type=str.upper,
                        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    sub = parser.add_subparsers(dest="command", metavar="{run,check,render,status,events,probe}")
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG,
                        help=f"configuration file (default {DEFAULT_CONFIG})")
    config.add_argument("--strict", action="store_true",
                        help="treat unknown configuration keys as errors")
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
                       help="do not require the disks, images, kernel and password files to "
                       "exist here (a configuration for another machine)")
    check.add_argument("--host", action="store_true",
                       help="check this host instead: QEMU, swtpm, /dev/kvm, the bridges and "
                       "OVMF (PASS/WARN/FAIL per line; exit 0, or 7 on a FAIL)")
    sub.add_parser("render", parents=[config],
                   help="print the swtpm and QEMU command lines, starting nothing")
    status = sub.add_parser("status", parents=[config],
                            help="ask the running VM's runner what it is doing")
    status.add_argument("--json", action="store_true", help="the raw GET /status document")
    probe = sub.add_parser("probe", parents=[config],
                           help="exit 0 if the runner is live / the VM is ready (for probes)")
    probe.add_argument("which", choices=("live", "ready"))
    events = sub.add_parser("events", parents=[config],
                            help="follow the running VM's event stream")
    events.add_argument("--json", action="store_true", help="JSON lines as the API sends them")
    events.add_argument("--since", type=int, default=0,
                        help="replay the kept events after this sequence number (default 0)")
    return parser


def _with_command(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``run`` inserted when no command is given."""
    args = list(argv)
    index = 0
    while index < len(args):
        token = args[index]
        if token in _GLOBAL_WITH_VALUE:
            index += 2
        elif token.startswith(tuple(f"{o}=" for o in _GLOBAL_WITH_VALUE)):
            index += 1
        elif token in ("-h", "--help", "--version"):
            return args
        else:
            break
    if index >= len(args) or args[index] not in COMMANDS:
        args.insert(index, "run")
    return args


def _print_problems(lines: Sequence[object], out: TextIO) -> None:
    for line in lines:
        print(line, file=out)


def _prepare(config_file: Path, strict: bool, out: TextIO,
             host_files: bool = False) -> tuple[object, int]:
    """Validate and render without side effects; (rendered VM or None, exit code).
    ``host_files``: the files the configuration names must exist (vmrunner.daemon.check_files)."""
    from vmrunner.config.validate import load_config
    from vmrunner.vmtypes.errors import VmTypeError
    from vmrunner.vmtypes.prepare import plan_start

    validation = load_config(config_file, strict=strict)
    _print_problems(validation.problems, out)
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
                     *config_notes(config_file)], out)
    if errors:
        return None, ExitCode.CONFIG_ERROR
    try:
        plan = plan_start(validation.config, create=False)
        rendered = plan.render()
    except VmTypeError as exc:
        print(exc, file=out)
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
    _, code = _prepare(args.config, args.strict, sys.stdout, host_files=not args.no_host_files)
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

    return status_main(args.config, as_json=args.json, strict=args.strict)


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
    from vmrunner.daemon.logs import setup_logging

    parser = build_parser()
    args = parser.parse_args(_with_command(sys.argv[1:] if argv is None else argv))
    # The daemon logs to stdout (containers, journald); the tools keep stdout for their output.
    setup_logging(args.log_level, args.log_format,
                  sys.stdout if args.command == "run" else sys.stderr)
    from vmrunner.daemon.check_hints import missing_default_config

    missing = missing_default_config(args.config, DEFAULT_CONFIG)
    if missing is not None and not (args.command == "check" and args.host):
        print(missing, file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    commands = {"run": cmd_run, "check": cmd_check, "render": cmd_render,
                "status": cmd_status, "events": cmd_events, "probe": cmd_probe}
    try:
        return commands[args.command](args)
    except KeyboardInterrupt:
        return ExitCode.INTERNAL_ERROR
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        print(f"vmrunner: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return ExitCode.INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
