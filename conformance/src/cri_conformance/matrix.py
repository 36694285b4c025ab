"""The cross-runtime matrix: several ``report.json`` files merged into one report.

Issue 10 item 6: a cluster operator planning an upgrade reads behaviour x runtime, a
verdict in each cell, security first, then the behaviours every CRI runtime owes
(catalog ``scope`` "cri"), then each area, and a "changed between versions" view for
consecutive runtimes of one family (what 1.7 fixed or broke relative to 1.6)::

    python -m cri_conformance.report merge reports/*/report.json --out reports/matrix

A runtime is named by the directory its ``report.json`` sits in (``containerd-1.7.34``);
the family is that name without its trailing version, and runtimes are ordered by
family, then by version compared numerically. A cell is the worst verdict among the
cases tagged with the behaviour in that run; an empty cell means no case ran it.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cri_conformance._render import Doc, Para, Section, Table, to_html, to_markdown
from cri_conformance.catalog import AREAS, Catalog, load_catalog
from cri_conformance.verdicts import Verdict, worst

__all__ = ["RuntimeRun", "load_run", "matrix_document", "version_key", "write_matrix"]

_FORMAT = "cri-pull-conformance/report-1"  # report.REPORT_FORMAT (no import cycle)
#: ``containerd-1.7.34``; ``containerd-seed`` is its family's oldest (containerd/cri
#: ab6701bd, the 1.3 era), so the "changed between versions" view starts from it.
_VERSION = re.compile(r"^(?P<family>.*?)-(?P<version>\d+(?:\.\d+)*|seed)$")
_BAD = frozenset({Verdict.FAIL, Verdict.XFAIL, Verdict.CRASH})
_GOOD = frozenset({Verdict.PASS, Verdict.XPASS})


@dataclass(frozen=True)
class RuntimeRun:
    """One runtime's run: its name and the worst verdict per behaviour."""

    name: str
    target: str
    profile: str
    cells: dict[str, Verdict]
    headline: str = ""

    @property
    def family(self) -> str:
        match = _VERSION.match(self.name)
        return match["family"] if match else self.name


def version_key(name: str) -> tuple[str, tuple[int, ...], str]:
    """Sort key: family, then the numeric version (``1.10`` after ``1.9``)."""
    match = _VERSION.match(name)
    if not match:
        return (name, (), name)
    text = match["version"]
    version = (0,) if text == "seed" else tuple(int(p) for p in text.split("."))
    return (match["family"], version, name)


def load_run(path: Path | str) -> RuntimeRun:
    """Read one ``report.json``; the runtime is named by its directory.

    Raises:
        ValueError: the file is not a report of this format.
        OSError: it cannot be read.
    """
    source = Path(path)
    data = json.loads(source.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ValueError(f"{source}: not a {_FORMAT} report")
    seen: dict[str, list[Verdict]] = {}
    for case in data.get("cases", []):
        for bid in case.get("behaviors", []):
            seen.setdefault(bid, []).append(Verdict(case["verdict"]))
    run = data.get("run", {})
    return RuntimeRun(
        name=source.parent.name or str(source),
        target=str(run.get("target", "")),
        profile=str(run.get("profile", "")),
        cells={bid: worst(verdicts) for bid, verdicts in seen.items()},
        headline=str(data.get("summary", {}).get("headline", "")),
    )


def _changes(runs: Sequence[RuntimeRun]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for before, after in itertools.pairwise(runs):
        if before.family != after.family:
            continue
        for bid in sorted(set(before.cells) | set(after.cells)):
            old, new = before.cells.get(bid), after.cells.get(bid)
            if old == new:
                continue
            if old in _BAD and new in _GOOD:
                what = "fixed"
            elif old in _GOOD and new in _BAD:
                what = "broke"
            else:
                what = "changed"
            rows.append(
                (
                    f"{before.name} to {after.name}",
                    bid,
                    what,
                    str(old or "-"),
                    str(new or "-"),
                )
            )
    return rows


def matrix_document(runs: Sequence[RuntimeRun], catalog: Catalog) -> Doc:
    """The merged report as a neutral document (see :mod:`cri_conformance._render`)."""
    ordered = sorted(runs, key=lambda r: version_key(r.name))
    names = tuple(r.name for r in ordered)

    def rows(ids: Sequence[str]) -> tuple[tuple[str, ...], ...]:
        return tuple(
            (
                bid,
                catalog.by_id[bid].level if bid in catalog.by_id else "",
                catalog.by_id[bid].title if bid in catalog.by_id else "",
                *(str(r.cells.get(bid, "")) for r in ordered),
            )
            for bid in ids
            if any(bid in r.cells for r in ordered)
        )

    header = ("behaviour", "level", "title", *names)
    security = [b.id for b in catalog if b.level == "SECURITY"]
    cri = [b.id for b in catalog if b.scope == "cri" and b.level != "SECURITY"]
    runs_para = Para(
        "Runtimes: "
        + "; ".join(f"`{r.name}` ({r.profile}): {r.headline}" for r in ordered)
    )
    sections = [
        Section("Security behaviours", (Table(header, rows(security), grid_from=3),)),
        Section("CRI-wide behaviours", (Table(header, rows(cri), grid_from=3),)),
    ]
    changes = _changes(ordered)
    sections.append(
        Section(
            "Changed between versions",
            (
                Table(
                    ("versions", "behaviour", "change", "before", "after"),
                    tuple(changes),
                ),
            )
            if changes
            else (Para("No verdict changed between consecutive versions."),),
        )
    )
    done = set(security) | set(cri)
    for area in AREAS:
        ids = [b.id for b in catalog.areas.get(area, ()) if b.id not in done]
        table = rows(ids)
        if table:
            sections.append(
                Section(f"Area {area}", (Table(header, table, grid_from=3),))
            )
    return Doc(
        title="CRI pull conformance: runtime matrix",
        intro=(runs_para,),
        sections=tuple(sections),
    )


def write_matrix(
    paths: Sequence[Path | str], out: Path | str, *, catalog: Catalog | None = None
) -> list[Path]:
    """Merge *paths* into ``matrix.md`` and ``matrix.html`` under *out*."""
    doc = matrix_document([load_run(p) for p in paths], catalog or load_catalog())
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, render in (("matrix.md", to_markdown), ("matrix.html", to_html)):
        path = target / name
        path.write_text(render(doc), encoding="utf-8")
        written.append(path)
    return written
