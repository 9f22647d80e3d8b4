"""From a validated configuration to rendered command lines, with or without side effects.

:func:`plan_start` with ``create=False`` (``vmrunner check``/``render``) creates and copies
nothing: a uuid not generated yet renders as :data:`PLACEHOLDER_UUID`. With ``create=True`` (a
real start) it makes the directories (0700), stores the uuid, copies the UEFI variables and
saves the template into dataDir. The cloud-init image is written separately by the start
sequence (:func:`vmrunner.vmtypes.cloudinit.write_cloud_init_image`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from uuid import UUID

import msgspec

from vmrunner.config.model import RunnerConfig
from vmrunner.vmtypes.errors import FirmwareNotFoundError, StateError, VmTypeError
from vmrunner.vmtypes.firmware import assumed_firmware, find_firmware
from vmrunner.vmtypes.render import RenderedVm, RenderInputs, render_vm, resolve_accelerator
from vmrunner.vmtypes.search import current_template, install_template, template_dirs
from vmrunner.vmtypes.state import (
    check_paths,
    ensure_dirs,
    ensure_firmware_vars,
    ensure_uuid,
    read_uuid,
    resolve_paths,
)

PLACEHOLDER_UUID = UUID(int=0)
"""Shown by a dry run when the VM has no uuid yet (one is generated on first start)."""


class PathProblems(VmTypeError):
    """Several path problems at once."""

    def __init__(self, errors: list[StateError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


class StartPlan(msgspec.Struct, frozen=True):
    """What a start needs: the render inputs, the template to render and its search path."""

    inputs: RenderInputs
    template: Path
    dirs: list[Path]
    notes: list[str] = msgspec.field(default_factory=list)

    def render(self, *, resolve_executables: bool = True) -> RenderedVm:
        """Render the template (see :func:`vmrunner.vmtypes.render.render_vm`)."""
        return render_vm(self.template, self.inputs, self.dirs,
                         resolve_executables=resolve_executables)


def plan_start(
    config: RunnerConfig, *, create: bool = False, env: Mapping[str, str] | None = None,
    host_files: bool = True,
) -> StartPlan:
    """Resolve directories, uuid, firmware, accelerator and template for ``config``.

    ``host_files=False`` (``check --no-host-files`` and ``render``: a configuration for
    another host; never with ``create``): firmware missing here is assumed at its first
    candidate path, with a note.

    Raises :class:`VmTypeError` subclasses (:class:`PathProblems`, :class:`StateError`,
    :class:`~vmrunner.vmtypes.errors.FirmwareNotFoundError`,
    :class:`~vmrunner.vmtypes.errors.TemplateError`).
    """
    paths = resolve_paths(config, env)
    problems = check_paths(config, paths)
    if problems:
        raise PathProblems(problems)
    notes = []
    try:
        firmware = find_firmware(config.vm.firmware)
    except FirmwareNotFoundError:
        if host_files or create:
            raise
        firmware = assumed_firmware(config.vm.firmware)
        assert firmware is not None
        notes.append(f"firmware {config.vm.firmware!r} is not installed here: rendered with "
                     f"{firmware.code}")
    if create:
        ensure_dirs(paths)
        uuid = ensure_uuid(config, paths)
        ensure_firmware_vars(firmware, paths)
        template = install_template(config, paths)
    else:
        found = read_uuid(config, paths)
        if found is None:
            notes.append(f"no uuid yet: one is generated on first start ({paths.uuid_file})")
        uuid = found or PLACEHOLDER_UUID
        template = current_template(config, paths)
    inputs = RenderInputs(
        config=config,
        paths=paths,
        uuid=uuid,
        firmware=firmware,
        accelerator=resolve_accelerator(config.vm.accelerator),
        cloud_init_image=paths.cloud_init_image if config.cloud_init is not None else None,
    )
    return StartPlan(inputs, template, template_dirs(config), notes)
