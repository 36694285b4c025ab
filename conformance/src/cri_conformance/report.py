"""The run report: ``report.json``, ``report.md`` and ``report.html`` from graded cases.

The three renderings carry the same content, built once as a neutral document
(:mod:`cri_conformance._render`): security findings first, then the summary, changes
since a baseline, the behaviour x verdict matrix by area, every case that did not pass
with its evidence, and catalog coverage. Every text goes through
:func:`cri_conformance.evidence.redact` on its way out. JUnit XML is pytest's own
``--junitxml``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cri_conformance._render import Doc, Para, Pre, Section, Table, to_html, to_markdown
from cri_conformance.catalog import AREAS, Catalog
from cri_conformance.evidence import EvidenceItem, redact
from cri_conformance.verdicts import Verdict, is_security_finding

__all__ = [
    "REPORT_FORMAT",
    "CaseResult",
    "Change",
    "RunReport",
    "diff_baseline",
    "headline",
    "load_baseline",
    "render_html",
    "render_json",
    "render_markdown",
    "write_reports",
]

REPORT_FORMAT = "cri-pull-conformance/report-1"
_EMPTY_EVIDENCE = frozenset({"", "(none)", "(no requests)"})
_ORDER = tuple(Verdict)


@dataclass(frozen=True, kw_only=True)
class CaseResult:
    """One graded test case."""

    nodeid: str
    behaviors: tuple[str, ...]
    level: str
    verdict: Verdict
    target: str
    profile: str
    duration: float = 0.0
    evidence: tuple[EvidenceItem, ...] = ()
    message: str = ""
    #: The expectations file's reason when the case is a listed deviation.
    expected: str = ""

    def to_json(self) -> dict[str, Any]:
        """The case as JSON-ready data, redacted."""
        return {
            "nodeid": self.nodeid,
            "behaviors": list(self.behaviors),
            "level": self.level,
            "verdict": str(self.verdict),
            "target": self.target,
            "profile": self.profile,
            "duration": round(self.duration, 4),
            "message": redact(self.message),
            "expected": redact(self.expected),
            "evidence": [
                {"kind": e.kind, "text": redact(e.text)} for e in self.evidence
            ],
        }


@dataclass(frozen=True, kw_only=True)
class Change:
    """A case whose verdict differs from the baseline (None: absent on that side)."""

    nodeid: str
    before: str | None
    after: str | None


@dataclass(frozen=True, kw_only=True)
class RunReport:
    """Everything one run reports."""

    target: str
    profile: str
    cases: tuple[CaseResult, ...]
    started: str = ""
    duration: float = 0.0
    exit_status: int | None = None
    catalog: Catalog | None = None
    baseline: Mapping[str, str] | None = field(default=None)

    def counts(self) -> dict[str, int]:
        """Number of cases per verdict, every verdict listed."""
        found = Counter(c.verdict for c in self.cases)
        return {str(v): found.get(v, 0) for v in _ORDER}

    def _levels(self, case: CaseResult) -> list[str]:
        if self.catalog is None:
            return [case.level]
        return [b.level for bid in case.behaviors if (b := self.catalog.get(bid))]

    def security_findings(self) -> list[dict[str, Any]]:
        """Cases where a SECURITY behaviour is not met (XFAIL included)."""
        findings = []
        for case in self.cases:
            if not is_security_finding(
                self._levels(case) or [case.level], case.verdict
            ):
                continue
            ids = [
                bid for bid in case.behaviors
                if self.catalog is None or (b := self.catalog.get(bid)) is None
                or b.level == "SECURITY"
            ]  # fmt: skip
            findings.append(
                {
                    "nodeid": case.nodeid,
                    "behaviors": ids or list(case.behaviors),
                    "verdict": str(case.verdict),
                    "message": redact(case.message),
                }
            )
        return findings

    def changes(self) -> list[Change]:
        """Verdict changes against the baseline (empty without one)."""
        return (
            diff_baseline(self.cases, self.baseline)
            if self.baseline is not None
            else []
        )


def diff_baseline(
    cases: Iterable[CaseResult], baseline: Mapping[str, str]
) -> list[Change]:
    """Compare verdicts by node id with a baseline ``{nodeid: verdict}``.

    Returns:
        One :class:`Change` per case whose verdict changed, appeared or disappeared,
        sorted by node id.
    """
    now = {c.nodeid: str(c.verdict) for c in cases}
    return [
        Change(nodeid=n, before=baseline.get(n), after=now.get(n))
        for n in sorted(set(now) | set(baseline))
        if baseline.get(n) != now.get(n)
    ]


def load_baseline(path: Path | str) -> dict[str, str]:
    """Read ``{nodeid: verdict}`` from an earlier ``report.json``.

    Raises:
        ValueError: the file is not a report of this format.
        OSError: the file cannot be read.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != REPORT_FORMAT:
        raise ValueError(f"{path}: not a {REPORT_FORMAT} report")
    return {c["nodeid"]: c["verdict"] for c in data.get("cases", [])}


