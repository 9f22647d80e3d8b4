"""The /Runner model and its validation (vmrunner.config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vmrunner.config.model import RunnerConfig
from vmrunner.config.sizes import GIB, MIB
from vmrunner.config.validate import load_config, unknown_keys, validate_values


def minimal(**vm: Any) -> dict[str, Any]:
    return {"vm": {"name": "t", **vm}}


def test_defaults() -> None:
    config = RunnerConfig.model_validate(minimal())
    vm = config.vm
    assert vm.powerdown_timeout == 900
    assert vm.on_panic == "reset"
    assert vm.accelerator == "kvm"
    assert vm.firmware == "uefi"
    assert vm.maximum_ram == GIB and vm.effective_current_ram == GIB
    assert vm.maximum_cpus == 1 and vm.effective_current_cpus == 1
    assert [n.type for n in vm.network] == ["tap"]
    assert config.template == "Standard-VM.yaml.mako"
    assert config.update_template is False


def test_camel_case_and_snake_case_both_work() -> None:
    camel = RunnerConfig.model_validate(minimal(maximumCpus=4, currentCpus=2, useTpm=True))
    snake = RunnerConfig.model_validate(minimal(maximum_cpus=4, current_cpus=2, use_tpm=True))
    assert camel == snake


def test_every_issue_key_exists() -> None:
    runner = {f.alias for f in RunnerConfig.model_fields.values()}
    assert {"dataDir", "runtimeDir", "template", "updateTemplate", "cloudInit",
            "guestShutdownStops", "resetCounter", "vm"} <= runner
    config = RunnerConfig.model_validate(minimal())
    vm = {f.alias for f in type(config.vm).model_fields.values()}
    assert {"name", "uuid", "useTpm", "firmware", "bootMenu", "powerdownTimeout", "maximumRam",
            "currentRam", "cpuModel", "maximumCpus", "currentCpus", "sockets", "diesPerSocket",
            "coresPerDie", "threadsPerCore", "accelerator", "rtcBase", "rtcClock", "network",
            "drives", "display", "onPanic"} <= vm


def test_memory_strings() -> None:
    vm = RunnerConfig.model_validate(minimal(maximumRam="2 GiB", currentRam="1536Mi")).vm
    assert vm.maximum_ram == 2 * GIB and vm.current_ram == 1536 * MIB


@pytest.mark.parametrize(
    ("vm", "path"),
    [
        ({"maximumCpus": 2, "currentCpus": 3}, "/Runner/vm/currentCpus"),
        ({"maximumRam": "1G", "currentRam": "2G"}, "/Runner/vm/currentRam"),
        ({"maximumRam": "1000 kB"}, "/Runner/vm/maximumRam"),
        ({"maximumRam": "1 XB"}, "/Runner/vm/maximumRam"),
        ({"sockets": 2, "maximumCpus": 3}, "/Runner/vm/maximumCpus"),
        ({"drives": [{"file": "/a"}, {"type": "ide-cd", "file": "/b", "bus": "usb"}]},
         "/Runner/vm/drives/1/bus"),
        ({"onPanic": "reboot"}, "/Runner/vm/onPanic"),
    ],
)
def test_errors_name_the_key(vm: dict[str, Any], path: str) -> None:
    result = validate_values(minimal(**vm))
    assert not result.ok
    assert [p.path for p in result.errors] == [path]


def test_on_panic_names_the_choices() -> None:
    result = validate_values(minimal(onPanic="shutdown"))
    assert [str(p) for p in result.errors] == [
        "/Runner/vm/onPanic: Input should be 'reset', 'stop' or 'pause' (got 'shutdown')"]


@pytest.mark.parametrize("user", [
    "alice bob", "alice\nlogout", "alice\r", "\tx", "bob\x00", "a\x1bb", "x\u2028y",
    "a" * 65, "",
])
def test_logged_in_user_rejects_what_would_break_the_line_protocol(user: str) -> None:
    """loggedInUser is sent as one line, ``login <user>``: no second command can be injected
    (issue 14); the error names the key path."""
    result = validate_values(minimal(display={"loggedInUser": user}))
    assert not result.ok
    assert [p.path for p in result.errors] == ["/Runner/vm/display/loggedInUser"], result.errors


def test_logged_in_user_accepts_ordinary_names() -> None:
    for user in ("alice", "a" * 64, "DOMAIN\\j.doe", "jürgen", "user@example.org"):
        result = validate_values(minimal(display={"loggedInUser": user}))
        assert result.ok, result.errors
        assert result.config is not None and result.config.vm.display is not None
        assert result.config.vm.display.logged_in_user == user


def test_topology_product_must_match() -> None:
    ok = validate_values(minimal(sockets=2, coresPerDie=2, threadsPerCore=2, maximumCpus=8))
    assert ok.ok


def test_unknown_keys_are_warnings_with_suggestions() -> None:
    values = minimal(accelertor="tcg", drives=[{"file": "/a", "bootidx": 1}])
    values["/QemuMonitor"] = {"whatever": 1}
    values["dataDirectory"] = "/x"
    result = validate_values(values)
    assert result.ok
    messages = [str(p) for p in result.warnings]
    assert "warning: /Runner/vm/accelertor: unknown key (did you mean 'accelerator'?)" in messages
    assert ("warning: /Runner/vm/drives/0/bootidx: unknown key (did you mean 'bootindex'?)"
            in messages)
    assert "warning: /Runner/dataDirectory: unknown key (did you mean 'dataDir'?)" in messages
    assert len(messages) == 3  # child node "/QemuMonitor" is not a value


def test_strict_makes_unknown_keys_errors() -> None:
    result = validate_values(minimal(accelertor="tcg"), strict=True)
    assert not result.ok
    assert [p.path for p in result.errors] == ["/Runner/vm/accelertor"]


def test_unknown_keys_in_nested_optional_models() -> None:
    problems = unknown_keys(RunnerConfig, minimal(display={"spice": {"prot": 1}}))
    assert [p.path for p in problems] == ["/Runner/vm/display/spice/prot"]


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text('"/Runner":\n  dataDir: d\n  vm: {name: t, drives: [{file: disk.img}]}\n')
    config = load_config(file).config
    assert config is not None
    assert config.data_dir == tmp_path / "d"
    assert config.vm.drives[0].file == tmp_path / "disk.img"


def test_underscore_node_is_accepted(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text("_Runner:\n  vm: {name: t}\n")
    assert load_config(file).ok


def test_models_are_frozen() -> None:
    config = RunnerConfig.model_validate(minimal())
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type
        config.vm.name = "other"  # type: ignore[misc]
