"""``cri-conformance report`` and ``diff``: work on ``report.json`` files after a run.

``report`` re-renders ``report.md`` and ``report.html`` from one ``report.json``, or
merges several (one per CI job: per runtime, per catalog area) into one report whose
matrix counts every case of every run. ``diff`` lists the cases whose verdict changed
between two runs and exits 1 when one of them now fails the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cri_conformance._cli_common import CLIError
from cri_conformance.catalog import CatalogError, load_catalog
from cri_conformance.evidence import EvidenceItem
from cri_conformance.report import (
    REPORT_FORMAT,
    CaseResult,
    RunReport,
    diff_baseline,
    write_reports,
)
from cri_conformance.verdicts import Verdict, fails_run

__all__ = [
    "add_report_parsers",
    "load_report",
    "merge_reports",
    "run_diff",
    "run_report",
]


def add_report_parsers(sub: Any) -> None:
    """Register ``report`` and ``diff`` on the sub-command parsers *sub*."""
    report = sub.add_parser(
        "report",
        help="re-render report.json, or merge several into one report",
        description="Re-render report.md and report.html from report.json files; "
        "several files (one per CI job) are merged into one report.",
    )
    report.add_argument("reports", nargs="+", metavar="REPORT.json")
    report.add_argument(
        "--out",
        metavar="DIR",
        help="write the rendered report here (default: the directory of the only "
        "REPORT.json; required when merging)",
    )
    diff = sub.add_parser(
        "diff",
        help="list verdict changes between two report.json files",
        description="List the cases whose verdict changed from OLD to NEW. Exit "
        "status 1 when a case that did not fail the run in OLD fails it in NEW.",
    )
    diff.add_argument("old", metavar="OLD.json")
    diff.add_argument("new", metavar="NEW.json")


def _read(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise CLIError(f"{path} is not JSON ({exc}); give a report.json") from exc
    if not isinstance(data, dict) or data.get("format") != REPORT_FORMAT:
        raise CLIError(
            f"{path} is not a {REPORT_FORMAT} report.json; give one written by "
            "cri-conformance run --report-dir"
        )
    return data


def load_report(path: str) -> RunReport:
    """Rebuild the :class:`RunReport` of a ``report.json`` (without its catalog).

    Raises:
        CLIError: unreadable, not JSON, or not a report of this format.
    """
    data = _read(path)
    run = data.get("run", {})
    try:
        cases = tuple(
            CaseResult(
                nodeid=c["nodeid"],
                behaviors=tuple(c["behaviors"]),
                level=c["level"],
                verdict=Verdict(c["verdict"]),
                target=c["target"],
                profile=c["profile"],
                duration=float(c.get("duration", 0.0)),
                evidence=tuple(
                    EvidenceItem(kind=e["kind"], text=e["text"])
                    for e in c.get("evidence", ())
                ),
                message=c.get("message", ""),
            )
            for c in data.get("cases", ())
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CLIError(f"{path}: a case is malformed ({exc})") from exc
    return RunReport(
        target=str(run.get("target", "?")),
        profile=str(run.get("profile", "?")),
        cases=cases,
        started=str(run.get("started", "")),
        duration=float(run.get("duration") or 0.0),
        exit_status=run.get("exit_status"),
    )


def merge_reports(reports: Sequence[RunReport]) -> RunReport:
    """One report holding every case of *reports* (targets and profiles joined)."""

    def joined(values: Sequence[str]) -> str:
        return "+".join(dict.fromkeys(values))

    failed = [r.exit_status for r in reports if r.exit_status]
    return RunReport(
        target=joined([r.target for r in reports]),
        profile=joined([r.profile for r in reports]),
        cases=tuple(c for r in reports for c in r.cases),
        started=min(r.started for r in reports),
        duration=sum(r.duration for r in reports),
        exit_status=max(failed) if failed else 0,
    )


def run_report(args: argparse.Namespace) -> int:
    """Re-render or merge the ``report.json`` files of *args*."""
    reports = [load_report(p) for p in args.reports]
    if args.out is None and len(reports) > 1:
        raise CLIError("merging several reports needs --out DIR")
    out = Path(args.out) if args.out else Path(args.reports[0]).parent
    report = reports[0] if len(reports) == 1 else merge_reports(reports)
    try:
        catalog = load_catalog()
    except (CatalogError, FileNotFoundError):
        catalog = None
    report = dataclasses.replace(report, catalog=catalog)
    try:
        written = write_reports(report, out)
    except OSError as exc:
        raise CLIError(f"cannot write to {out}: {exc.strerror}") from exc
    for path in written:
        print(path)
    return 0


def run_diff(args: argparse.Namespace) -> int:
    """Print the verdict changes from ``args.old`` to ``args.new``."""
    old = {c["nodeid"]: c["verdict"] for c in _read(args.old).get("cases", ())}
    new = load_report(args.new)
    changes = diff_baseline(new.cases, old)
    worse = 0
    for change in changes:
        before, after = change.before or "(absent)", change.after or "(absent)"
        now_fails = change.after is not None and fails_run(Verdict(change.after))
        was_failing = change.before is not None and fails_run(Verdict(change.before))
        mark = "  worse" if now_fails and not was_failing else ""
        worse += bool(mark)
        print(f"{change.nodeid}: {before} -> {after}{mark}")
    print(f"{len(changes)} changed, {worse} now failing the run", file=sys.stderr)
    return 1 if worse else 0