def render_json(report: RunReport) -> str:
    """The report as JSON text (``report.json``)."""
    data: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "run": {
            "target": report.target,
            "profile": report.profile,
            "started": report.started,
            "duration": round(report.duration, 3),
            "exit_status": report.exit_status,
        },
        "summary": {
            "total": len(report.cases),
            "verdicts": report.counts(),
            "headline": headline(report),
        },
        "security_findings": report.security_findings(),
        "cases": [c.to_json() for c in report.cases],
    }
    if report.baseline is not None:
        data["changes"] = [
            {"nodeid": c.nodeid, "before": c.before, "after": c.after}
            for c in report.changes()
        ]
    if report.catalog is not None:
        data["coverage"] = _coverage_data(report)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _area_of(bid: str) -> str:
    return bid.rsplit("-", 1)[0] if "-" in bid else "?"


def _coverage_data(report: RunReport) -> dict[str, Any]:
    assert report.catalog is not None
    shown = {bid for c in report.cases for bid in c.behaviors}
    areas = {}
    for area in AREAS:
        members = report.catalog.areas[area]
        areas[area] = {
            "exercised": sum(1 for b in members if b.id in shown),
            "total": len(members),
        }
    strict_missing = [b.id for b in report.catalog if b.strict and b.id not in shown]
    return {"areas": areas, "unexercised_must_security": strict_missing}


_SHOWN = frozenset({Verdict.PASS, Verdict.XPASS})
_BROKEN = frozenset({Verdict.FAIL, Verdict.XFAIL, Verdict.CRASH})
_NOT_SHOWN = (Verdict.UNSUPPORTED, Verdict.ERROR, Verdict.SKIPPED)


def headline(report: RunReport) -> str:
    """One sentence on what the run proves; it never says more than the cases show."""
    decided = [c for c in report.cases if c.verdict not in _NOT_SHOWN]
    if not report.cases:
        return "No cases ran: this run proves nothing."
    if not decided:
        kinds = sorted({str(c.verdict) for c in report.cases})
        return (
            f"This run proves nothing: every one of {len(report.cases)} cases is "
            f"{' or '.join(kinds)}."
        )
    held, failed, unshown = _security_status(report)
    return (
        f"{len(decided)} of {len(report.cases)} cases reached a verdict. SECURITY "
        f"behaviours: {len(held)} shown to hold, {len(failed)} failed, "
        f"{len(unshown)} not shown."
    )


