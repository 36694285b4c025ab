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
