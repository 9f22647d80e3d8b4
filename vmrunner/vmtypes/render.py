"""Render a VM type template into the command lines of QEMU and swtpm.

Mako (``strict_undefined``) → YAML text → parse → restore the escaped values → check the
structure with pydantic → argv lists. Every problem becomes a :class:`TemplateError` that names
the template file and line, and the configuration key when the template needed a missing one.
Mako is imported only here, and only when rendering.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vmrunner.config.model import DriveConfig, RunnerConfig, VmConfig
from vmrunner.config.sizes import GIB, MIB
from vmrunner.config.spice import (
    DISPLAY_PASSWORD,
    spice_address,
    spice_password_source,
)
from vmrunner.vmtypes.errors import TemplateError, TemplateKeyError
from vmrunner.vmtypes.escape import Substitutions, Unset, arg, isset, nocomma, opt
from vmrunner.vmtypes.firmware import FirmwareFiles
from vmrunner.vmtypes.state import VmPaths
from vmrunner.vmtypes.view import wrap

DEFAULT_FILTER = "vmr_value"
_YAML_LOADER: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's loader when PyYAML has it (about ten times faster than the pure-Python one)."""


class CommandDefinition(BaseModel):
    """One program as the template describes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    executable: list[str] = Field(min_length=1)
    """Candidate paths (or names looked up in PATH); the first executable one is used."""
    arguments: list[Any] = Field(default_factory=list)
    """Arguments; nested lists are flattened depth-first."""
    environment: dict[str, str] = Field(default_factory=dict)
    """Extra environment variables."""


class TemplateOutput(BaseModel):
    """The document a VM type template must produce."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    qemu: CommandDefinition
    swtpm: CommandDefinition | None = None


class Command(msgspec.Struct, frozen=True):
    """A resolved program invocation."""

    executable: str
    arguments: tuple[str, ...]
    environment: Mapping[str, str] = msgspec.field(default_factory=dict)

    @property
    def argv(self) -> list[str]:
        """``[executable, *arguments]``."""
        return [self.executable, *self.arguments]


class RenderedVm(msgspec.Struct, frozen=True):
    """What a start would run: swtpm (if the VM has a TPM) and QEMU."""

    template: Path
    qemu: Command
    swtpm: Command | None


class RenderInputs(msgspec.Struct, frozen=True):
    """Everything a template may use besides the configuration itself."""

    config: RunnerConfig
    paths: VmPaths
    uuid: UUID
    firmware: FirmwareFiles | None
    accelerator: str
    """The resolved accelerator (``auto`` already decided)."""
    cloud_init_image: Path | None = None


def kvm_usable() -> bool:
    """Whether KVM can run guests here: a real KVM module (kvm_intel/kvm_amd) and /dev/kvm.

    ``/dev/kvm`` alone is not enough: other hypervisor modules (e.g. kvm_pvm) provide it too
    and cannot run stock kernels.
    """
    real = any(os.path.isdir(f"/sys/module/{m}") for m in ("kvm_intel", "kvm_amd"))
    return real and os.access("/dev/kvm", os.R_OK | os.W_OK)


def resolve_accelerator(configured: str) -> str:
    """``auto`` → ``kvm`` if :func:`kvm_usable` else ``tcg``; other values unchanged."""
    if configured == "auto":
        return "kvm" if kvm_usable() else "tcg"
    return configured


def resolve_drives(vm: VmConfig) -> VmConfig:
    """``vm`` with each raw drive's ``resource`` turned into ``file`` (a regular file) or
    ``device`` (anything else), as decided now."""
    drives = []
    for drive in vm.drives:
        if drive.resource is not None:
            key = "file" if drive.resource.is_file() else "device"
            drive = drive.model_copy(update={key: drive.resource, "resource": None})
        drives.append(drive)
    return vm.model_copy(update={"drives": drives})


def resolve_spice_address(vm: VmConfig, address: str | None) -> VmConfig:
    """``vm`` with SPICE's ``address`` set to where it really listens (see
    :func:`vmrunner.config.spice.spice_address`), so any template renders it."""
    display = vm.display
    if display is None or display.spice is None or display.spice.address == address:
        return vm
    spice = display.spice.model_copy(update={"address": address})
    return vm.model_copy(update={"display": display.model_copy(update={"spice": spice})})


