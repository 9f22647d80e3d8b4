"""The content-keyed cache of compiled templates: hits, misses, damage, unsafe directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from vmt_render import render

from vmrunner.vmtypes.compiled import _load, cache_dir
from vmrunner.vmtypes.errors import TemplateKeyError

BODY = "qemu:\n  executable: [q]\n  arguments:\n    - ${vm.name}\n    - ${arg(vm.kernel.image)}\n"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "vmrunner" / "templates"


def test_second_render_uses_the_cached_module(tmp_path: Path, cache: Path) -> None:
    kernel = {"kernel": {"image": "/k"}}
    assert render(tmp_path / "a", BODY, **kernel) == ["q", "t", "/k"]
    entries = list(cache.iterdir())
    assert len(entries) == 1
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    # Same text in another directory: a hit (the entry is not written again).
    stamp = entries[0].stat().st_mtime_ns
    assert render(tmp_path / "b", BODY, **kernel) == ["q", "t", "/k"]
    assert [e.stat().st_mtime_ns for e in cache.iterdir()] == [stamp]
    # Other text: another entry.
    render(tmp_path / "c", BODY + "    - x\n", **kernel)
    assert len(list(cache.iterdir())) == 2


def test_errors_from_a_cached_template_keep_file_and_line(tmp_path: Path, cache: Path) -> None:
    for directory in ("a", "b"):  # miss, then hit
        with pytest.raises(TemplateKeyError) as info:
            render(tmp_path / directory, BODY)
        assert info.value.key == "/Runner/vm/kernel"
        assert info.value.line == 5
        assert str(info.value).startswith(f"{tmp_path / directory}/T.yaml.mako:5:")
    assert len(list(cache.iterdir())) == 1


def test_damaged_entry_is_recompiled(tmp_path: Path, cache: Path) -> None:
    kernel = {"kernel": {"image": "/k"}}
    render(tmp_path / "a", BODY, **kernel)
    (entry,) = cache.iterdir()
    entry.write_bytes(b"\x00garbage")
    assert render(tmp_path / "b", BODY, **kernel) == ["q", "t", "/k"]
    assert _load(entry) is not None  # repaired


def test_cache_others_may_write_to_is_not_used(tmp_path: Path, cache: Path) -> None:
    cache.mkdir(parents=True)
    os.chmod(cache, 0o777)
    assert cache_dir() is None
    render(tmp_path / "a", BODY, kernel={"image": "/k"})
    assert list(cache.iterdir()) == []


def test_no_home_no_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "vmrunner" / "templates"
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("HOME", raising=False)
    assert cache_dir() is None
    assert render(tmp_path / "a", BODY, kernel={"image": "/k"}) == ["q", "t", "/k"]


@pytest.mark.parametrize("name", ["part.mako", "/part.mako"])
def test_includes_use_the_search_path_cached_or_not(
        tmp_path: Path, cache: Path, name: str) -> None:
    body = ("qemu:\n  executable: [q]\n  arguments:\n"
            f"    - <%include file=\"{name}\"/>\n")
    for directory in ("a", "b"):  # miss, then hit
        (tmp_path / directory).mkdir()
        (tmp_path / directory / "part.mako").write_text(f"from-{directory}")
        assert render(tmp_path / directory, body) == ["q", f"from-{directory}"]
    assert len(list(cache.iterdir())) == 1
