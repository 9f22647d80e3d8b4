"""The package map of docs/design/architecture.md holds: each package imports (at run time) only the
packages below it. Imports under ``if TYPE_CHECKING:`` name types for annotations and are not
counted."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "vmrunner"

ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "events": {"core"},
    "proc": {"core"},
    "protocols": {"core", "events", "proc"},
    "config": {"core", "events"},
    "vmtypes": {"core", "config"},
    "components": {"core", "events", "proc", "protocols", "config", "vmtypes"},
    "api": {"core", "events", "proc", "protocols", "config", "vmtypes", "components"},
    "kube": {"core", "events", "proc", "protocols", "config", "vmtypes", "components"},
    "daemon": {"core", "events", "proc", "protocols", "config", "vmtypes", "components", "api",
               "kube"},
    "testing": {"core", "events", "proc", "protocols", "config", "vmtypes", "components", "api",
                "daemon", "kube"},
}


def _type_checking_block(node: ast.AST) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Name)
            and node.test.id == "TYPE_CHECKING")


def runtime_modules(source: str) -> set[str]:
    """The ``vmrunner`` modules (or packages) a module imports outside ``if TYPE_CHECKING:``
    blocks; ``from vmrunner.x import y`` counts as ``vmrunner.x`` and ``vmrunner.x.y``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_block(node):
            return
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module.startswith("vmrunner."):  # not ``from vmrunner import __version__``
                names += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found.update(name for name in names if name.startswith("vmrunner."))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def runtime_imports(source: str) -> set[str]:
    """The ``vmrunner.X`` packages a module imports outside ``if TYPE_CHECKING:`` blocks."""
    return {name.split(".")[1] for name in runtime_modules(source)}


def test_every_package_is_on_the_map() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ALLOWED)
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules == {"__init__", "__main__"}, "loose modules at the top of vmrunner/"


def test_packages_import_only_downwards() -> None:
    wrong = []
    for package, allowed in ALLOWED.items():
        for module in sorted((PACKAGE / package).rglob("*.py")):
            for target in runtime_imports(module.read_text()) - allowed - {package}:
                wrong.append(f"{module.relative_to(PACKAGE.parent)} imports vmrunner.{target}")
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_imports() -> None:
    source = ("from vmrunner.core import Event\nimport vmrunner.api.server\n"
              "def f():\n    from vmrunner.daemon import run\n"
              "if TYPE_CHECKING:\n    from vmrunner.vmtypes import launch\n")
    assert runtime_imports(source) == {"core", "api", "daemon"}


def _defines_a_component(source: str) -> bool:
    """Whether a module defines a class derived (by name) from ``BusComponent``/``Component``
    or from another component class of the package."""
    return any(isinstance(node, ast.ClassDef) and any(
        isinstance(base, ast.Name) and base.id.endswith("Component") for base in node.bases)
        for node in ast.parse(source).body)


def test_components_do_not_import_each_other() -> None:
    """Components talk through events only: a module defining a component imports no other
    module defining one (the entry points that build the tree, and the tests, may)."""
    sources = {".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts):
               path.read_text() for path in sorted(PACKAGE.rglob("*.py"))}
    component_modules = {name for name, source in sources.items()
                         if _defines_a_component(source)}
    component_modules -= {"vmrunner.components.base", "vmrunner.core.component"}
    assert "vmrunner.components.ram" in component_modules  # the check sees them
    wrong = [f"{name} imports {target}" for name in sorted(component_modules)
             for target in sorted(runtime_modules(sources[name]) & (component_modules - {name}))]
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_module_imports() -> None:
    source = ("from vmrunner.components import ram\nimport vmrunner.kube.component\n"
              "if TYPE_CHECKING:\n    from vmrunner.components.cpus import CpuController\n")
    assert runtime_modules(source) == {"vmrunner.components", "vmrunner.components.ram",
                                       "vmrunner.kube.component"}
