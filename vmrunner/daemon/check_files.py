"""The host files a configuration names must exist before anything is started.

:func:`file_problems` lists, by key path, every file the start would open and cannot:
disk images and block devices (``vm.drives``), a CD image unless the tray is empty, the
kernel and initrd, the SPICE ``passwordFile``, the API's ``tokenFile`` (when ``listen`` is
set) and the ``/Runner/Kubernetes`` node's ``kubeconfig``. ``vmrunner check`` and
:class:`~vmrunner.daemon.builder.RunnerBuilder` report them as errors, so a missing disk
ends with ``/Runner/vm/drives/0/file: /x.img does not exist``
(exit 2) instead of QEMU's message (exit 5). Firmware is looked up by the start plan
(``/Runner/vm/firmware``). Checking a file says nothing about the moment of the start; this
only catches the common mistake early.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from vmrunner.config.model import RunnerConfig

Kind = Literal["file", "block", "file or block"]

API_NODE = "/Runner/Api"


def _problem(key: str, path: Path, kind: Kind) -> str | None:
    """``None`` if ``path`` is usable as ``kind``, else ``key: <what is wrong>``."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return f"{key}: {path} does not exist"
    except OSError as exc:
        return f"{key}: {path}: {exc.strerror or exc}"
    if kind == "block" and not stat.S_ISBLK(mode):
        return f"{key}: {path} is not a block device"
    if kind == "file" and not stat.S_ISREG(mode):
        return f"{key}: {path} is not a regular file"
    if kind == "file or block" and not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
        return f"{key}: {path} is neither a regular file nor a block device"
    return None


def _wanted(config: RunnerConfig, nodes: Mapping[str, Any]) -> Iterator[tuple[str, Path, Kind]]:
    """(key path, file, what it must be) for every host file the start opens."""
    vm = config.vm
    for index, drive in enumerate(vm.drives):
        key = f"/Runner/vm/drives/{index}"
        if drive.file is not None:
            yield f"{key}/file", drive.file, "file or block"
        if drive.device is not None:
            yield f"{key}/device", drive.device, "block"
        if drive.resource is not None:
            kind: Kind = "block" if drive.resource.parts[1:2] == ("dev",) else "file or block"
            yield f"{key}/resource", drive.resource, kind
    if vm.kernel is not None:
        yield "/Runner/vm/kernel/image", vm.kernel.image, "file"
        if vm.kernel.initrd is not None:
            yield "/Runner/vm/kernel/initrd", vm.kernel.initrd, "file"
    spice = vm.display.spice if vm.display is not None else None
    if spice is not None and spice.password_file is not None:
        yield "/Runner/vm/display/spice/passwordFile", spice.password_file, "file"
    token = _api_token_file(nodes.get(API_NODE))
    if token is not None:
        yield f"{API_NODE}/tokenFile", token, "file"
    kubeconfig = _kubeconfig(nodes, config.config_dir or Path.cwd())
    if kubeconfig is not None:
        yield "/Runner/Kubernetes/kubeconfig", kubeconfig, "file"


def _kubeconfig(nodes: Mapping[str, Any], base_dir: Path) -> Path | None:
    """The kubeconfig the Kubernetes node names (relative: to the configuration's directory)
    if the node is valid and enabled."""
    from vmrunner.kube.settings import KUBE_NODE, KubeSettingsError, parse_node

    section = nodes.get(KUBE_NODE)
    if not isinstance(section, Mapping):
        return None
    try:
        node = parse_node(section)
    except KubeSettingsError:
        return None
    if not node.enabled or node.kubeconfig is None:
        return None
    return node.kubeconfig if node.kubeconfig.is_absolute() else base_dir / node.kubeconfig


def _api_token_file(section: object) -> Path | None:
    """The token file the API server reads, if its node is valid and listens on TCP (an
    invalid node is reported by the node check)."""
    from pydantic import ValidationError

    from vmrunner.api.config import ApiConfig

    if not isinstance(section, Mapping):
        return None
    try:
        api = ApiConfig.model_validate(dict(section))
    except ValidationError:
        return None
    return api.token_file if api.enabled and api.listen is not None else None


def file_problems(config: RunnerConfig, nodes: Mapping[str, Any]) -> list[str]:
    """One message per host file that the configuration names and that is missing or of the
    wrong kind (``/dev/...`` drive resources and ``device`` must be block devices)."""
    found = (_problem(key, path, kind) for key, path, kind in _wanted(config, nodes))
    return [problem for problem in found if problem is not None]


def config_file_problems(config_file: Path, config: RunnerConfig) -> list[str]:
    """:func:`file_problems` for ``config`` read from ``config_file`` (re-read for the other
    nodes; a file that cannot be read again is reported by the node check)."""
    from vmrunner.core.config import ConfigError
    from vmrunner.core.config.loader import parse, read_bytes

    try:
        nodes = parse(config_file, read_bytes(config_file))
    except ConfigError:
        nodes = {}
    return file_problems(config, nodes)
