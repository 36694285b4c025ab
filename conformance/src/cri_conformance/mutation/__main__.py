"""``python -m cri_conformance.mutation``: the mutation gate (``tox -e mutation``).

    python -m cri_conformance.mutation              # every mutant, both profiles as tagged
    python -m cri_conformance.mutation --check      # only validate the mutant files
    python -m cri_conformance.mutation -k AUTH-010 -k tokens.py --jobs 2
    python -m cri_conformance.mutation --shard 1/4  # a quarter of the mutants

Exit status: 0 when the kill rate reaches ``--min-kill`` and every survivor is
explained in its mutant's ``survives`` note; 1 otherwise; 2 when a mutant does not
apply (its ``find`` is not unique), a file is malformed or the baseline fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from cri_conformance.mutation.mutants import (
    Mutant,
    MutantError,
    check_mutants,
    load_mutants,
    select_mutants,
)
from cri_conformance.mutation.report import summarize
from cri_conformance.mutation.runner import (
    KILLED,
    Outcome,
    RunSettings,
    baseline,
    baseline_runs,
    run_mutants,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cri_conformance.mutation",
        description="Run the conformance suite against mutants of refpull.",
    )
    p.add_argument("--repo", type=Path, default=Path.cwd(), help="repository root")
    p.add_argument(
        "--mutants", type=Path, help="mutant directory (conformance/mutants)"
    )
    p.add_argument(
        "--check", action="store_true", help="only validate the mutant files"
    )
    p.add_argument(
        "-k",
        action="append",
        default=[],
        help="only mutants whose id/behavior/file match",
    )
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per suite run")
    p.add_argument("--min-kill", type=float, default=0.95)
    p.add_argument("--shard", help="i/n: run every n-th mutant starting at the i-th")
    p.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    return p


def _shard(items: list[Mutant], spec: str) -> list[Mutant]:
    index, _, total = spec.partition("/")
    i, n = int(index), int(total)
    if not 1 <= i <= n:
        raise ValueError(f"--shard {spec}: write i/n with 1 <= i <= n")
    return items[i - 1 :: n]


def _progress(done: int, total: int, outcome: Outcome) -> None:
    assert outcome.mutant is not None
    tail = outcome.killed_by or outcome.detail
    print(
        f"[{done:3}/{total}] {outcome.status.upper():8} {outcome.mutant.id} "
        f"({outcome.seconds:.0f} s) {tail}",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    repo: Path = args.repo.resolve()
    directory = args.mutants or repo / "conformance" / "mutants"
    src = repo / "reference" / "src"
    try:
        mutants = load_mutants(directory)
    except MutantError as exc:
        print(f"mutation: {exc}", file=sys.stderr)
        return 2
    from cri_conformance.catalog import load_catalog

    problems = check_mutants(mutants, src, (b.id for b in load_catalog()))
    if problems:
        for line in problems:
            print(f"mutation: {line}", file=sys.stderr)
        return 2
    if args.check:
        areas = Counter(m.area for m in mutants)
        print(
            f"{len(mutants)} mutants in {directory}, all apply: "
            + ", ".join(f"{a} {n}" for a, n in sorted(areas.items()))
        )
        return 0
    selected = select_mutants(mutants, args.k)
    if args.shard:
        selected = _shard(selected, args.shard)
    if not selected:
        print("mutation: no mutant selected", file=sys.stderr)
        return 2
    settings = RunSettings(
        src=src, suite=repo / "conformance" / "suite", cwd=repo, timeout=args.timeout
    )
    started = time.monotonic()
    if not args.no_baseline:
        base = baseline(settings, baseline_runs(selected))
        if base.status != "survived":
            print(
                f"mutation: the suite fails against the UNMUTATED reference "
                f"({base.status}: {base.killed_by or base.detail}); fix that first",
                file=sys.stderr,
            )
            return 2
        print(
            f"baseline: the suite passes against an unmutated copy ({base.seconds:.0f} s)"
        )
    print(f"running {len(selected)} mutants, {args.jobs} at a time", flush=True)
    outcomes = run_mutants(selected, settings, jobs=args.jobs, progress=_progress)
    text, ok = summarize(outcomes, min_kill=args.min_kill)
    print(text)
    print(f"wall time {time.monotonic() - started:.0f} s")
    killed = sum(o.status == KILLED for o in outcomes)
    return 0 if ok and killed else 1


if __name__ == "__main__":
    raise SystemExit(main())
