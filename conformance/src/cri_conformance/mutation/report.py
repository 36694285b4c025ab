"""The mutation gate's summary: kill rate, per area, and every survivor with its behaviour."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from cri_conformance.mutation.runner import ERROR, KILLED, SURVIVED, TIMEOUT, Outcome

__all__ = ["summarize"]


def summarize(outcomes: Sequence[Outcome], *, min_kill: float) -> tuple[str, bool]:
    """The summary text, and whether the gate passes.

    The gate passes when killed / all reaches *min_kill*, no survivor lacks a
    ``survives`` note, no explained survivor is in fact killed (its note is stale),
    and no run timed out or broke.
    """
    total = len(outcomes)
    by_status: dict[str, list[Outcome]] = defaultdict(list)
    by_area: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        assert outcome.mutant is not None
        by_status[outcome.status].append(outcome)
        by_area[outcome.mutant.area].append(outcome)
    killed = len(by_status[KILLED])
    rate = killed / total if total else 0.0
    lines = ["", "mutants by area (killed/all):"]
    for area in sorted(by_area):
        group = by_area[area]
        lines.append(
            f"  {area:6} {sum(o.status == KILLED for o in group):3}/{len(group):<3}"
        )
    unexplained = [o for o in by_status[SURVIVED] if not _note(o)]
    explained = [o for o in by_status[SURVIVED] if _note(o)]
    stale = [o for o in by_status[KILLED] if _note(o)]
    for title, group in (
        (
            "SURVIVED, not explained (sharpen a scenario or add a survives note)",
            unexplained,
        ),
        ("survived, explained in the mutant's file", explained),
        ("TIMED OUT (not counted as killed)", by_status[TIMEOUT]),
        ("ERROR (the run itself broke)", by_status[ERROR]),
        ("killed although marked survives (drop the stale note)", stale),
    ):
        if not group:
            continue
        lines.append(f"{title}: {len(group)}")
        for outcome in group:
            mutant = outcome.mutant
            assert mutant is not None
            lines.append(f"  {mutant.id}  [{mutant.behavior}] {mutant.where()}")
            lines.append(f"      why: {mutant.why}")
            if mutant.survives:
                lines.append(f"      survives: {mutant.survives}")
            if outcome.detail or (outcome in stale and outcome.killed_by):
                lines.append(f"      {outcome.detail or outcome.killed_by}")
    ok = (
        total > 0
        and rate >= min_kill
        and not unexplained
        and not stale
        and not by_status[TIMEOUT]
        and not by_status[ERROR]
    )
    lines.append(
        f"kill rate {killed}/{total} = {rate:.1%} (gate {min_kill:.0%}): "
        + ("PASS" if ok else "FAIL")
    )
    return "\n".join(lines), ok


def _note(outcome: Outcome) -> str | None:
    return outcome.mutant.survives if outcome.mutant is not None else None
