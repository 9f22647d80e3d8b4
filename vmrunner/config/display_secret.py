"""VM-Operator's display Secret: ``display-password`` beside the configuration file.

VM-Operator's manager mounts the VM's display Secret (keys ``display-password`` and
``password-expiry``) into the configuration's directory, next to ``config.yaml``, and writes no
``passwordFile``. As with the reference runner, the file's presence turns SPICE passwords on:
a SPICE display without ``passwordFile`` gets ``passwordFile: <config dir>/display-password``
when that file exists at validation, i.e. when the VM starts (the DisplayController then
applies every change of the file live). This wins over the deprecated ``ticket``, which
cannot change live and would break the manager's password handshake. Whether there is a
password at all is fixed when QEMU starts: a file that appears or goes later shows up as a
``passwordFile`` change that needs a restart.
"""

from __future__ import annotations

from pathlib import Path

from vmrunner.config.model import RunnerConfig

PASSWORD_FILE = "display-password"
"""The display Secret's password key, a file in the configuration's directory."""


def with_display_secret(config: RunnerConfig, base_dir: Path) -> RunnerConfig:
    """``config`` with ``passwordFile`` pointing at ``base_dir/display-password`` if SPICE is
    configured without ``passwordFile`` and that file exists; otherwise ``config`` itself."""
    display = config.vm.display
    if display is None or display.spice is None or display.spice.password_file is not None:
        return config
    path = base_dir / PASSWORD_FILE
    if not path.is_file():
        return config
    spice = display.spice.model_copy(update={"password_file": path})
    vm = config.vm.model_copy(update={"display": display.model_copy(update={"spice": spice})})
    return config.model_copy(update={"vm": vm})
