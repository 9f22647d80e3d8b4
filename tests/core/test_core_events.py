"""Event classes are frozen, keyword-only msgspec Structs with value semantics."""

from __future__ import annotations

import typing
from typing import Any

import msgspec
import pytest

from vmrunner.core import BROADCAST, Event, Start, Started
from vmrunner.core.events import CompletionEvent, Error, HandlingError


class Greet(Event[str], frozen=True, kw_only=True):
    who: str
    loud: bool = False


class Shout(Greet, frozen=True, kw_only=True):
    volume: int


def test_events_are_frozen_keyword_only_structs() -> None:
    greet = Greet(who="ada")
    assert isinstance(greet, msgspec.Struct)
    with pytest.raises(AttributeError):
        greet.who = "bob"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Greet("ada")  # type: ignore[call-arg]


def test_value_semantics() -> None:
    assert Greet(who="ada") == Greet(who="ada")
    assert Greet(who="ada") != Greet(who="bob")
    assert Greet(who="ada") != Shout(who="ada", volume=3)
    assert len({Greet(who="ada"), Greet(who="ada"), Greet(who="bob")}) == 2
    assert repr(Greet(who="ada")) == "Greet(who='ada', loud=False)"


def test_subclass_fields_follow_base_defaults() -> None:
    shout = Shout(who="ada", volume=3)
    assert msgspec.structs.asdict(shout) == {"who": "ada", "loud": False, "volume": 3}
    failed = HandlingError(message="m", event=shout, handler="h")
    assert failed.exception is None and isinstance(failed, Error)


def test_class_knobs_are_not_fields() -> None:
    assert Start.__struct_fields__ == ()
    assert Start.default_channels == (BROADCAST,)
    assert Start.completed_by is Started
    assert Started.__struct_fields__ == ("completed",)
    assert Greet.observable and Greet.completed_by is None


def test_generic_result_type() -> None:
    alias: Any = Event[str]
    assert typing.get_origin(alias) is Event
    assert typing.get_args(alias) == (str,)
    assert issubclass(Started, CompletionEvent)
