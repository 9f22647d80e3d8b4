"""Live edits of /Runner are validated like the CLI validates the file (key-path messages)."""

from __future__ import annotations

from pathlib import Path

from vmrunner.config.runner_section import validate_runner_section


def test_errors_name_the_key_path_with_the_project_messages() -> None:
    outcome = validate_runner_section({"vm": {"name": "a", "currentCpus": "many"}}, None)
    assert outcome.config is None
    assert outcome.errors == (
        "/Runner/vm/currentCpus: Input should be a valid integer, unable to parse string as "
        "an integer (got 'many')",)


def test_unknown_keys_warn_or_fail_when_strict() -> None:
    values = {"vm": {"name": "a", "accelertor": "tcg"}}
    lenient = validate_runner_section(values, None)
    assert lenient.config is not None and lenient.errors == ()
    assert lenient.warnings == ("/Runner/vm/accelertor: unknown key (did you mean "
                                "'accelerator'?)",)
    strict = validate_runner_section(values, None, strict=True)
    assert strict.config is None
    assert strict.errors == ("/Runner/vm/accelertor: unknown key (did you mean "
                             "'accelerator'?)",)


def test_relative_paths_use_the_unresolved_config_dir(tmp_path: Path) -> None:
    target = tmp_path / "..2026_11_25"
    target.mkdir()
    (tmp_path / "..data").symlink_to(target.name)
    mount = tmp_path
    outcome = validate_runner_section(
        {"vm": {"name": "a", "drives": [{"type": "ide-cd", "file": "cd.iso"}]}},
        {"source": mount / "config.yaml", "base_dir": mount})
    assert outcome.config is not None
    assert outcome.config.vm.drives[0].file == mount / "cd.iso"
