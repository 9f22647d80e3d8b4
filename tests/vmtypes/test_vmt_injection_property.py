"""Property: no string value in the configuration can add, remove or change QEMU options.

Each free-text field gets arbitrary text (commas, '=', quotes, YAML syntax, newlines, ...). The
rendered command line must have the same shape as with a harmless value: the same number of
arguments, and every option string splits (the way QEMU splits it, ',,' being a literal comma)
into the same keys; the value itself comes back unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmrunner.config.validate import validate_values
from vmrunner.vmtypes.prepare import plan_start

# QEMU's and YAML's special characters often, anything else (but NUL) sometimes
special = st.sampled_from([*",,,==:#{}[]&*!|>'\"%@` \n\t\\-", ",file=/etc/shadow"])
text = st.lists(
    st.one_of(special, st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))),
    min_size=1, max_size=20,
).map("".join)


def qemu_split(option: str) -> list[tuple[str, str | None]]:
    """Split an option string as QEMU's option parser does."""
    parts, current, i = [], "", 0
    while i < len(option):
        if option[i] == ",":
            if option[i + 1:i + 2] == ",":
                current += ","
                i += 2
                continue
            parts.append(current)
            current = ""
        else:
            current += option[i]
        i += 1
    parts.append(current)
    return [(p.split("=", 1)[0], p.split("=", 1)[1]) if "=" in p else (p, None) for p in parts]


def argv_for(value: str, path: str) -> list[str]:
    vm: dict[str, Any] = {
        "name": "p", "firmware": "bios", "accelerator": "tcg",
        "network": [{"type": "tap", "bridge": value}, {"type": "user", "net": value}],
        "drives": [{"file": path}, {"device": path}, {"type": "ide-cd", "file": path},
                   {"type": "ide-cd", "bus": "scsi", "file": path}],
        "kernel": {"image": path, "initrd": path, "cmdline": value},
        "display": {"spice": {"address": value, "passwordFile": path}},
    }
    result = validate_values({"dataDir": "/nonexistent/d", "runtimeDir": "/nonexistent/r",
                              "vm": vm, "cloudInit": {"userData": {"v": value}}})
    assert result.config is not None, result.problems
    return plan_start(result.config).render(resolve_executables=False).qemu.argv


BASELINE = argv_for("harmless", "/harmless")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=text, path_tail=text)
def test_values_cannot_change_the_command_line_shape(value: str, path_tail: str) -> None:
    path = str(Path("/" + path_tail))
    argv = argv_for(value, path)
    assert len(argv) == len(BASELINE)
    for got, base in zip(argv, BASELINE, strict=True):
        if base in ("harmless", "/harmless"):  # a whole argument (-kernel, -append): verbatim
            assert got == (value if base == "harmless" else path)
            continue
        got_opts, base_opts = qemu_split(got), qemu_split(base)
        assert [k for k, _ in got_opts] == [k for k, _ in base_opts], (got, base)
        for (_, got_value), (_, base_value) in zip(got_opts, base_opts, strict=True):
            if base_value == "harmless":
                assert got_value == value
            elif base_value == "/harmless":
                assert got_value == path
            else:
                assert got_value == base_value
