"""Each package's ``__all__`` is sorted (ruff RUF022 order) and every name in it exists (httpx-style check)."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

MODULES = [
    "refpull",
    "registry_sim",
    "cri_conformance",
    "cri_conformance.catalog",
    "cri_conformance.coverage",
    "cri_conformance.evidence",
    "cri_conformance.expectations",
    "cri_conformance.options",
    "cri_conformance.plugin",
    "cri_conformance.report",
    "cri_conformance.verdicts",
]


def _module(name: str) -> ModuleType:
    return importlib.import_module(name)


def _isort_key(name: str) -> tuple[int, str]:
    # ruff RUF022's "isort-style" order: CONSTANTS, then Classes, then functions.
    group = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return group, name


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_unique(name: str) -> None:
    exported = list(getattr(_module(name), "__all__", []))
    assert exported == sorted(exported, key=_isort_key)
    assert len(exported) == len(set(exported))


@pytest.mark.parametrize("name", MODULES)
def test_every_exported_name_exists(name: str) -> None:
    module = _module(name)
    missing = [n for n in getattr(module, "__all__", []) if not hasattr(module, n)]
    assert missing == []
