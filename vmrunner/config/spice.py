"""Who may reach SPICE: its password source, and the address it listens on without one.

The start password comes from ``passwordFile``, else a ``display-password`` file beside the
configuration (VM-Operator's display secret), else the deprecated ``ticket``; without any,
SPICE runs without passwords. Such a SPICE is served only where the configuration says so:

- no ``address``: it listens on ``127.0.0.1`` only (a warning says so and how to change it);
- a loopback ``address`` (``127.0.0.0/8``, ``::1``, ``localhost``): as configured, silently;
- any other ``address`` needs ``allowNoPassword: true``, else it is an error; with it, SPICE
  listens there (``allowNoPassword`` without ``address``: on all addresses) without a word.

With a password, ``address`` is used as configured (unset: all addresses).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from vmrunner.config.model import RunnerConfig, SpiceConfig

DISPLAY_PASSWORD = "display-password"
"""The display secret's key, a file beside the configuration (VM-Operator mounts it there)."""
LOOPBACK = "127.0.0.1"
"""Where a SPICE without a password and without an address listens."""
KEY = "/Runner/vm/display/spice"

PasswordSource = Literal["passwordFile", "display-password", "ticket"]


def _spice(config: RunnerConfig) -> SpiceConfig | None:
    display = config.vm.display
    return display.spice if display is not None else None


def spice_password_source(config: RunnerConfig,
                          config_dir: Path | None = None) -> PasswordSource | None:
    """Where SPICE's start password comes from, decided when QEMU starts: ``passwordFile``;
    else a ``display-password`` file beside the configuration (``config_dir``, default
    :attr:`RunnerConfig.config_dir`), as VM-Operator's display secret provides it; else the
    deprecated ``ticket``; else ``None``: SPICE without passwords (ticketing off)."""
    spice = _spice(config)
    if spice is None:
        return None
    if spice.password_file is not None:
        return "passwordFile"
    directory = config_dir if config_dir is not None else config.config_dir
    if directory is not None and (directory / DISPLAY_PASSWORD).is_file():
        return "display-password"
    return "ticket" if spice.ticket is not None else None


def is_loopback(address: str) -> bool:
    """Whether ``address`` (a literal IP or ``localhost``) reaches only this host."""
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def spice_address(config: RunnerConfig) -> str | None:
    """The address SPICE listens on (``None``: all addresses); see the module docs."""
    spice = _spice(config)
    if spice is None:
        return None
    if (spice.address is None and not spice.allow_no_password
            and spice_password_source(config) is None):
        return LOOPBACK
    return spice.address


NO_PASSWORD = ("no password (no passwordFile, no display-password file beside the "
               "configuration, no ticket)")


def spice_exposure(config: RunnerConfig) -> tuple[str, str, bool] | None:
    """``(key path, message, is_error)`` when SPICE without a password is restricted or
    refused (see the module docs), else ``None``."""
    spice = _spice(config)
    if spice is None or spice.allow_no_password or spice_password_source(config) is not None:
        return None
    if spice.address is None:
        return (KEY, f"{NO_PASSWORD}: SPICE listens on {LOOPBACK} only; give it a password, "
                "or set address and allowNoPassword: true to serve it elsewhere without one",
                False)
    if is_loopback(spice.address):
        return None
    return (f"{KEY}/address", f"{spice.address} would serve SPICE with {NO_PASSWORD} to the "
            "network; give it a password, or set allowNoPassword: true", True)
