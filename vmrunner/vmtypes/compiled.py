"""Compiled Mako templates, cached by content (like ``__pycache__``, for VM types).

Compiling the standard VM type (Mako's lexer and code generator, then Python's compiler)
costs ~10 ms of every start. The result depends only on the template's text, the compile
options, Mako's version and the Python version, so it is kept under
``$XDG_CACHE_HOME/vmrunner/templates`` (default ``~/.cache/...``), one file per key
(sha-256 of those inputs), holding the generated Python source and its marshalled code.

The cache is used only when its directory belongs to this user and no one else may write to
it (a cached file is code that will run); without a usable cache, templates are compiled
each time. Writing is atomic (temporary file, then rename); a damaged file is recompiled.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import marshal
import os
import stat
import tempfile
import types
from pathlib import Path
from typing import Any

FORMAT = b"vmrunner-mako-1"


def cache_dir() -> Path | None:
    """The cache directory (created 0700), or None when it cannot be used safely."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # unset, empty or relative: ignored, as the XDG spec says
        home = os.environ.get("HOME", "")
        base = os.path.join(home, ".cache") if os.path.isabs(home) else ""
    if not base:
        return None
    directory = Path(base, "vmrunner", "templates")
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
    except OSError:
        return None
    if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    return directory


def cache_key(source: str, options: dict[str, Any]) -> str:
    """What the compiled module depends on, hashed."""
    import mako

    digest = hashlib.sha256(FORMAT)
    for part in (mako.__version__, importlib.util.MAGIC_NUMBER.hex(), repr(sorted(options.items())),
                 source):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()


def _load(path: Path) -> tuple[str, types.CodeType] | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        module_source, code = marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        return None
    if not isinstance(module_source, str) or not isinstance(code, types.CodeType):
        return None
    return module_source, code


def _store(path: Path, module_source: str, code: types.CodeType) -> None:
    with contextlib.suppress(OSError):
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(marshal.dumps((module_source, code)))
            os.replace(temporary, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def compile_template(template: Path, source: str, lookup: Any, options: dict[str, Any],
                     *, cache: Path | None) -> Any:
    """A ``mako.template.Template`` for ``source`` (read from ``template``).

    :raise mako.exceptions.SyntaxException, CompileException: the template is malformed.
    """
    from mako.template import ModuleTemplate, Template

    key = cache_key(source, options)
    name = f"vmrunner_template_{key[:16]}"
    entry = cache / f"{key}.marshal" if cache is not None else None
    cached = _load(entry) if entry is not None else None
    if cached is None:
        compiled = Template(text=source, filename=str(template), uri=template.name,
                            lookup=lookup, **options)
        if entry is not None:
            module_source = str(compiled.code)
            _store(entry, module_source, compile(module_source, name, "exec"))
        return compiled
    module_source, code = cached
    module = types.ModuleType(name)
    exec(code, module.__dict__)  # Mako's generated module, from our own cache
    return ModuleTemplate(module, template_filename=str(template), module_source=module_source,
                          template_source=source, lookup=lookup)
