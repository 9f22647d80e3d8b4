"""Path-node addressing, the update event's accessors, and validation messages (no bus)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from vmrunner.core.config import (
    ConfigFormatError,
    ConfigurationUpdate,
    InitialConfiguration,
    flatten,
    full_update,
    validate,
)
from vmrunner.core.config.paths import changed_paths, flat_values, split_path

DOC = """
logLevel: info
"/Runner":
  dataDir: /var/lib/x
  vm: {name: test-vm, currentCpus: 2}
  "/QemuMonitor":
    connectTimeout: 10
    "/Deep":
      level: 3
  _GuestAgent:
    enabled: true
"/Runner/Extra":
  a: 1
"/Empty":
"""


def test_flatten_nested_paths_and_underscore_nodes() -> None:
    nodes = flatten(yaml.safe_load(DOC))
    assert nodes == {
        "/": {"logLevel": "info"},
        "/Runner": {"dataDir": "/var/lib/x", "vm": {"name": "test-vm", "currentCpus": 2}},
        "/Runner/QemuMonitor": {"connectTimeout": 10},
        "/Runner/QemuMonitor/Deep": {"level": 3},
        "/Runner/GuestAgent": {"enabled": True},
        "/Runner/Extra": {"a": 1},
        "/Empty": {},
    }


def test_root_without_values_has_no_entry_and_values_keep_slash_keys() -> None:
    nodes = flatten({"/A": {"files": {"/etc/hosts": "x"}}})
    assert nodes == {"/A": {"files": {"/etc/hosts": "x"}}}  # keys inside values are not nodes
    assert flatten(None) == {}


def test_a_node_given_twice_is_merged_but_a_key_twice_is_an_error() -> None:
    merged = flatten({"/R/Q": {"a": 1}, "/R": {"/Q": {"b": 2}}})
    assert merged == {"/R": {}, "/R/Q": {"a": 1, "b": 2}}
    with pytest.raises(ConfigFormatError, match=r"^/R/Q: key 'a' is given more than once"):
        flatten({"/R/Q": {"a": 1}, "/R": {"/Q": {"a": 2}}})


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"/R": 5}, "/R: a node must be a mapping, not int"),
        ({"/R": {"/Q": [1]}}, "/R/Q: a node must be a mapping, not list"),
        ({"/R": {"//Q": {}}}, "/R: node key '//Q' must not be empty"),
        ({"/": {}}, "/: node key '/' must not be empty"),
        ([1, 2], "/: the document must be a mapping, not list"),
    ],
)
def test_malformed_documents_name_the_path(doc: Any, message: str) -> None:
    with pytest.raises(ConfigFormatError) as info:
        flatten(doc)
    assert str(info.value).startswith(message)


def test_full_update_maps_removed_paths_to_none() -> None:
    old = flatten(yaml.safe_load(DOC))
    new = flatten({"/Runner": {"dataDir": "/y"}, "/Runner/QemuMonitor": {"connectTimeout": 10}})
    update = full_update(old, new)
    assert update["/Runner"] == {"dataDir": "/y"}
    assert update["/Runner/QemuMonitor"] == {"connectTimeout": 10}
    for gone in ("/", "/Runner/QemuMonitor/Deep", "/Runner/GuestAgent", "/Runner/Extra",
                 "/Empty"):
        assert update[gone] is None
    assert changed_paths(old, new) == set(update) - {"/Runner/QemuMonitor"}


def test_update_structured_is_exact_and_a_fresh_copy() -> None:
    event = ConfigurationUpdate.of({
        "/Runner": {"vm": {"drives": [{"file": "a"}]}},
        "/Runner/QemuMonitor": {"connectTimeout": 10},
        "/Gone": None,
    })
    assert event.paths == ("/Runner", "/Runner/QemuMonitor", "/Gone")
    assert event.removed == ("/Gone",)
    assert "/Gone" in event and "/Run" not in event
    assert event.structured("/Runner/QemuMonitor") == {"connectTimeout": 10}
    assert event.structured("/Runner/Qemu") is None  # exact match only
    assert event.structured("/Gone") is None
    copy = event.structured("/Runner")
    assert copy == {"vm": {"drives": [{"file": "a"}]}}
    assert copy is not None
    copy["vm"]["drives"].append({"file": "b"})
    assert event.structured("/Runner") == {"vm": {"drives": [{"file": "a"}]}}
    assert event.values("/Runner") == {"vm.drives.0.file": "a"}
    with pytest.raises(TypeError):
        event.nodes["/Runner"]["vm"] = {}  # type: ignore[index]


def test_update_rejects_relative_paths_and_initial_is_an_update() -> None:
    with pytest.raises(ConfigFormatError):
        ConfigurationUpdate.of({"Runner": {}})
    assert isinstance(InitialConfiguration.of({}), ConfigurationUpdate)
    assert split_path("/Runner/QemuMonitor") == ("Runner", "QemuMonitor")
    assert flat_values({"a": {}, "b": [], "c": [1, {"d": None}]}) == {
        "a": {}, "b": [], "c.0": 1, "c.1.d": None}


class Drive(BaseModel):
    file: str


class Vm(BaseModel):
    name: str
    current_cpus: int = Field(default=1, alias="currentCpus")
    drives: list[Drive] = []
    display: Drive | None = None


class RunnerModel(BaseModel):
    vm: Vm
    data_dir: str = Field(default="/tmp", validation_alias="dataDir")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    a: int = 0


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")
    a: int = 0


def test_errors_name_the_node_and_key_path() -> None:
    outcome = validate(RunnerModel, "/Runner", {"vm": {"name": "x", "currentCpus": "many",
                                                        "drives": [{"file": 3}]}})
    assert outcome.config is None
    assert outcome.errors == (
        "/Runner/vm/currentCpus: Input should be a valid integer, unable to parse string as "
        "an integer",
        "/Runner/vm/drives/0/file: Input should be a valid string",
    )
    missing = validate(RunnerModel, "/Runner", {})
    assert missing.errors == ("/Runner/vm: Field required",)


def test_unknown_keys_are_warnings_by_path_unless_forbidden_or_allowed() -> None:
    outcome = validate(RunnerModel, "/Runner", {
        "dataDir": "/d", "vm": {"name": "x", "accelertor": "tcg",
                                "drives": [{"file": "a", "bus": 1}],
                                "display": {"file": "d", "spice": True}},
        "oops": 1})
    assert outcome.config is not None and outcome.config.data_dir == "/d"
    assert outcome.warnings == (
        "/Runner/vm/accelertor: unknown key",
        "/Runner/vm/drives/0/bus: unknown key",
        "/Runner/vm/display/spice: unknown key",
        "/Runner/oops: unknown key",
    )
    strict = validate(Strict, "/S", {"b": 1})
    assert strict.warnings == ()
    assert strict.errors == ("/S/b: Extra inputs are not permitted",)
    assert validate(Open, "/O", {"b": 1}).warnings == ()
    assert validate(Strict, "/", {"a": "x"}).errors[0].startswith("/a: ")


def test_an_unknown_key_gets_the_closest_known_key_of_its_model() -> None:
    outcome = validate(RunnerModel, "/Runner", {"vm": {"name": "x", "nmae": "y"},
                                                "dataDri": "/d"})
    assert outcome.warnings == ("/Runner/vm/nmae: unknown key (did you mean 'name'?)",
                                "/Runner/dataDri: unknown key (did you mean 'dataDir'?)")