def _security_status(
    report: RunReport,
) -> tuple[list[str], list[str], dict[str, str]]:
    """SECURITY behaviours: shown to hold, failed, not shown (with why)."""
    verdicts: dict[str, set[Verdict]] = {}
    for case in report.cases:
        for bid in case.behaviors:
            entry = report.catalog.get(bid) if report.catalog else None
            level = entry.level if entry else case.level
            if level == "SECURITY":
                verdicts.setdefault(bid, set()).add(case.verdict)
    if report.catalog is not None:
        for b in report.catalog:
            if b.level == "SECURITY":
                verdicts.setdefault(b.id, set())
    held, failed, unshown = [], [], {}
    for bid in sorted(verdicts):
        seen = verdicts[bid]
        if seen & _BROKEN:
            failed.append(bid)
        elif seen and seen <= _SHOWN:
            held.append(bid)  # every case of it passed: nothing left unshown
        else:
            why = "/".join(str(v) for v in _NOT_SHOWN if v in seen) or "no case ran"
            if seen & _SHOWN:
                why = f"partly: {why}"
            unshown[bid] = why
    return held, failed, unshown


def _document(report: RunReport) -> Doc:
    title = f"CRI pull conformance: {report.target} ({report.profile})"
    intro = Para(
        f"**{headline(report)}** Target `{report.target}`, profile "
        f"`{report.profile}`, {len(report.cases)} cases"
        + (f", started {report.started}" if report.started else "")
        + f", {report.duration:.1f} s."
    )
    sections = [_summary_section(report), _security_section(report)]
    if report.baseline is not None:
        sections.append(_changes_section(report))
    sections += [_details_section(report), _matrix_section(report)]
    if report.catalog is not None:
        sections.append(_coverage_section(report))
    return Doc(title=title, intro=(intro,), sections=tuple(sections))


def _security_section(report: RunReport) -> Section:
    findings = report.security_findings()
    held, failed, unshown = _security_status(report)
    status = (
        Para(f"Shown to hold ({len(held)}): " + (", ".join(held) or "none") + "."),
        Para(f"Failed ({len(failed)}): " + (", ".join(failed) or "none") + "."),
        Para(
            f"Not shown ({len(unshown)}): "
            + (", ".join(f"{b} ({w})" for b, w in unshown.items()) or "none")
            + "."
        ),
    )
    if not findings:
        return Section("Security findings", (*status, Para("No case failed.")))
    expected = {c.nodeid: c.expected for c in report.cases}
    rows = []
    for f in findings:
        ids = ", ".join(f["behaviors"])
        title = ""
        if report.catalog is not None:
            title = "; ".join(
                b.title for i in f["behaviors"] if (b := report.catalog.get(i))
            )
        why = expected.get(f["nodeid"]) or _brief(f["message"])
        rows.append((ids, title, f["verdict"], f["nodeid"], why))
    header = ("behaviour", "title", "verdict", "case", "reason (evidence below)")
    return Section("Security findings", (*status, Table(header, tuple(rows))))


