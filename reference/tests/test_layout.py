"""refpull's layout: sub-packages in pipeline order, nothing imports upwards.

Each sub-package may import the shared top-level modules and the sub-packages listed
before it in ``LAYERS``; the shared modules import only each other. This keeps the
package free of import cycles between stages (issue 13 item 6).
"""

from __future__ import annotations

import ast
from pathlib import Path

import refpull

PACKAGE = Path(refpull.__file__).parent
SHARED = {"errors", "profiles", "digest", "mediatypes", "limits", "budget", "_version"}
LAYERS = ["gocompat", "settings", "content", "registry", "unpack", "pull", "cri", "cli"]
ENTRY = {"__init__", "__main__"}


def _stage(module: str) -> str:
    """The sub-package or shared module *module* belongs to; else the package root."""
    parts = module.split(".")
    assert parts[0] == "refpull", module
    name = parts[1] if len(parts) > 1 else "__init__"
    return name if name in SHARED or name in LAYERS else "__init__"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "refpull":
                found |= {f"refpull.{a.name}" for a in node.names}
            elif node.module.startswith("refpull."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("refpull.")}
    return found


def test_every_module_belongs_to_a_known_stage() -> None:
    top = {p.stem for p in PACKAGE.glob("*.py")}
    subs = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert top == SHARED | ENTRY
    assert subs == set(LAYERS)


def test_each_sub_package_has_a_readme() -> None:
    missing = [s for s in LAYERS if not (PACKAGE / s / "README.md").is_file()]
    assert missing == []


def test_no_stage_imports_a_later_one() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "cri" and rel.parts[1:2] == ("api",):
            continue  # generated stubs import only themselves
        stage = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if stage in ENTRY:
            continue
        for target in _imports(path):
            other = _stage(target)
            allowed = other == stage or other in SHARED
            if not allowed and stage not in SHARED and other in LAYERS:
                allowed = LAYERS.index(other) < LAYERS.index(stage)
            if not allowed:
                upward.append((rel.as_posix(), target))
    assert upward == []


def test_the_scan_sees_both_import_forms(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text(
        "from refpull import errors, mediatypes as mt\n"
        "from refpull.content.store import ContentStore\n"
        "import refpull.pull._pipeline_io as io\n"
    )
    assert _imports(sample) == {
        "refpull.errors",
        "refpull.mediatypes",
        "refpull.content.store",
        "refpull.pull._pipeline_io",
    }
