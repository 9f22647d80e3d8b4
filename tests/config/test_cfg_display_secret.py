"""VM-Operator's display Secret beside config.yaml sets the SPICE password file
(vmrunner.config.display_secret), through the validation every path uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vmrunner.config.validate import load_config, validate_values

MANAGER_CONFIG = """\
"/Runner":
  dataDir: /var/local/vm-data
  vm:
    name: vm1
    display:
      spice:
        port: 5910
        usbRedirects: 2
"""


def _spice(base: Path, **spice: Any) -> dict[str, Any]:
    values = {"vm": {"name": "vm1", "display": {"spice": {"port": 5910, **spice}}}}
    validation = validate_values(values, base_dir=base)
    assert validation.ok and validation.config is not None, validation.problems
    display = validation.config.vm.display
    assert display is not None and display.spice is not None
    return {"password_file": display.spice.password_file, "ticket": display.spice.ticket}


def test_manager_config_with_the_secret_uses_display_password(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(MANAGER_CONFIG)
    (tmp_path / "display-password").write_text("secret")
    validation = load_config(tmp_path / "config.yaml", strict=True)
    assert validation.ok and validation.config is not None, validation.problems
    assert validation.problems == []  # no warning for what the manager writes
    display = validation.config.vm.display
    assert display is not None and display.spice is not None
    assert display.spice.password_file == tmp_path / "display-password"


def test_without_the_file_there_is_no_password(tmp_path: Path) -> None:
    assert _spice(tmp_path) == {"password_file": None, "ticket": None}


def test_the_secret_wins_over_the_deprecated_ticket(tmp_path: Path) -> None:
    (tmp_path / "display-password").write_text("secret")
    assert _spice(tmp_path, ticket="static") == {
        "password_file": tmp_path / "display-password", "ticket": "static"}
    (tmp_path / "display-password").unlink()
    assert _spice(tmp_path, ticket="static") == {"password_file": None, "ticket": "static"}


def test_an_explicit_password_file_stays(tmp_path: Path) -> None:
    (tmp_path / "display-password").write_text("secret")
    assert _spice(tmp_path, passwordFile="/run/secrets/pw")["password_file"] == Path(
        "/run/secrets/pw")


def test_a_directory_of_that_name_is_not_a_password(tmp_path: Path) -> None:
    (tmp_path / "display-password").mkdir()
    assert _spice(tmp_path)["password_file"] is None


def test_no_spice_no_password_file(tmp_path: Path) -> None:
    (tmp_path / "display-password").write_text("secret")
    validation = validate_values({"vm": {"name": "vm1"}}, base_dir=tmp_path)
    assert validation.config is not None and validation.config.vm.display is None
    # without base_dir (no configuration file) nothing is looked up
    values = {"vm": {"name": "vm1", "display": {"spice": {"port": 5910}}}}
    config = validate_values(values).config
    assert config is not None and config.vm.display is not None
    assert config.vm.display.spice is not None and config.vm.display.spice.password_file is None
