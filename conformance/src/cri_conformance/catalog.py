"""The behaviour catalog: ``fixtures/catalog/<area>.json``, loaded, validated and linted.

The catalog is data (STYLE.md points 10-11, after JSON-Schema-Test-Suite): one file per
area, every behaviour with a stable ID, a level, one normative sentence and its upstream
sources. This module loads it into frozen values, lints it, and is also the command line
of the coverage gate::

    python -m cri_conformance.catalog lint
    python -m cri_conformance.coverage gate --suite conformance/suite --tests reference/tests
    python -m cri_conformance.coverage coverage --suite conformance/suite --tests ...

``gate`` exits 1 when a MUST or SECURITY behaviour has no tagged test, when a tag names
an unknown ID, or when the catalog does not lint.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema

__all__ = [
    "AREAS",
    "PROFILE_NAMES",
    "SCOPES",
    "UPSTREAM_FINDINGS",
    "Behavior",
    "Catalog",
    "CatalogError",
    "Source",
    "family_of",
    "fixtures_dir",
    "lint_catalog",
    "load_catalog",
    "main",
]

#: Catalog areas in behaviors.md order; ``fixtures/catalog/<area lower-case>.json``.
AREAS = (
    "REF", "EP", "HOST", "TLS", "AUTH", "CHAL", "TOKEN", "RES",
    "FETCH", "XPORT", "PULL", "S1", "CRI", "STORE", "ERR", "CFG",
    "CRIO",  # CRI-O's own behaviours (scope crio), not from behaviors.md
)  # fmt: skip
PROFILE_NAMES = ("seed", "containerd-1.6")
#: Which runtimes a behaviour binds: every CRI runtime, the containerd family (the seed
#: and its descendants, per profile) or the CRI-O family (CRI-O and containers/image).
SCOPES = ("cri", "containerd", "crio")


def family_of(profile: str) -> str:
    """The runtime family a profile belongs to: ``crio`` or ``containerd``.

    ``seed``, ``containerd-1.6`` and every later ``containerd-*`` profile are the
    containerd family; ``crio-*`` profiles are CRI-O's.
    """
    return "crio" if profile.startswith("crio") else "containerd"


#: upstream-issues.md findings; each is attached to at least one behaviour.
UPSTREAM_FINDINGS = tuple(f"F-{n:02d}" for n in range(1, 34))

_SCHEMA_NAME = "catalog.schema.json"
# STYLE.md point 11: "X rejects Y", never "X should reject Y" or "test that X".
_STYLE = re.compile(r"\bshould\b|\btest that\b", re.IGNORECASE)


class CatalogError(ValueError):
    """The catalog does not lint; ``problems`` lists every finding."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid behaviour catalog:\n  " + "\n  ".join(problems))


@dataclass(frozen=True, kw_only=True)
class Source:
    """Where a behaviour comes from: ``repo@rev path symbol`` and an optional URL."""

    ref: str
    url: str | None = None


@dataclass(frozen=True, kw_only=True)
class Behavior:
    """One catalog entry (see fixtures/README.md for every field)."""

    id: str
    area: str
    title: str
    statement: str
    level: str
    kind: str
    scope: str = "containerd"
    sources: tuple[Source, ...]
    observable: str
    upstream: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()
    profiles: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    finding: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    switches: tuple[str, ...] = ()

    def binds(self, family: str) -> bool:
        """True when the behaviour binds runtimes of *family* (``containerd``, ``crio``)."""
        return self.scope in ("cri", family)

    @property
    def strict(self) -> bool:
        """True for MUST and SECURITY behaviours (the ones the gate insists on)."""
        return self.level in ("MUST", "SECURITY")

    def statement_for(self, profile: str) -> str:
        """The statement with the profile's own sentence appended, when it has one."""
        extra = self.profiles.get(profile)
        return f"{self.statement} {extra}" if extra else self.statement

    @classmethod
    def from_json(cls, area: str, data: Mapping[str, Any]) -> Behavior:
        """Build a behaviour from one schema-valid JSON entry."""
        return cls(
            id=data["id"],
            area=area,
            title=data["title"],
            statement=data["statement"],
            level=data["level"],
            kind=data["kind"],
            scope=data["scope"],
            sources=tuple(
                Source(ref=s["ref"], url=s.get("url")) for s in data["sources"]
            ),
            observable=data["observable"],
            upstream=tuple(data.get("upstream", ())),
            markers=tuple(data.get("markers", ())),
            profiles=MappingProxyType(dict(data.get("profiles", {}))),
            finding=MappingProxyType(dict(data.get("finding", {}))),
            switches=tuple(data.get("switches", ())),
        )


