"""The bash completion and the man page of ``vmrunner``, generated from its argparse parser.

``python -m vmrunner.daemon.commands.docgen`` writes :data:`COMPLETION` and :data:`MANPAGE`;
``--check`` exits 1 if either differs from what the parser gives (tests run the same
comparison). Both are pure functions of the parser and the version: no dates, no paths.

The completion completes the commands, each command's options (the global ones included,
which are taken after the command too), option values with ``choices`` and file names for
path options, and positional ``choices`` (``probe live|ready``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

from vmrunner import __version__

ROOT = Path(__file__).resolve().parents[3]
COMPLETION = ROOT / "deploy" / "completion" / "vmrunner.bash"
MANPAGE = ROOT / "docs" / "vmrunner.1"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse has no public accessor for these
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _help_of(parser: argparse.ArgumentParser, name: str) -> str:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if choice.dest == name:
                    return choice.help or ""
    return ""


def _options(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if action.option_strings and action.help is not argparse.SUPPRESS:
            yield action


def _takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0


def _is_path(action: argparse.Action) -> bool:
    return action.type is Path


def bash_completion(parser: argparse.ArgumentParser) -> str:
    """The bash completion script for ``parser`` (function ``_vmrunner``)."""
    commands = _subcommands(parser)
    files: set[str] = set()
    choices: dict[str, str] = {}
    for sub in [parser, *commands.values()]:
        for action in _options(sub):
            for option in action.option_strings:
                if _is_path(action):
                    files.add(option)
                elif action.choices is not None and _takes_value(action):
                    choices[option] = " ".join(str(c) for c in action.choices)
    lines = [
        "# bash completion for vmrunner; generated from its parser by",
        "# `python -m vmrunner.daemon.commands.docgen`: do not edit.",
        "_vmrunner() {",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="" cmd="" i',
        '    (( COMP_CWORD > 0 )) && prev="${COMP_WORDS[COMP_CWORD-1]}"',
        "    for (( i = 1; i < COMP_CWORD; i++ )); do",
        '        case "${COMP_WORDS[i]}" in',
        f"            {'|'.join(commands)}) cmd=\"${{COMP_WORDS[i]}}\"; break ;;",
        "        esac",
        "    done",
        '    case "$prev" in',
    ]
    if files:
        lines.append(f"        {'|'.join(sorted(files))})")
        lines.append('            COMPREPLY=( $(compgen -f -- "$cur") ); return ;;')
    for option, words in sorted(choices.items()):
        lines.append(f"        {option})")
        lines.append(f'            COMPREPLY=( $(compgen -W {shlex.quote(words)} -- "$cur") )'
                     "; return ;;")
    valued = sorted({o for sub in [parser, *commands.values()] for a in _options(sub)
                     if _takes_value(a) for o in a.option_strings} - files - set(choices))
    if valued:
        lines.append(f"        {'|'.join(valued)}) return ;;")
    lines += ["    esac", '    local words=""', '    case "$cmd" in']
    top = " ".join(o for a in _options(parser) for o in a.option_strings)
    lines.append(f"        '') words={shlex.quote(top)}")
    lines.append('            [[ "$cur" != -* ]] && words="' + " ".join(commands) + '" ;;')
    for name, sub in commands.items():
        offered = [o for a in _options(sub) for o in a.option_strings]
        for action in sub._actions:
            if not action.option_strings and action.choices is not None:
                offered += [str(c) for c in action.choices]
        lines.append(f"        {name}) words={shlex.quote(' '.join(offered))} ;;")
    lines += ["    esac", '    COMPREPLY=( $(compgen -W "$words" -- "$cur") )', "}",
              "complete -F _vmrunner vmrunner", ""]
    return "\n".join(lines)


def _roff(text: str) -> str:
    """``text`` escaped for a roff line (backslashes, leading dots and quotes, dashes)."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def _option_lines(actions: list[argparse.Action]) -> list[str]:
    lines = []
    for action in actions:
        if not action.option_strings or action.help is argparse.SUPPRESS:
            continue
        metavar = "" if not _takes_value(action) else " " + (
            str(action.metavar) if action.metavar else
            "{" + ",".join(str(c) for c in action.choices) + "}" if action.choices is not None
            else action.dest.upper())
        names = ", ".join(f"\\fB{_roff(o)}\\fR" for o in action.option_strings)
        lines += [".TP", f"{names}{_roff(metavar)}", _roff(action.help or "")]
    for action in actions:
        if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
            name = action.metavar or (
                "{" + ",".join(str(c) for c in action.choices) + "}" if action.choices
                else action.dest)
            lines += [".TP", f"\\fI{_roff(str(name))}\\fR", _roff(action.help or "")]
    return lines


def man_page(parser: argparse.ArgumentParser) -> str:
    """The man page (section 1) for ``parser``."""
    commands = _subcommands(parser)
    lines = [
        '.\\" generated from the parser by `python -m vmrunner.daemon.commands.docgen`',
        f'.TH VMRUNNER 1 "" "vmrunner {__version__}" "User Commands"',
        ".SH NAME", "vmrunner \\- " + _roff(parser.description or ""),
        ".SH SYNOPSIS", "\\fBvmrunner\\fR [\\fIoptions\\fR] [\\fIcommand\\fR] "
        "[\\fIoptions\\fR] [\\fIarguments\\fR]",
        ".SH DESCRIPTION",
        _roff("Without a command, vmrunner runs the VM (the run command). The global options "
              "may be given before or after the command."),
        ".SH GLOBAL OPTIONS", *_option_lines(parser._actions),
        ".SH COMMANDS",
    ]
    for name, sub in commands.items():
        lines += [f".SS {name}", _roff(sub.description or _help_of(parser, name))]
        globals_ = {o for a in _options(parser) for o in a.option_strings}
        lines += _option_lines([a for a in sub._actions
                                if not set(a.option_strings) & (globals_ | {"-h", "--help"})])
    lines += [".SH EXIT STATUS", _roff(parser.epilog or ""),
              ".SH SEE ALSO", "docs/guide/operations.md, docs/guide/configuration.md", ""]
    return "\n".join(lines)


def outputs() -> dict[Path, str]:
    """Each generated file with its content."""
    from vmrunner.daemon.cli import build_parser

    parser = build_parser()
    return {COMPLETION: bash_completion(parser), MANPAGE: man_page(parser)}


def main(argv: list[str] | None = None) -> int:
    """Write the files, or with ``--check`` report the stale ones (exit 1)."""
    check = "--check" in (sys.argv[1:] if argv is None else argv)
    stale = []
    for path, text in outputs().items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if check:
            stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    for path in stale:
        print(f"{path.relative_to(ROOT)} is stale: run python -m vmrunner.daemon.commands.docgen",
              file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
