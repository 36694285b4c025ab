"""Which catalog behaviours have tests: ``@pytest.mark.behavior`` tags found by reading code.

The gate reads test files with :mod:`ast` instead of importing them, so it runs without
the test dependencies and never executes test code. A tag is found in:

* decorators: ``@pytest.mark.behavior("AUTH-002", "AUTH-008")`` (also ``mark.behavior``
  or a module-level alias ``behavior = pytest.mark.behavior``);
* ``pytestmark = pytest.mark.behavior(...)`` (or a list of marks) in a module or class;
* ``pytest.param(..., marks=pytest.mark.behavior(...), id="...")``, inline in a
  ``parametrize`` decorator or in a module-level table the decorator names.

Only string literals count; any other argument is reported as a dynamic tag. The
command line of the gate (``lint`` first, then the tags)::

    python -m cri_conformance.coverage gate --suite conformance/suite --tests reference/tests
    python -m cri_conformance.coverage coverage --suite conformance/suite --tests ...

``gate`` exits 1 when a MUST or SECURITY behaviour has no tagged test, when a tag names
an unknown ID, or when the catalog does not lint.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cri_conformance.catalog import AREAS, Catalog, lint_catalog

__all__ = ["Coverage", "Tag", "compute_coverage", "main", "scan_file", "scan_paths"]

_STRICT_LEVELS = ("MUST", "SECURITY")
_LEVELS = ("SECURITY", "MUST", "SHOULD", "MAY")


@dataclass(frozen=True)
class Tag:
    """One behaviour ID on one test: ``test`` is ``path::Class::name[param-id]``."""

    behavior: str
    test: str
    path: str
    line: int
    origin: str  # "suite" (black-box conformance) or "tests" (unit/self tests)


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


class _Scanner:
    def __init__(self, tree: ast.Module, path: str, origin: str) -> None:
        self.path = path
        self.origin = origin
        self.tags: list[Tag] = []
        self.dynamic: list[str] = []
        self.aliases = self._aliases(tree)
        self.param_ids = self._param_ids(tree)
        self.tables: dict[str, list[tuple[str, int, str | None]]] = {}

    @staticmethod
    def _aliases(tree: ast.Module) -> set[str]:
        names = set()
        for node in tree.body:
            if isinstance(node, ast.Assign) and _dotted(node.value).endswith(
                "mark.behavior"
            ):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        return names

    def is_mark(self, node: ast.AST) -> bool:
        if not isinstance(node, ast.Call):
            return False
        name = _dotted(node.func)
        return name.endswith("mark.behavior") or name in self.aliases

    def _param_ids(self, tree: ast.Module) -> dict[int, str]:
        found: dict[int, str] = {}
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call) and _dotted(node.func).endswith("param")
            ):
                continue
            pid = next(
                (kw.value.value for kw in node.keywords
                 if kw.arg == "id" and isinstance(kw.value, ast.Constant)
                 and isinstance(kw.value.value, str)),
                f"line{node.lineno}",
            )  # fmt: skip
            for kw in node.keywords:
                if kw.arg == "marks":
                    for sub in ast.walk(kw.value):
                        if self.is_mark(sub):
                            found[id(sub)] = pid
        return found

    def ids_of(self, call: ast.Call) -> list[str]:
        ids = []
        for arg in call.args:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                ids.append(arg.value)
            else:
                self.dynamic.append(f"{self.path}:{call.lineno}")
        return ids

    def collect(self, node: ast.AST, owner: str) -> None:
        """Record every behaviour mark inside *node* for test *owner*."""
        for sub in ast.walk(node):
            if self.is_mark(sub):
                assert isinstance(sub, ast.Call)
                pid = self.param_ids.get(id(sub))
                test = f"{owner}[{pid}]" if pid else owner
                for bid in self.ids_of(sub):
                    self.tags.append(Tag(bid, test, self.path, sub.lineno, self.origin))

    def table(self, node: ast.Assign) -> None:
        names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        for sub in ast.walk(node.value):
            if self.is_mark(sub):
                assert isinstance(sub, ast.Call)
                for name in names:
                    for bid in self.ids_of(sub):
                        pid = self.param_ids.get(id(sub))
                        self.tables.setdefault(name, []).append((bid, sub.lineno, pid))

    def visit(self, body: Sequence[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                owner = f"{prefix}::{node.name}"
                for deco in node.decorator_list:
                    self.collect(deco, owner)
                self.visit(node.body, owner)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                owner = f"{prefix}::{node.name}"
                for deco in node.decorator_list:
                    self.collect(deco, owner)
                    self._from_tables(deco, owner)
                for stmt in node.body:
                    self.collect(stmt, owner)
            elif isinstance(node, ast.Assign):
                if any(
                    isinstance(t, ast.Name) and t.id == "pytestmark"
                    for t in node.targets
                ):
                    self.collect(node.value, prefix)
                elif prefix == self.path:
                    self.table(node)

    def _from_tables(self, deco: ast.expr, owner: str) -> None:
        for sub in ast.walk(deco):
            if isinstance(sub, ast.Name) and sub.id in self.tables:
                for bid, line, pid in self.tables[sub.id]:
                    test = f"{owner}[{pid}]" if pid else owner
                    self.tags.append(Tag(bid, test, self.path, line, self.origin))


def scan_file(
    path: Path, *, origin: str, root: Path | None = None
) -> tuple[list[Tag], list[str]]:
    """Find the behaviour tags in one Python file.

    Args:
        path: the file to read.
        origin: ``"suite"`` or ``"tests"``, recorded on each tag.
        root: paths in tags are made relative to it when given.

    Returns:
        The tags and a list of ``path:line`` places with non-literal tag arguments.

    Raises:
        SyntaxError: the file is not valid Python.
    """
    shown = (
        str(path.relative_to(root)) if root and path.is_relative_to(root) else str(path)
    )
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    scanner = _Scanner(tree, shown, origin)
    scanner.visit(tree.body, shown)
    return scanner.tags, scanner.dynamic


def scan_paths(paths: Iterable[Path], *, origin: str) -> tuple[list[Tag], list[str]]:
    """Scan every ``*.py`` file under *paths* (files or directories), sorted."""
    tags: list[Tag] = []
    dynamic: list[str] = []
    for base in paths:
        files = [base] if base.is_file() else sorted(base.rglob("*.py"))
        for file in files:
            found, dyn = scan_file(file, origin=origin, root=Path.cwd())
            tags += found
            dynamic += dyn
    return tags, dynamic


@dataclass(frozen=True)
class Coverage:
    """Catalog behaviours against the tags found in test code."""

    catalog: Catalog
    tags: tuple[Tag, ...]
    dynamic: tuple[str, ...] = ()
    tests_for: dict[str, list[Tag]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        tests_for: dict[str, list[Tag]] = {b.id: [] for b in self.catalog}
        for tag in self.tags:
            if tag.behavior in tests_for:
                tests_for[tag.behavior].append(tag)
        object.__setattr__(self, "tests_for", tests_for)

    @property
    def unknown(self) -> list[Tag]:
        """Tags naming an ID the catalog does not have."""
        return [t for t in self.tags if t.behavior not in self.catalog]

    def uncovered(self, levels: Sequence[str] = _STRICT_LEVELS) -> list[str]:
        """IDs of behaviours at *levels* without any tagged test."""
        return [
            b.id for b in self.catalog if b.level in levels and not self.tests_for[b.id]
        ]

    @property
    def blackbox_without_suite(self) -> list[str]:
        """Black-box behaviours that only unit tests show (a warning, not a failure)."""
        return [
            b.id for b in self.catalog
            if b.observable == "black-box" and self.tests_for[b.id]
            and not any(t.origin == "suite" for t in self.tests_for[b.id])
        ]  # fmt: skip

    @property
    def gate_passes(self) -> bool:
        """True when every MUST/SECURITY behaviour has a test and no tag is unknown."""
        return not self.uncovered() and not self.unknown

    def render(self) -> str:
        """Plain-text coverage: totals, per area, per level, gaps, then who covers what."""
        covered = [b for b in self.catalog if self.tests_for[b.id]]
        lines = [
            f"Catalog coverage: {len(covered)}/{len(self.catalog)} behaviours tagged"
        ]
        lines.append("\nBy area:")
        for area in AREAS:
            members = self.catalog.areas[area]
            done = sum(1 for b in members if self.tests_for[b.id])
            lines.append(f"  {area:<6} {done:>3}/{len(members):<3}")
        lines.append("\nBy level:")
        for level in _LEVELS:
            at_level = [b for b in self.catalog if b.level == level]
            done = sum(1 for b in at_level if self.tests_for[b.id])
            lines.append(f"  {level:<8} {done:>3}/{len(at_level):<3}")
        missing = self.uncovered()
        lines.append(f"\nUncovered MUST/SECURITY behaviours ({len(missing)}):")
        for bid in missing:
            b = self.catalog.by_id[bid]
            lines.append(f"  {bid:<10} {b.level:<8} {b.title}")
        if self.unknown:
            lines.append(f"\nUnknown behaviour IDs ({len(self.unknown)}):")
            lines += [
                f"  {t.path}:{t.line}  {t.behavior}  ({t.test})" for t in self.unknown
            ]
        if self.dynamic:
            lines.append("\nNon-literal behaviour tags (not counted):")
            lines += [f"  {place}" for place in self.dynamic]
        if self.blackbox_without_suite:
            lines.append("\nBlack-box behaviours shown only by unit tests (warning):")
            lines.append("  " + " ".join(self.blackbox_without_suite))
        lines.append("\nTests per behaviour:")
        for b in covered:
            tests = sorted({t.test for t in self.tests_for[b.id]})
            lines.append(f"  {b.id}: " + ", ".join(tests))
        return "\n".join(lines)


def compute_coverage(
    catalog: Catalog, *, suite: Iterable[Path] = (), tests: Iterable[Path] = ()
) -> Coverage:
    """Scan the suite and test directories and match their tags with *catalog*."""
    suite_tags, suite_dyn = scan_paths(suite, origin="suite")
    test_tags, test_dyn = scan_paths(tests, origin="tests")
    return Coverage(
        catalog=catalog,
        tags=tuple(suite_tags + test_tags),
        dynamic=tuple(suite_dyn + test_dyn),
    )


def _write(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the gate command line (``gate`` or ``coverage``), after the catalog lint.

    Returns:
        0 on success, 1 when the lint or the gate fails.
    """
    parser = argparse.ArgumentParser(prog="python -m cri_conformance.coverage")
    parser.add_argument("--fixtures", type=Path, help="fixtures directory to use")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("gate", "coverage"):
        cmd = sub.add_parser(command, help=f"{command}: behaviours vs tagged tests")
        cmd.add_argument("--suite", type=Path, action="append", default=[])
        cmd.add_argument("--tests", type=Path, action="append", default=[])
    args = parser.parse_args(argv)
    problems = lint_catalog(args.fixtures)
    if problems:
        _write("catalog lint failed:\n  " + "\n  ".join(problems))
        return 1
    catalog = Catalog.load(args.fixtures)
    coverage = compute_coverage(catalog, suite=args.suite, tests=args.tests)
    _write(coverage.render())
    if args.command == "gate" and not coverage.gate_passes:
        _write("coverage gate FAILED")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
