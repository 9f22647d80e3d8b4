"""A VM's directories and persistent state: dataDir, runtimeDir, uuid, firmware variables.

Resolution is pure (:func:`resolve_paths`, :func:`read_uuid`); the ``ensure_*`` functions
create what is missing. Defaults: systemd's, then the XDG base directories:

- dataDir: the first path in ``$STATE_DIRECTORY`` (systemd's ``StateDirectory=``), else
  ``$XDG_DATA_HOME/vmrunner/<name>``, else (root) ``/var/lib/vmrunner/<name>``, else
  ``$HOME/.local/share/vmrunner/<name>``, else ``/tmp/<user>/vmrunner-data/<name>``;
- runtimeDir: the first path in ``$RUNTIME_DIRECTORY`` (``RuntimeDirectory=``), else
  ``$XDG_RUNTIME_DIR/vmrunner/<name>``, else (root) ``/run/vmrunner/<name>``, else
  ``/run/<user>/vmrunner/<name>`` if ``/run/<user>`` exists or can be created and is
  writable, else ``/tmp/<user>/vmrunner/<name>``.

Directories the runner creates get mode 0700; an existing dataDir or runtimeDir must be the
runner's own, holding nothing of another user's, and is made owner-only
(:func:`vmrunner.vmtypes.private.verify_private_dir`: this also refuses a ``/tmp/<user>``
fallback another user created first). Files written here are 0600,
never through a planted link (:func:`vmrunner.vmtypes.private.write_private`).
"""

from __future__ import annotations

import getpass
import os
import shutil
import uuid as uuidlib
from collections.abc import Mapping
from pathlib import Path
from uuid import UUID

import msgspec

from vmrunner.config.model import RunnerConfig
from vmrunner.vmtypes.errors import StateError, state_error
from vmrunner.vmtypes.firmware import FirmwareFiles
from vmrunner.vmtypes.private import tighten, verify_private_dir, write_private, write_private_bytes

SOCKET_PATH_MAX = 107
"""Longest usable AF_UNIX socket path on Linux (108 bytes including the NUL)."""


class VmPaths(msgspec.Struct, frozen=True):
    """The directories of one VM and the well-known files in them."""

    data_dir: Path
    runtime_dir: Path

    @property
    def uuid_file(self) -> Path:
        """``dataDir/uuid.txt``: the generated uuid."""
        return self.data_dir / "uuid.txt"

    @property
    def firmware_vars(self) -> Path:
        """``dataDir/fw-vars.fd``: the VM's own UEFI variable store."""
        return self.data_dir / "fw-vars.fd"

    @property
    def template_copy(self) -> Path:
        """``dataDir/VM.yaml.mako``: the template saved on first start."""
        return self.data_dir / "VM.yaml.mako"

    @property
    def tpm_state_dir(self) -> Path:
        """swtpm's state directory (the dataDir itself)."""
        return self.data_dir

    @property
    def monitor_socket(self) -> Path:
        """QMP socket."""
        return self.runtime_dir / "monitor.sock"

    @property
    def swtpm_socket(self) -> Path:
        """swtpm's control socket."""
        return self.runtime_dir / "swtpm-sock"

    @property
    def console_socket(self) -> Path:
        """The serial console socket the runner serves (``vmrunner console``)."""
        return self.runtime_dir / "console.sock"

    @property
    def serial_socket(self) -> Path:
        """QEMU's socket of the first serial port; only the runner connects to it."""
        return self.runtime_dir / "serial.sock"

    @property
    def guest_agent_socket(self) -> Path:
        """qemu-guest-agent's virtio-serial channel socket."""
        return self.runtime_dir / "org.qemu.guest_agent.0"

    @property
    def vmop_agent_socket(self) -> Path:
        """The vmop agent's virtio-serial channel socket (auto-login)."""
        return self.runtime_dir / "org.jdrupes.vmop_agent.0"

    @property
    def cloud_init_image(self) -> Path:
        """The cloud-init NoCloud image."""
        return self.runtime_dir / "cloud-init.img"

    @property
    def spice_ticket(self) -> Path:
        """The deprecated ``spice.ticket``, written for QEMU to read (mode 0600)."""
        return self.runtime_dir / "spice-ticket"

    @property
    def sockets(self) -> tuple[Path, ...]:
        """All socket paths (for length checks and clean-up)."""
        return (self.monitor_socket, self.swtpm_socket, self.console_socket,
                self.serial_socket, self.guest_agent_socket, self.vmop_agent_socket)


def user_name() -> str:
    """The effective user's name (its uid as text when it has none)."""
    return _user()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _usable_dir(path: Path) -> bool:
    """Whether ``path`` is a writable directory or could be created as one."""
    if path.is_dir():
        return os.access(path, os.W_OK | os.X_OK)
    return not path.exists() and os.access(path.parent, os.W_OK | os.X_OK)


def _systemd_dir(env: Mapping[str, str], key: str) -> Path | None:
    """The first of the colon-separated paths in ``env[key]``, or None."""
    first = env.get(key, "").split(":")[0]
    return Path(first) if first else None


def _is_root(uid: int | None) -> bool:
    return (os.geteuid() if uid is None else uid) == 0