def ram_size_arg(size: int) -> str:
    """QEMU's ``-m`` for ``size`` bytes: whole MiB as a plain number, else bytes with ``B``
    (QEMU rounds that up to a multiple of 8 KiB itself)."""
    return str(size // MIB) if size % MIB == 0 else f"{size}B"


def spice_password_file(config: RunnerConfig, paths: VmPaths) -> Path | None:
    """The file QEMU reads the SPICE password from at start (see
    :func:`spice_password_source`); ``None``: no password."""
    source = spice_password_source(config)
    spice = config.vm.display.spice if config.vm.display is not None else None
    if source is None or spice is None:
        return None
    if source == "passwordFile":
        return spice.password_file
    if source == "display-password":
        assert config.config_dir is not None
        return config.config_dir / DISPLAY_PASSWORD
    return paths.spice_ticket


def _optional(value: object, name: str) -> object:
    return Unset(name) if value is None else value


def template_variables(inputs: RenderInputs) -> dict[str, Any]:
    """The names a template can use (see docs/guide/templates.md)."""
    config, paths, vm = inputs.config, inputs.paths, inputs.config.vm
    accelerator = inputs.accelerator
    cpu_model = vm.cpu_model or ("host" if accelerator == "kvm" else "max")
    if cpu_model == "host" and accelerator != "kvm":
        cpu_model = "max"  # QEMU: "CPU model 'host' requires KVM or HVF"
    firmware = inputs.firmware
    resolved_vm = resolve_spice_address(resolve_drives(vm), spice_address(config))
    drives: list[DriveConfig] = resolved_vm.drives
    return {
        "runner": wrap(config.model_copy(update={"vm": resolved_vm}), "/Runner"),
        "vm": wrap(resolved_vm, "/Runner/vm"),
        "dataDir": paths.data_dir,
        "runtimeDir": paths.runtime_dir,
        "uuid": inputs.uuid,
        "accelerator": accelerator,
        "cpuModel": cpu_model,
        "currentCpus": vm.effective_current_cpus,
        "currentRam": vm.effective_current_ram,
        "firmwareCode": _optional(firmware and firmware.code, "firmwareCode"),
        "firmwareVars": _optional(firmware and paths.firmware_vars, "firmwareVars"),
        "secureBoot": bool(firmware and firmware.secure),
        "monitorSocket": paths.monitor_socket,
        "swtpmSocket": paths.swtpm_socket,
        "tpmStateDir": paths.tpm_state_dir,
        "consoleSocket": paths.console_socket,
        "serialSocket": paths.serial_socket,
        "guestAgentSocket": paths.guest_agent_socket,
        "vmopAgentSocket": paths.vmop_agent_socket,
        "cloudInitImage": _optional(inputs.cloud_init_image, "cloudInitImage"),
        "ramSize": ram_size_arg(vm.maximum_ram),
        "spicePasswordFile": _optional(spice_password_file(config, paths),
                                       "spicePasswordFile"),
        "disks": [d for d in wrap(drives, "/Runner/vm/drives") if d.type == "raw"],
        "cdroms": [d for d in wrap(drives, "/Runner/vm/drives") if d.type == "ide-cd"],
        "opt": opt,
        "arg": arg,
        "nocomma": nocomma,
        "isset": isset,
        "MiB": MIB,
        "GiB": GIB,
    }


def _location(template: Path) -> int | None:
    """The template line of the exception being handled (from Mako's traceback)."""
    from mako.exceptions import RichTraceback

    line = None
    for record in RichTraceback().records:
        if record[4] is not None:
            line = record[5]
    return line


def _first_use(template: Path, error: NameError) -> int | None:
    """The first template line using the undefined name (strict_undefined fails up front)."""
    match = re.search(r"'(\w+)'", str(error))
    if match is None:
        return None
    word = re.compile(rf"\b{match[1]}\b")
    try:
        lines = template.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    return next((n for n, line in enumerate(lines, 1)
                 if word.search(line) and not line.lstrip().startswith("##")), None)


def render_text(template: Path, variables: Mapping[str, Any], dirs: Sequence[Path]) -> str:
    """Mako-render ``template`` with ``variables`` (the default filter must be among them)."""
    from mako import exceptions
    from mako.lookup import TemplateLookup

    from vmrunner.vmtypes.compiled import cache_dir, compile_template

    options: dict[str, Any] = {
        "strict_undefined": True,
        "default_filters": [f"context['{DEFAULT_FILTER}']"],
        "input_encoding": "utf-8",
    }
    lookup = TemplateLookup(directories=[str(d) for d in dirs], **options)
    try:
        source = template.read_text(encoding="utf-8")
        compiled = compile_template(template, source, lookup, options, cache=cache_dir())
    except (exceptions.SyntaxException, exceptions.CompileException) as exc:
        raise TemplateError(f"syntax error: {exc.args[0] if exc.args else exc}",
                            template=template, line=getattr(exc, "lineno", None)) from None
    except UnicodeDecodeError as exc:
        raise TemplateError(f"cannot read: not UTF-8 ({exc.reason})", template=template) from None
    except OSError as exc:
        raise TemplateError(f"cannot read: {exc.strerror}", template=template) from None
    try:
        return str(compiled.render(**variables))
    except TemplateKeyError as exc:
        raise TemplateKeyError(exc.message, template=template, line=_location(template),
                               key=exc.key) from None
    except TemplateError as exc:
        raise TemplateError(exc.message, template=template, line=_location(template)) from None
    except NameError as exc:
        raise TemplateError(f"unknown name: {exc}", template=template,
                            line=_first_use(template, exc) or _location(template)) from None
    except Exception as exc:
        raise TemplateError(f"{type(exc).__name__}: {exc}", template=template,
                            line=_location(template)) from None


def _flatten(items: list[Any], where: str) -> list[str]:
    result: list[str] = []
    for item in items:
        if isinstance(item, list):
            result += _flatten(item, where)
        elif isinstance(item, str):
            result.append(item)
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            result.append(str(item))
        else:
            raise TemplateError(
                f"{where}: {item!r} is not an argument (a YAML mapping, bool or null; "
                "quote the argument)"
            )
    return result


def _find_executable(candidates: list[str], name: str) -> str:
    for candidate in candidates:
        if "/" in candidate:
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
        elif (found := shutil.which(candidate)) is not None:
            return found
    raise TemplateError(f"{name}: no executable found (candidates: {', '.join(candidates)})")


def _command(definition: CommandDefinition, name: str, resolve: bool) -> Command:
    executable = (_find_executable(definition.executable, name) if resolve
                  else definition.executable[0])
    return Command(executable, tuple(_flatten(definition.arguments, f"{name}.arguments")),
                   dict(definition.environment))


def render_vm(
    template: Path,
    inputs: RenderInputs,
    dirs: Sequence[Path] = (),
    *,
    resolve_executables: bool = True,
) -> RenderedVm:
    """Render ``template`` for ``inputs``; ``dirs`` is the search path for ``<%include>``."""
    substitutions = Substitutions()
    variables = template_variables(inputs)
    variables[DEFAULT_FILTER] = substitutions.filter
    text = render_text(template, variables, dirs)
    try:
        document = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (rendered line {mark.line + 1})" if mark is not None else ""
        raise TemplateError(f"output is not valid YAML{where}: {getattr(exc, 'problem', exc)}",
                            template=template) from None
    try:
        output = TemplateOutput.model_validate(substitutions.restore(document))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"]) or "output"
        raise TemplateError(f"output {loc}: {first['msg']}", template=template) from None
    try:
        qemu = _command(output.qemu, "qemu", resolve_executables)
        swtpm = (_command(output.swtpm, "swtpm", resolve_executables)
                 if output.swtpm is not None else None)
    except TemplateError as exc:
        raise TemplateError(exc.message, template=template) from None
    return RenderedVm(template=template, qemu=qemu, swtpm=swtpm)
