"""Dependency boundaries (STYLE.md point 18): the two sides of the wire never share code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cri_conformance
import refpull
import registry_sim

PACKAGES = {
    "refpull": Path(refpull.__file__).parent,
    "registry_sim": Path(registry_sim.__file__).parent,
    "cri_conformance": Path(cri_conformance.__file__).parent,
}
FORBIDDEN = {
    "refpull": {"registry_sim", "cri_conformance"},
    "registry_sim": {"refpull", "cri_conformance"},
    "cri_conformance": set(),
}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & set(PACKAGES)


def _modules(package: str) -> list[Path]:
    return sorted(PACKAGES[package].rglob("*.py"))


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_package_imports_only_what_its_boundary_allows(package: str) -> None:
    offenders = {
        str(path.relative_to(PACKAGES[package])): sorted(bad)
        for path in _modules(package)
        if (bad := _imported_packages(path) & FORBIDDEN[package])
    }
    assert offenders == {}


def test_only_cri_conformance_imports_both_sides() -> None:
    both = {"refpull", "registry_sim"}
    for package in ("refpull", "registry_sim"):
        for path in _modules(package):
            assert not both <= _imported_packages(path), path


def test_the_import_scan_sees_absolute_imports_only(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text(
        "import refpull.errors\nfrom registry_sim import wire\nfrom . import x\nimport os\n"
    )
    assert _imported_packages(sample) == {"refpull", "registry_sim"}


def _module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package under *root*."""
    names: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at any level (TYPE_CHECKING too).

    ``from a import b`` is an edge to ``a.b`` when that is a module, else to ``a``.
    """
    modules = _module_names(root, package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - node.level + 1]
                    source = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    source = node.module or ""
                for alias in node.names:
                    if f"{source}.{alias.name}" in modules:
                        edges.add(f"{source}.{alias.name}")
                    elif source in modules:
                        edges.add(source)
        graph[name] = edges - {name}
    return graph


def _import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_import_cycle_inside_a_package(package: str) -> None:
    """A module never imports, even for typing only, a module that imports it back."""
    assert _import_cycles(_import_graph(PACKAGES[package], package)) == []


def test_the_cycle_scan_finds_a_typing_only_circle(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    (root / "a.py").write_text("from pkg.sub import b\n")
    (root / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .. import a\n"
    )
    (root / "c.py").write_text("from pkg import a\nimport pkg.sub.b\n")
    graph = _import_graph(root, "pkg")
    assert graph == {
        "pkg": set(),
        "pkg.a": {"pkg.sub.b"},
        "pkg.c": {"pkg.a", "pkg.sub.b"},
        "pkg.sub": set(),
        "pkg.sub.b": {"pkg.a"},
    }
    assert _import_cycles(graph) == [["pkg.a", "pkg.sub.b"]]
