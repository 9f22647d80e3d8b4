"""``hostForwards`` (the quickstart's SSH port forward): validated with its key path and
rendered by the standard VM type into ``-netdev user,...,hostfwd=...`` once per forward."""

from __future__ import annotations

from typing import Any

import pytest

from vmrunner.config.validate import validate_values
from vmrunner.vmtypes.escape import opt
from vmrunner.vmtypes.prepare import plan_start


def _validate(nic: dict[str, Any]) -> Any:
    return validate_values({
        "dataDir": "/nonexistent/d", "runtimeDir": "/nonexistent/r",
        "vm": {"name": "q", "firmware": "bios", "accelerator": "tcg", "network": [nic]}})


def test_forwards_render_as_one_hostfwd_each() -> None:
    result = _validate({"type": "user", "hostForwards": [
        "tcp:127.0.0.1:2222-:22", "udp::5353-10.0.2.15:53"]})
    assert result.config is not None, result.problems
    argv = plan_start(result.config).render(resolve_executables=False).qemu.argv
    netdev = argv[argv.index("-netdev") + 1]
    assert netdev == ("user,id=hostnet0,hostfwd=tcp:127.0.0.1:2222-:22,"
                      "hostfwd=udp::5353-10.0.2.15:53")


def test_no_forwards_render_no_hostfwd() -> None:
    result = _validate({"type": "user"})
    assert result.config is not None, result.problems
    argv = plan_start(result.config).render(resolve_executables=False).qemu.argv
    assert argv[argv.index("-netdev") + 1] == "user,id=hostnet0"


def test_opt_repeats_a_key_for_each_list_item_and_escapes_each() -> None:
    assert opt("user", {"hostfwd": ["a,b", "c"], "net": None}) == "user,hostfwd=a,,b,hostfwd=c"


@pytest.mark.parametrize("value", [
    "tcp:2222-:22",             # the host address's colon is missing
    "2222-:22",                 # no protocol
    "sctp::2222-:22",           # not a protocol QEMU forwards
    "tcp::0-:22",               # port 0
    "tcp::2222-:65536",         # port beyond 65535
    "tcp:127.0.0.256:2222-:22", # not an IPv4 address
    "tcp::2222-:22,hostfwd=tcp::1-:1",  # an attempt to smuggle an option
])
def test_bad_forward_is_an_error_at_its_key_path(value: str) -> None:
    result = _validate({"type": "user", "hostForwards": [value]})
    assert result.config is None
    assert [str(p) for p in result.errors] == [
        f"/Runner/vm/network/0/hostForwards/0: '{value}' is not a port forward: write "
        "PROTO:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT, e.g. 'tcp:127.0.0.1:2222-:22'"]


def test_forwards_on_a_tap_nic_are_refused() -> None:
    result = _validate({"type": "tap", "hostForwards": ["tcp::2222-:22"]})
    assert [str(p) for p in result.errors] == [
        "/Runner/vm/network/0: 'hostForwards' applies to type user only"]