def default_data_dir(name: str, env: Mapping[str, str], uid: int | None = None) -> Path:
    """The default dataDir of VM ``name`` (``uid``: the effective uid, for tests)."""
    systemd = _systemd_dir(env, "STATE_DIRECTORY")
    if systemd is not None:
        return systemd
    if env.get("XDG_DATA_HOME"):
        return Path(env["XDG_DATA_HOME"]) / "vmrunner" / name
    if _is_root(uid):
        return Path("/var/lib/vmrunner") / name
    if env.get("HOME"):
        return Path(env["HOME"]) / ".local" / "share" / "vmrunner" / name
    return Path("/tmp") / _user() / "vmrunner-data" / name


def default_runtime_dir(name: str, env: Mapping[str, str], uid: int | None = None) -> Path:
    """The default runtimeDir of VM ``name`` (``uid``: the effective uid, for tests)."""
    systemd = _systemd_dir(env, "RUNTIME_DIRECTORY")
    if systemd is not None:
        return systemd
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "vmrunner" / name
    if _is_root(uid):
        return Path("/run/vmrunner") / name
    run_user = Path("/run") / _user()
    if _usable_dir(run_user):
        return run_user / "vmrunner" / name
    return Path("/tmp") / _user() / "vmrunner" / name


def resolve_paths(config: RunnerConfig, env: Mapping[str, str] | None = None) -> VmPaths:
    """The VM's directories (configured or default); creates nothing."""
    env = os.environ if env is None else env
    name = config.vm.name
    return VmPaths(
        data_dir=config.data_dir or default_data_dir(name, env),
        runtime_dir=config.runtime_dir or default_runtime_dir(name, env),
    )


def check_paths(config: RunnerConfig, paths: VmPaths) -> list[StateError]:
    """Problems with the paths themselves: socket paths too long, commas where swtpm needs them."""
    problems = []
    longest = max(paths.sockets, key=lambda p: len(os.fsencode(p)))
    if len(os.fsencode(longest)) > SOCKET_PATH_MAX:
        problems.append(StateError(
            "/Runner/runtimeDir",
            f"too long for unix sockets: {longest} has {len(os.fsencode(longest))} bytes "
            f"(at most {SOCKET_PATH_MAX})",
        ))
    if config.vm.use_tpm:
        for key, path in (("/Runner/dataDir", paths.data_dir),
                          ("/Runner/runtimeDir", paths.runtime_dir)):
            if "," in str(path):
                problems.append(StateError(key, f"{path} contains ',', which swtpm cannot handle"))
    return problems


def write_private_file(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8), readable by the owner only (0600) from the
    moment it exists; :class:`StateError` (``/Runner/runtimeDir``) when that fails."""
    write_private_bytes(path, "/Runner/runtimeDir", text.encode())


def make_private_dir(path: Path, key: str) -> None:
    """Create ``path`` and missing parents (the directories created here get mode 0700),
    then verify that it is private (:func:`~vmrunner.vmtypes.private.verify_private_dir`)."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    try:
        for directory in reversed(missing):
            directory.mkdir(mode=0o700)
            directory.chmod(0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise state_error(key, f"cannot create {path}: {exc.strerror or exc}", exc) from None
    if not path.is_dir():
        raise StateError(key, f"{path} is not a directory")
    verify_private_dir(path, key)
    if not os.access(path, os.W_OK | os.X_OK):
        raise StateError(key, f"{path} is not writable")


def ensure_dirs(paths: VmPaths) -> None:
    """Create dataDir and runtimeDir (0700) if they are missing."""
    make_private_dir(paths.data_dir, "/Runner/dataDir")
    make_private_dir(paths.runtime_dir, "/Runner/runtimeDir")


def read_uuid(config: RunnerConfig, paths: VmPaths) -> UUID | None:
    """The configured uuid, else the stored one, else ``None``; creates nothing."""
    if config.vm.uuid is not None:
        return config.vm.uuid
    try:
        first = paths.uuid_file.read_text(encoding="utf-8").splitlines()[0].strip()
        return UUID(first)
    except (OSError, IndexError, ValueError):
        return None


def ensure_uuid(config: RunnerConfig, paths: VmPaths) -> UUID:
    """The VM's uuid; a new random one is generated once and stored in ``dataDir/uuid.txt``
    (0600)."""
    found = read_uuid(config, paths)
    if found is not None:
        tighten(paths.uuid_file)
        return found
    new = uuidlib.uuid4()
    write_private_bytes(paths.uuid_file, "/Runner/dataDir", f"{new}\n".encode())
    return new


def ensure_firmware_vars(firmware: FirmwareFiles | None, paths: VmPaths) -> Path | None:
    """The VM's UEFI variable store, copied once from the firmware's template.

    An existing store is kept (it holds the guest's boot entries), except that a store whose
    size does not match the template (the firmware kind changed between 2 MiB and 4 MiB) is an
    error: QEMU would refuse it, and deleting it is the user's decision.
    """
    if firmware is None:
        return None
    target = paths.firmware_vars
    if target.exists():
        if target.stat().st_size != firmware.vars_template.stat().st_size:
            raise StateError(
                "/Runner/vm/firmware",
                f"{target} does not fit {firmware.code} (size differs from "
                f"{firmware.vars_template}); delete it to start with fresh UEFI variables",
            )
        return target
    try:
        with open(firmware.vars_template, "rb") as source:
            write_private(target, "/Runner/dataDir",
                          lambda out: shutil.copyfileobj(source, out))
    except OSError as exc:
        raise state_error(
            "/Runner/dataDir", f"cannot copy {firmware.vars_template} to {target}: {exc.strerror}",
            exc) from None
    return target