@dataclass(frozen=True)
class Catalog:
    """All behaviours, in area and file order."""

    behaviors: tuple[Behavior, ...]
    directory: Path | None = None

    @functools.cached_property
    def by_id(self) -> Mapping[str, Behavior]:
        """Behaviours keyed by ID."""
        return MappingProxyType({b.id: b for b in self.behaviors})

    @functools.cached_property
    def areas(self) -> Mapping[str, tuple[Behavior, ...]]:
        """Behaviours grouped by area, areas in :data:`AREAS` order."""
        return MappingProxyType(
            {a: tuple(b for b in self.behaviors if b.area == a) for a in AREAS}
        )

    @classmethod
    def load(cls, directory: Path | str | None = None) -> Catalog:
        """Load and lint the catalog under *directory* (default: :func:`fixtures_dir`).

        Raises:
            CatalogError: the catalog does not lint.
        """
        root = Path(directory) if directory is not None else fixtures_dir()
        documents, problems = _read(root)
        problems += _lint(documents, root)
        if problems:
            raise CatalogError(problems)
        behaviors = tuple(
            Behavior.from_json(doc["area"], entry)
            for _, doc in documents
            for entry in doc["behaviors"]
        )
        return cls(behaviors=behaviors, directory=root)

    def get(self, behavior_id: str) -> Behavior | None:
        """Return the behaviour with *behavior_id*, or None."""
        return self.by_id.get(behavior_id)

    def __contains__(self, behavior_id: object) -> bool:
        return behavior_id in self.by_id

    def __iter__(self) -> Iterator[Behavior]:
        return iter(self.behaviors)

    def __len__(self) -> int:
        return len(self.behaviors)


def fixtures_dir() -> Path:
    """Locate the ``fixtures`` directory.

    A wheel carries it as ``cri_conformance/_fixtures`` (hatch ``force-include``); a
    source tree or editable install has it at the repository root.

    Raises:
        FileNotFoundError: neither place has it.
    """
    packaged = Path(__file__).parent / "_fixtures"
    if (packaged / _SCHEMA_NAME).is_file():
        return packaged
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "fixtures"
        if (candidate / _SCHEMA_NAME).is_file():
            return candidate
    raise FileNotFoundError("cannot find the fixtures directory (catalog.schema.json)")


@functools.cache
def _load_cached(directory: Path) -> Catalog:
    return Catalog.load(directory)


def load_catalog(directory: Path | str | None = None) -> Catalog:
    """Load the catalog once per directory and process (cached).

    Raises:
        CatalogError: the catalog does not lint.
    """
    root = Path(directory) if directory is not None else fixtures_dir()
    return _load_cached(root.resolve())


def lint_catalog(directory: Path | str | None = None) -> list[str]:
    """Return every lint problem of the catalog (empty when it is clean)."""
    root = Path(directory) if directory is not None else fixtures_dir()
    documents, problems = _read(root)
    return problems + _lint(documents, root)


_Documents = list[tuple[str, dict[str, Any]]]


