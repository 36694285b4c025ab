"""Mutants of refpull: the TOML format, validation and application to a copy.

A mutant is one small semantic patch of the reference puller that models a real bug
(``conformance/mutants/*.toml``, one ``[[mutant]]`` table each)::

    [[mutant]]
    id = "AUTH-010-realm-http-other-host"   # stable, unique across all files
    behavior = "AUTH-010"                    # catalog ID the mutant breaks
    profiles = ["seed", "containerd-1.6"]    # profiles under which it changes behaviour
    file = "refpull/registry/authflow.py"    # relative to reference/src
    find = "text occurring exactly once in that file"
    replace = "the mutated text"
    why = "the real-world bug this models"
    survives = "optional: why the suite does not kill it (shown, never hidden)"
    target = "optional: reference-grpc for a mutant of the CRI server (default reference)"

The suite kills a mutant when it fails against the mutated reference. Nothing here
runs the suite: :mod:`cri_conformance.mutation.runner` does.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PROFILES",
    "TARGETS",
    "Mutant",
    "MutantError",
    "apply_mutant",
    "check_mutants",
    "copy_sources",
    "load_mutants",
    "select_mutants",
]


def _profiles() -> tuple[str, ...]:
    # The suite's ``--profile`` choices (cri_conformance.options does the same).
    from refpull.profiles import PROFILES as known

    return tuple(known)


#: The profiles a mutant may name (the suite's ``--profile`` choices).
PROFILES = _profiles()

_REQUIRED = ("id", "behavior", "profiles", "file", "find", "replace", "why")
_OPTIONAL = ("survives", "target")
#: What the suite may grade a mutant through: the in-process reference, or ``refpull
#: serve`` over its CRI socket for mutants of the gRPC layer the former never runs.
TARGETS = ("reference", "reference-grpc")
_ID = re.compile(r"^[A-Z0-9][A-Za-z0-9._-]*$")
_BEHAVIOR = re.compile(r"^[A-Z0-9]+-\d{3}$")


class MutantError(ValueError):
    """A mutant file is malformed, or a mutant does not apply to the sources."""


@dataclass(frozen=True, kw_only=True)
class Mutant:
    """One mutant, as read from its file."""

    id: str
    behavior: str
    profiles: tuple[str, ...]
    file: str
    find: str
    replace: str
    why: str
    survives: str | None
    source: Path
    target: str = "reference"

    @property
    def area(self) -> str:
        """The catalog area of the behaviour the mutant breaks (``AUTH``, ``S1``...)."""
        return self.behavior.split("-", 1)[0]

    def where(self) -> str:
        return f"{self.source.name}:{self.id}"


def _mutant(entry: object, source: Path, index: int) -> Mutant:
    where = f"{source.name} mutant #{index + 1}"
    if not isinstance(entry, dict):
        raise MutantError(f"{where}: a [[mutant]] entry must be a table")
    missing = [k for k in _REQUIRED if k not in entry]
    unknown = sorted(set(entry) - set(_REQUIRED) - set(_OPTIONAL))
    if missing or unknown:
        raise MutantError(
            f"{where}: missing keys {missing}, unknown keys {unknown}; "
            f"write exactly {', '.join(_REQUIRED)} (+ optional {', '.join(_OPTIONAL)})"
        )
    strings = [k for k in (*_REQUIRED, *_OPTIONAL) if k in entry and k != "profiles"]
    for key in strings:
        if not isinstance(entry[key], str) or not entry[key]:
            raise MutantError(f"{where}: {key} must be a non-empty string")
    ident = entry["id"]
    if not _ID.match(ident):
        raise MutantError(f"{where}: id {ident!r} must look like AUTH-010-short-name")
    if not _BEHAVIOR.match(entry["behavior"]):
        raise MutantError(f"{ident}: behavior must be a catalog ID such as AUTH-010")
    profiles = entry["profiles"]
    if (
        not isinstance(profiles, list)
        or not profiles
        or any(p not in PROFILES for p in profiles)
        or len(set(profiles)) != len(profiles)
    ):
        raise MutantError(f"{ident}: profiles must be a non-empty subset of {PROFILES}")
    target = entry.get("target", "reference")
    if target not in TARGETS:
        raise MutantError(f"{ident}: target must be one of {TARGETS}, got {target!r}")
    if entry["find"] == entry["replace"]:
        raise MutantError(f"{ident}: replace equals find; the mutant changes nothing")
    file = entry["file"]
    if not file.startswith("refpull/") or ".." in file or not file.endswith(".py"):
        raise MutantError(f"{ident}: file must be refpull/<module>.py, got {file!r}")
    return Mutant(
        id=ident,
        behavior=entry["behavior"],
        profiles=tuple(profiles),
        file=file,
        find=entry["find"],
        replace=entry["replace"],
        why=entry["why"],
        survives=entry.get("survives"),
        source=source,
        target=target,
    )


def load_mutants(directory: Path) -> list[Mutant]:
    """Every mutant of every ``*.toml`` file under *directory*, in file order.

    Raises:
        MutantError: a file is not TOML, an entry is malformed or an id repeats.
    """
    mutants: list[Mutant] = []
    seen: dict[str, Path] = {}
    for path in sorted(directory.glob("*.toml")):
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise MutantError(f"{path.name}: not valid TOML: {exc}") from exc
        extra = sorted(set(document) - {"mutant"})
        if extra:
            raise MutantError(
                f"{path.name}: only [[mutant]] tables belong here: {extra}"
            )
        entries = document.get("mutant", [])
        if not isinstance(entries, list):
            raise MutantError(f"{path.name}: write [[mutant]], not [mutant]")
        for index, entry in enumerate(entries):
            mutant = _mutant(entry, path, index)
            if mutant.id in seen:
                raise MutantError(
                    f"{mutant.id}: id used twice ({seen[mutant.id].name}, {path.name})"
                )
            seen[mutant.id] = path
            mutants.append(mutant)
    return mutants


def _patched(mutant: Mutant, src: Path) -> str:
    target = src / mutant.file
    if not target.is_file():
        raise MutantError(f"{mutant.id}: {mutant.file} does not exist under {src}")
    text = target.read_text(encoding="utf-8")
    count = text.count(mutant.find)
    if count != 1:
        raise MutantError(
            f"{mutant.id}: find occurs {count} times in {mutant.file}; "
            "it must occur exactly once (quote more context)"
        )
    return text.replace(mutant.find, mutant.replace)


def check_mutants(
    mutants: Iterable[Mutant], src: Path, catalog_ids: Iterable[str] | None = None
) -> list[str]:
    """Problems that keep mutants from running: one line each, empty when all apply.

    Each mutant's ``find`` must occur exactly once in its file, the patched module must
    still compile, and its behaviour must be a catalog ID (when *catalog_ids* is given).
    """
    known = set(catalog_ids) if catalog_ids is not None else None
    problems: list[str] = []
    for mutant in mutants:
        if known is not None and mutant.behavior not in known:
            problems.append(
                f"{mutant.id}: behavior {mutant.behavior} is not in the catalog"
            )
        try:
            text = _patched(mutant, src)
            compile(text, mutant.file, "exec")
        except MutantError as exc:
            problems.append(str(exc))
        except SyntaxError as exc:
            problems.append(
                f"{mutant.id}: the patched {mutant.file} does not compile: {exc}"
            )
    return problems


def copy_sources(src: Path, dest: Path) -> Path:
    """Copy the ``refpull`` package under *src* to *dest*; return *dest*."""
    shutil.copytree(
        src / "refpull",
        dest / "refpull",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return dest


def apply_mutant(mutant: Mutant, src: Path, dest: Path) -> Path:
    """Copy refpull from *src* to *dest* with *mutant* applied; return *dest*.

    Raises:
        MutantError: the mutant does not apply (its ``find`` is not unique).
    """
    text = _patched(mutant, src)
    copy_sources(src, dest)
    (dest / mutant.file).write_text(text, encoding="utf-8")
    return dest


def select_mutants(mutants: Sequence[Mutant], patterns: Sequence[str]) -> list[Mutant]:
    """The mutants whose id, behaviour or file contains any of *patterns* (all if none)."""
    if not patterns:
        return list(mutants)
    return [
        m
        for m in mutants
        if any(p in m.id or p == m.behavior or p in m.file for p in patterns)
    ]
