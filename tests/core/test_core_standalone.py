"""vmrunner.core stands alone: it imports nothing else of vmrunner, and no core class uses
another class's ``_private`` members (shared plumbing lives in ``vmrunner.core._internal``).

The copy test runs the core from a copy next to an empty ``vmrunner`` package, in a
subprocess that cannot see the real package, so any import of ``vmrunner.<not core>`` fails.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import vmrunner.core

CORE = Path(vmrunner.core.__file__).parent

_SCRIPT = textwrap.dedent("""
    import asyncio, importlib, json, pkgutil, sys
    import vmrunner, vmrunner.core, vmrunner.core.config
    from vmrunner.core import Component, Event, Stop, handler, run

    names = [m.name for m in pkgutil.walk_packages(vmrunner.core.__path__, "vmrunner.core.")]
    for name in names:
        importlib.import_module(name)

    class Ping(Event[None], frozen=True, kw_only=True):
        n: int

    class Root(Component):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[int] = []

        @handler
        def on_ping(self, event: Ping) -> None:
            self.seen.append(event.n)
            self.fire(Stop())

    async def main() -> tuple[int, list[int]]:
        root = Root()
        root.fire(Ping(n=7))  # buffered until Start, then handled on the main pipeline
        code = await run(root)
        return code, root.seen

    code, seen = asyncio.run(main())
    print(json.dumps({"vmrunner": vmrunner.__file__, "modules": names, "code": code,
                      "seen": seen,
                      "loaded": sorted(m for m in sys.modules if m.startswith("vmrunner"))}))
""")


def _copy_core(tmp: Path, core: Path = CORE) -> Path:
    (tmp / "vmrunner").mkdir()
    (tmp / "vmrunner" / "__init__.py").write_text("")
    shutil.copytree(core, tmp / "vmrunner" / "core",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp


def _run_isolated(tmp: Path) -> subprocess.CompletedProcess[str]:
    """Run ``_SCRIPT`` with ``tmp`` and the library directories (those without a ``vmrunner``)
    as the whole ``sys.path``. ``-I -S``: no environment, no cwd, no ``.pth`` files (so no
    editable-install finder that could still find the real package)."""
    libs = [p for p in sys.path if p and Path(p).exists() and not (Path(p) / "vmrunner").exists()]
    prelude = f"import sys; sys.path[:] = {[str(tmp), *libs]!r}\n"
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", prelude + _SCRIPT], cwd=tmp, capture_output=True,
        text=True, timeout=60, check=False)


def test_copied_core_imports_and_runs_without_the_rest_of_vmrunner(tmp_path: Path) -> None:
    tmp = _copy_core(tmp_path)
    proc = _run_isolated(tmp)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["vmrunner"] == str(tmp / "vmrunner" / "__init__.py")
    assert {"vmrunner.core._internal", "vmrunner.core.config.inotify",
            "vmrunner.core.config.watcher", "vmrunner.core.pipeline"} <= set(out["modules"])
    assert all(m == "vmrunner" or m.startswith("vmrunner.core") for m in out["loaded"])
    assert out["code"] == 0
    assert out["seen"] == [7]


def test_copied_core_fails_if_it_imports_the_application(tmp_path: Path) -> None:
    """The isolation is real: a core module importing vmrunner.exit_codes breaks the copy."""
    tmp = _copy_core(tmp_path)
    watcher = tmp / "vmrunner" / "core" / "config" / "watcher.py"
    source = watcher.read_text()
    watcher.write_text(source.replace(
        "\nimport asyncio\n", "\nimport asyncio\n\nfrom vmrunner.exit_codes import ExitCode\n", 1))
    assert "vmrunner.exit_codes" in watcher.read_text()
    proc = _run_isolated(tmp)
    assert proc.returncode != 0
    assert "No module named 'vmrunner.exit_codes'" in proc.stderr
    assert "config/watcher.py: vmrunner.exit_codes" in _foreign_imports(tmp / "vmrunner" / "core")


# -- static checks ---------------------------------------------------------------------------


def _modules(root: Path) -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(root.rglob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def _imported(path: Path, root: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Absolute module names an import statement refers to."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level == 0:
        base = node.module or ""
    else:
        package = ["vmrunner", "core", *path.relative_to(root).parent.parts]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join([*package, *([node.module] if node.module else [])])
    return [f"{base}.{alias.name}" for alias in node.names] if not node.module else [base]


def _foreign_imports(root: Path) -> list[str]:
    """Imports of ``vmrunner`` or ``vmrunner.X`` (X != core) by modules under ``root``."""
    found = []
    for path, module in _modules(root):
        for node in ast.walk(module):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for name in _imported(path, root, node):
                    parts = name.split(".")
                    if parts[0] == "vmrunner" and parts[1:2] != ["core"]:
                        found.append(f"{path.relative_to(root)}: {name}")
    return found


def test_core_imports_nothing_else_of_vmrunner() -> None:
    assert _foreign_imports(CORE) == []


def _owned_privates(cls: ast.ClassDef) -> set[str]:
    """The ``_names`` a class defines: methods, class attributes, slots, ``self._x = ...``."""
    names: set[str] = set()
    for node in ast.walk(cls):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                and isinstance(node.value, ast.Name) and node.value.id == "self":
            names.add(node.attr)
        elif isinstance(node, ast.AnnAssign | ast.Assign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
            if any(isinstance(t, ast.Name) and t.id == "__slots__" for t in targets) \
                    and node.value is not None:
                names.update(c.value for c in ast.walk(node.value)
                             if isinstance(c, ast.Constant) and isinstance(c.value, str))
    return {n for n in names if n.startswith("_")}


def _foreign_private_uses(root: Path) -> list[str]:
    """``x._name`` uses (x not ``self``/``cls``) outside a class that defines ``_name``,
    and imports of another module's ``_name``."""
    found = []

    def visit(node: ast.AST, owned: set[str], where: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, owned | _owned_privates(child), where)
                continue
            if isinstance(child, ast.Attribute):
                name, value = child.attr, child.value
                private = name.startswith("_") and not name.startswith("__")
                mine = isinstance(value, ast.Name) and value.id in ("self", "cls")
                stdlib = isinstance(value, ast.Name) and value.id == "sys"
                if private and not mine and not stdlib and name not in owned:
                    found.append(f"{where}:{child.lineno}: {ast.unparse(child)}")
            if isinstance(child, ast.ImportFrom) and child.level > 0:
                found.extend(f"{where}:{child.lineno}: import {alias.name}"
                             for alias in child.names
                             if alias.name.startswith("_") and not alias.name.startswith("__"))
            visit(child, owned, where)

    for path, module in _modules(root):
        visit(module, set(), str(path.relative_to(root)))
    return found


def test_no_core_class_uses_another_class_privates() -> None:
    assert _foreign_private_uses(CORE) == []