def _brief(message: str, limit: int = 200) -> str:
    """One line of at most *limit* characters for a table cell."""
    line = " ".join(str(message).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _summary_section(report: RunReport) -> Section:
    counts = report.counts()
    rows = tuple((v, str(n)) for v, n in counts.items() if n)
    blocks: tuple[Para | Table, ...] = (
        (Table(("verdict", "cases"), rows),) if rows else ()
    )
    return Section("Summary", blocks or (Para("No cases ran."),))


def _changes_section(report: RunReport) -> Section:
    changes = report.changes()
    if not changes:
        return Section("Changes since baseline", (Para("No verdict changed."),))
    rows = tuple((c.nodeid, c.before or "(new)", c.after or "(gone)") for c in changes)
    return Section(
        "Changes since baseline", (Table(("case", "before", "after"), rows),)
    )


def _matrix_section(report: RunReport) -> Section:
    per_behavior: dict[str, Counter[str]] = {}
    for case in report.cases:
        for bid in case.behaviors or ("(untagged)",):
            per_behavior.setdefault(bid, Counter())[str(case.verdict)] += 1
    used = [str(v) for v in _ORDER if any(str(v) in c for c in per_behavior.values())]
    blocks: list[Para | Table] = []
    areas = [*AREAS, *sorted({_area_of(b) for b in per_behavior} - set(AREAS))]
    for area in areas:
        ids = sorted(b for b in per_behavior if _area_of(b) == area)
        if not ids:
            continue
        rows = []
        for bid in ids:
            entry = report.catalog.get(bid) if report.catalog else None
            level, title = (entry.level, entry.title) if entry else ("", "")
            counts = per_behavior[bid]
            rows.append((bid, level, title, *(str(counts.get(v, "")) for v in used)))
        total = Counter(
            str(c.verdict)
            for c in report.cases
            if any(_area_of(b) == area for b in c.behaviors or ("(untagged)",))
        )
        rows.append(
            (
                "cases",
                "",
                f"{sum(total.values())} cases ({len(ids)} behaviours; a case with "
                "several tags counts once here)",
                *(str(total.get(v, "")) for v in used),
            )
        )
        blocks += [
            Para(f"**{area}**"),
            Table(("behaviour", "level", "title", *used), tuple(rows), grid_from=3),
        ]
    return Section(
        "Behaviour x verdict matrix", tuple(blocks) or (Para("No cases ran."),)
    )


def _details_section(report: RunReport) -> Section:
    blocks: list[Para | Pre] = []
    for case in report.cases:
        if case.verdict is Verdict.PASS:
            continue
        ids = ", ".join(case.behaviors) or "untagged"
        blocks.append(Para(f"**{case.verdict}** `{case.nodeid}` ({ids}, {case.level})"))
        if case.expected:
            blocks.append(Para("Expected: " + case.expected))
        if case.message:
            blocks.append(Pre(redact(case.message), label="message"))
        if case.verdict in (Verdict.SKIPPED, Verdict.UNSUPPORTED):
            continue  # nothing ran: no evidence to show
        blocks += [
            Pre(redact(e.text), label=e.kind)
            for e in case.evidence
            if e.text.strip() not in _EMPTY_EVIDENCE
        ]
    return Section(
        "Cases that did not pass", tuple(blocks) or (Para("Every case passed."),)
    )


def _coverage_section(report: RunReport) -> Section:
    data = _coverage_data(report)
    rows = tuple(
        (a, str(v["exercised"]), str(v["total"])) for a, v in data["areas"].items()
    )
    missing = data["unexercised_must_security"]
    note = Para(
        f"{len(missing)} MUST/SECURITY behaviours had no case in this run"
        + (": " + ", ".join(missing) if missing else ".")
        + " (This list is about the run. The coverage gate, `python -m "
        "cri_conformance.coverage gate`, lists behaviours with no tagged test in "
        "any test tree, unit tests included, so its list can be shorter.)"
    )
    return Section("Coverage", (Table(("area", "exercised", "total"), rows), note))


def render_markdown(report: RunReport) -> str:
    """The report as Markdown (``report.md``)."""
    return to_markdown(_document(report))


def render_html(report: RunReport) -> str:
    """The report as one self-contained HTML page (``report.html``)."""
    return to_html(_document(report))


def write_reports(report: RunReport, directory: Path | str) -> Sequence[Path]:
    """Write ``report.json``, ``report.md`` and ``report.html`` into *directory*.

    Returns:
        The paths written.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, render in (
        ("report.json", render_json),
        ("report.md", render_markdown),
        ("report.html", render_html),
    ):
        path = out / name
        path.write_text(render(report), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cri_conformance.report merge REPORT.json... --out DIR``.

    Returns:
        0 when the matrix was written, 2 on a bad report file.
    """
    import argparse
    import sys

    from cri_conformance.matrix import write_matrix

    parser = argparse.ArgumentParser(prog="python -m cri_conformance.report")
    sub = parser.add_subparsers(dest="command", required=True)
    merge = sub.add_parser("merge", help="merge report.json files into one matrix")
    merge.add_argument("reports", nargs="+", type=Path)
    merge.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        written = write_matrix(args.reports, args.out)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"cannot merge: {exc}\n")
        return 2
    sys.stdout.write("".join(f"wrote {p}\n" for p in written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
