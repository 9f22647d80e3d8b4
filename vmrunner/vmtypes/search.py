"""Finding a VM type template, and the per-VM copy saved in dataDir.

Search path: the configured ``templateDirs``, then ``/opt/vmrunner/templates``, then the
templates shipped with vmrunner (``vmrunner/templates`` in an installed wheel, the repository's
top-level ``templates/`` in a source checkout). A template name is relative and may not leave
its directory (no absolute paths, no ``..``, no symlink pointing outside).

On first start the template is copied to ``dataDir/VM.yaml.mako`` (its name is recorded in
``VM.yaml.mako.source``; both 0600, written as :mod:`vmrunner.vmtypes.private` describes);
later starts render that copy, so upgrading vmrunner does not change an
existing VM, unless ``updateTemplate`` is set or the configured name changed.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from vmrunner.config.model import RunnerConfig
from vmrunner.vmtypes.errors import StateError, TemplateError
from vmrunner.vmtypes.private import tighten, write_private, write_private_bytes
from vmrunner.vmtypes.state import VmPaths

SITE_TEMPLATE_DIR = Path("/opt/vmrunner/templates")
KEY = "/Runner/template"


def builtin_template_dirs() -> list[Path]:
    """The directories holding vmrunner's own templates (installed first, then source tree)."""
    package = Path(__file__).resolve().parent.parent
    return [d for d in (package / "templates", package.parent / "templates") if d.is_dir()]


def template_dirs(config: RunnerConfig) -> list[Path]:
    """The search path for ``config``, in order."""
    return [*config.template_dirs, SITE_TEMPLATE_DIR, *builtin_template_dirs()]


def find_template(name: str, dirs: Sequence[Path]) -> Path:
    """The first ``dir/name`` that is a file inside its directory, else :class:`TemplateError`."""
    relative = PurePosixPath(name)
    if not name or relative.is_absolute() or ".." in relative.parts:
        raise TemplateError(
            f"{KEY}: '{name}' is not a template name (no absolute path, no '..')", key=KEY)
    for directory in dirs:
        candidate = directory / relative
        if not candidate.is_file():
            continue
        root = directory.resolve()
        if not candidate.resolve().is_relative_to(root):
            raise TemplateError(f"{KEY}: {candidate} points outside {directory}", key=KEY)
        return candidate
    where = ", ".join(str(d) for d in dirs)
    raise TemplateError(f"{KEY}: '{name}' not found in {where}", key=KEY)


def _source_record(paths: VmPaths) -> Path:
    return paths.template_copy.with_name(paths.template_copy.name + ".source")


def _copy_is_current(config: RunnerConfig, paths: VmPaths) -> bool:
    if config.update_template or not paths.template_copy.is_file():
        return False
    try:
        return _source_record(paths).read_text(encoding="utf-8").strip() == config.template
    except OSError:
        return False


def current_template(config: RunnerConfig, paths: VmPaths) -> Path:
    """The template a start would render now; copies nothing (for ``check`` and ``render``)."""
    if _copy_is_current(config, paths):
        return paths.template_copy
    return find_template(config.template, template_dirs(config))


def install_template(config: RunnerConfig, paths: VmPaths) -> Path:
    """The template to render for a start, saving it into dataDir first when needed."""
    if _copy_is_current(config, paths):
        tighten(paths.template_copy)
        tighten(_source_record(paths))
        return paths.template_copy
    source = find_template(config.template, template_dirs(config))
    try:
        with open(source, "rb") as template:
            write_private(paths.template_copy, "/Runner/dataDir",
                          lambda out: shutil.copyfileobj(template, out))
    except OSError as exc:
        raise StateError(
            "/Runner/dataDir", f"cannot save the template in {paths.template_copy}: {exc.strerror}"
        ) from None
    write_private_bytes(_source_record(paths), "/Runner/dataDir",
                        (config.template + "\n").encode())
    return paths.template_copy
