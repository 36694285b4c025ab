"""The suite's expectations never come from the code under test (issue 11 item 2).

A scenario that computed its expected value with refpull would move the expectation
along with a bug in the reference (a circular oracle). So the suite imports nothing
from refpull; golden values come from fixtures or from the simulator's construction.
Only what a *target* needs (running the reference, speaking CRI) and what names the
profiles may import refpull, and those places are listed here.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from cri_conformance.catalog import fixtures_dir
from refpull.profiles import PROFILES

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "conformance" / "suite"
PACKAGE = ROOT / "conformance" / "src" / "cri_conformance"

#: Harness modules that need refpull, and for what.
HARNESS_USES = {
    "targets/reference.py": "runs the reference puller in-process (a target), "
    "cancelling a pull at its call's deadline as refpull serve does",
    "targets/cri.py": "the generated CRI protobuf stubs (a target's wire format)",
    "options.py": "the names of the profiles (--profile choices)",
    "catalog.py": "the catalog lint checks switches against Profile's fields",
    "_cli_list.py": "lists the profiles by name",
    "mutation/mutants.py": "the profile names a mutant may list",
    "mutation/_first.py": "checks which refpull a mutant run imported",
}


def _refpull_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "refpull"}
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").split(".")[0] == "refpull"
        ):
            found.add(str(node.module))
    return found


@pytest.mark.parametrize("path", sorted(SUITE.glob("*.py")), ids=lambda p: p.name)
def test_suite_files_import_nothing_from_refpull(path: Path) -> None:
    """No suite file computes an expectation with the code under test (issue 11)."""
    assert _refpull_imports(path) == set()


def test_the_import_finder_sees_every_form_of_refpull_import(tmp_path: Path) -> None:
    source = tmp_path / "t.py"
    source.write_text(
        "import refpull\nimport refpull.errors as e\nfrom refpull.cri import service\n"
        "from . import refpull_like\nimport refpullx\n"
    )
    assert _refpull_imports(source) == {"refpull", "refpull.errors", "refpull.cri"}


def test_only_listed_harness_modules_import_refpull() -> None:
    users = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if _refpull_imports(path)
    }
    assert sorted(users - set(HARNESS_USES)) == []


def test_profile_facts_table_agrees_with_the_reference() -> None:
    # The suite branches on fixtures/vectors/profiles.json; the reference must match it
    # (here, in a unit test, not in the suite, so a mutant of profiles.py is caught).
    table = json.loads((fixtures_dir() / "vectors" / "profiles.json").read_text())
    for name, fact in table["facts"].items():
        for profile, value in fact["values"].items():
            assert getattr(PROFILES[profile], name) is value, (name, profile)