def _read(root: Path) -> tuple[_Documents, list[str]]:
    problems: list[str] = []
    try:
        schema = json.loads((root / _SCHEMA_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [], [f"{_SCHEMA_NAME}: cannot load: {exc}"]
    validator = jsonschema.Draft202012Validator(schema)
    documents: _Documents = []
    files = {p.stem: p for p in sorted((root / "catalog").glob("*.json"))}
    expected = {area.lower() for area in AREAS}
    problems += [f"catalog/{s}.json: missing" for s in sorted(expected - set(files))]
    problems += [
        f"catalog/{s}.json: not an area" for s in sorted(set(files) - expected)
    ]
    for stem in (a.lower() for a in AREAS):
        if stem not in files:
            continue
        name = f"catalog/{stem}.json"
        try:
            doc = json.loads(files[stem].read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems.append(f"{name}: cannot load: {exc}")
            continue
        errors = sorted(validator.iter_errors(doc), key=lambda e: e.json_path)
        problems += [f"{name}: schema: {e.json_path}: {e.message}" for e in errors]
        if not errors:
            documents.append((name, doc))
    return documents, problems


def _profile_fields() -> frozenset[str] | None:
    try:
        from refpull.profiles import Profile
    except ImportError:  # pragma: no cover - refpull ships in the same distribution
        return None
    return frozenset(f.name for f in dataclasses.fields(Profile))


def _lint(documents: _Documents, root: Path) -> list[str]:
    problems: list[str] = []
    seen: dict[str, str] = {}
    attached: set[str] = set()
    switches = _profile_fields()
    for name, doc in documents:
        area = doc["area"]
        if Path(name).stem != area.lower():
            problems.append(f"{name}: area {area!r} does not match the file name")
        for entry in doc["behaviors"]:
            bid = entry["id"]
            where = f"{name}: {bid}"
            if bid in seen:
                problems.append(f"{where}: duplicate ID (also in {seen[bid]})")
            seen[bid] = name
            if bid.rsplit("-", 1)[0] != area:
                problems.append(f"{where}: ID prefix does not match area {area}")
            problems += [f"{where}: {p}" for p in _lint_entry(entry, switches)]
            attached.update(entry.get("upstream", ()))
    if documents:
        missing = [f for f in UPSTREAM_FINDINGS if f not in attached]
        if missing:
            problems.append(f"upstream findings attached to no behaviour: {missing}")
        problems += [
            f"unknown upstream finding {f}"
            for f in sorted(attached - set(UPSTREAM_FINDINGS))
        ]
    return problems


def _lint_entry(entry: Mapping[str, Any], switches: frozenset[str] | None) -> list[str]:
    problems: list[str] = []
    statement: str = entry["statement"]
    if _STYLE.search(statement):
        problems.append('statement says "should" or "test that"; write "X does Y"')
    if not statement.endswith("."):
        problems.append("statement does not end with a full stop")
    if statement[:1].islower():
        problems.append("statement starts in lower case")
    if not entry.get("sources"):
        problems.append("no source")
    markers = set(entry.get("markers", ()))
    security = entry["level"] == "SECURITY"
    if ("SEC" in markers) != security:
        problems.append("the SEC marker and level SECURITY go together")
    delta = bool({"DELTA-1.6", "DELTA-1.7", "DELTA-2.0"} & set(markers))
    if ("profiles" in entry) != (delta and not security):
        # SECURITY entries carry their per-version difference in `finding`.
        problems.append(
            "a DELTA marker (1.6, 1.7, 2.0) marks exactly the entries with profile sentences"
        )
    if entry["kind"] == "quirk" and "profiles" not in entry:
        problems.append("a seed quirk needs a profiles.seed sentence")
    if switches is not None:
        unknown = sorted(set(entry.get("switches", ())) - switches)
        if unknown:
            problems.append(f"switches name no Profile field: {unknown}")
    return problems


def _write(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the catalog command line: ``lint``.

    The coverage gate reads test code, so it lives with the scanner:
    ``python -m cri_conformance.coverage gate`` (no catalog <-> coverage import cycle).

    Returns:
        0 on success, 1 when the lint fails.
    """
    parser = argparse.ArgumentParser(prog="python -m cri_conformance.catalog")
    parser.add_argument("--fixtures", type=Path, help="fixtures directory to use")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("lint", help="validate the catalog files")
    args = parser.parse_args(argv)
    problems = lint_catalog(args.fixtures)
    if problems:
        _write("catalog lint failed:\n  " + "\n  ".join(problems))
        return 1
    catalog = Catalog.load(args.fixtures)
    _write(f"catalog OK: {len(catalog)} behaviours in {len(AREAS)} areas")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
