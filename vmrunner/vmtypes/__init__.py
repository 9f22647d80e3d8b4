"""VM types: from a validated configuration to the swtpm and QEMU command lines.

Pure library code (no event bus). Mako and pycdlib are imported only when rendering or when
writing a cloud-init image. Typical use by the start sequence::

    plan = plan_start(config, create=True)   # dirs (0700), uuid, UEFI vars, template copy
    if config.cloud_init is not None:
        image = plan.inputs.paths.cloud_init_image
        write_cloud_init_image(config.cloud_init, config.vm.name, image)
    rendered = plan.render()                 # rendered.swtpm / rendered.qemu: Command(argv=...)
"""

from __future__ import annotations

from vmrunner.vmtypes.cloudinit import write_cloud_init_image
from vmrunner.vmtypes.errors import (
    FirmwareNotFoundError,
    StateError,
    TemplateError,
    TemplateKeyError,
    VmTypeError,
)
from vmrunner.vmtypes.prepare import PLACEHOLDER_UUID, PathProblems, StartPlan, plan_start
from vmrunner.vmtypes.render import Command, RenderedVm, RenderInputs, kvm_usable, render_vm
from vmrunner.vmtypes.state import VmPaths, resolve_paths

__all__ = [
    "PLACEHOLDER_UUID",
    "Command",
    "FirmwareNotFoundError",
    "PathProblems",
    "RenderInputs",
    "RenderedVm",
    "StartPlan",
    "StateError",
    "TemplateError",
    "TemplateKeyError",
    "VmPaths",
    "VmTypeError",
    "kvm_usable",
    "plan_start",
    "render_vm",
    "resolve_paths",
    "write_cloud_init_image",
]
