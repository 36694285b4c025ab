"""``cri-conformance run --jobs N``: the catalog areas split over N runs side by side.

Each run is a ``cri-conformance run`` of its own (its own world and target) over a
slice of the areas, writing ``<report-dir>/parts/<n>-<areas>/`` (report, JUnit XML,
``log.txt``); the parts are then merged into ``<report-dir>/report.{json,md,html}``.
A case belongs to one area (its first behaviour), so no case runs twice. This is the
one-machine form of the CI split by area (README, "In your runtime's CI"); the
suite's session-wide world and target do not suit pytest-xdist.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from cri_conformance._cli_reports import load_report, merge_reports
from cri_conformance.catalog import AREAS, CatalogError, load_catalog
from cri_conformance.report import write_reports

__all__ = ["run_parallel", "without_options"]

#: Options of ``run`` each part sets for itself (with the number of values they take).
_PER_PART = {"--jobs": 1, "-j": 1, "--report-dir": 1, "--area": 1, "--junit": 1}


def without_options(argv: Sequence[str], options: dict[str, int]) -> list[str]:
    """*argv* without *options* (``--opt value`` and ``--opt=value`` forms)."""
    kept: list[str] = []
    skip = 0
    for arg in argv:
        if skip:
            skip -= 1
            continue
        name = arg.split("=", 1)[0]
        if name in options:
            skip = 0 if "=" in arg else options[name]
            continue
        kept.append(arg)
    return kept


def run_parallel(
    argv: Sequence[str], *, jobs: int, areas: frozenset[str], report_dir: Path
) -> int:
    """Run the ``run`` command line *argv* as *jobs* parts, then merge the reports.

    Returns:
        The worst exit status of the parts that ran cases (0 when all passed), or
        5 (pytest's "no case selected") when none did.
    """
    chosen = [a for a in AREAS if not areas or a in areas]
    slices = [chosen[i::jobs] for i in range(min(jobs, len(chosen)))]
    base = without_options(argv, _PER_PART)
    runs = []
    for n, group in enumerate(slices, 1):
        part = report_dir / "parts" / f"{n}-{'-'.join(group)}"
        part.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "cri_conformance.cli", *base]
        command += ["--area", ",".join(group), "--report-dir", str(part)]
        command += ["--junit", str(part / "junit.xml")]
        with (part / "log.txt").open("w") as log:
            runs.append(
                (group, part, subprocess.Popen(command, stdout=log, stderr=log))
            )
    print(
        f"cri-conformance: {len(runs)} runs side by side; their logs are "
        f"{report_dir}/parts/*/log.txt",
        flush=True,
    )
    codes = []
    for group, part, process in runs:
        codes.append(process.wait())
        print(f"  {','.join(group)}: exit status {codes[-1]} ({part})", flush=True)
    found = [p / "report.json" for _, p, _ in runs if (p / "report.json").is_file()]
    if found:
        merged = merge_reports([load_report(str(p)) for p in found])
        try:
            catalog = load_catalog()
        except (CatalogError, FileNotFoundError):
            catalog = None
        merged = dataclasses.replace(merged, catalog=catalog)
        write_reports(merged, report_dir)
        counts = ", ".join(f"{n} {v}" for v, n in merged.counts().items() if n)
        print(f"cri-conformance: {counts or 'no cases'}; report in {report_dir}")
    # pytest's 5 (no case selected) in a part is no failure while another part ran.
    ran = [c for c in codes if c != pytest.ExitCode.NO_TESTS_COLLECTED]
    return max(ran, default=pytest.ExitCode.NO_TESTS_COLLECTED)
