"""Run the suite against mutated copies of refpull, in parallel, and tally the kills.

Each mutant is applied to a copy of ``reference/src/refpull`` in a temp directory and
the suite runs against ``--target reference`` (or the mutant's ``target``, such as
``reference-grpc`` for a mutant of the CRI server) once per profile the mutant names, with
the copy first on ``PYTHONPATH`` (the run refuses to start if another refpull is
imported: see :mod:`cri_conformance.mutation._first`). A mutant is *killed* when any
of those runs fails or shows a lenient verdict (a SHOULD case NON-STRICT, a MAY case
INFORMATIONAL), *survives* when all pass, and *times out* when a run outlives
its deadline; a timeout is reported on its own and never counted as a kill.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from cri_conformance.mutation.mutants import Mutant, apply_mutant, copy_sources

__all__ = [
    "Outcome",
    "RunSettings",
    "baseline",
    "baseline_runs",
    "run_mutant",
    "run_mutants",
]

KILLED, SURVIVED, TIMEOUT, ERROR = "killed", "survived", "timeout", "error"
#: pytest exit codes: 1 tests failed, 2 interrupted (a collection error).
_FAILED = (1, 2)


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """Where things are and how long a run may take."""

    src: Path  # reference/src
    suite: Path  # conformance/suite
    cwd: Path  # the repository root (pytest reads its ini options there)
    timeout: float = 600.0
    extra_args: tuple[str, ...] = ()


@dataclass(kw_only=True)
class Outcome:
    """What happened to one mutant (or to the unmutated baseline)."""

    mutant: Mutant | None
    status: str
    seconds: float = 0.0
    killed_by: str = ""  # "profile: first failing test"
    runs: dict[str, int | None] = field(default_factory=dict)  # profile -> exit code
    detail: str = ""


def _command(
    settings: RunSettings, copy: Path, target: str, profile: str, first: str
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        str(settings.suite),
        "--target",
        target,
        "--profile",
        profile,
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "cri_conformance.mutation._first",
        "--mutation-src",
        str(copy),
        *(["--mutation-first", first] if first else []),
        *settings.extra_args,
    ]


def _environment(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    inherited = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(copy) + (os.pathsep + inherited if inherited else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


#: The graded run's lenient verdicts (plugin.py ``_STATUS``): a SHOULD case that fails is
#: NON-STRICT, a MAY case INFORMATIONAL; both leave pytest's exit status at 0.
_LENIENT = re.compile(r"\b(\d+) (nonstrict|informational)\b")


def _lenient_failures(output: str) -> str:
    """The lenient verdicts in pytest's last summary line ("2 nonstrict"), or ""."""
    summary = [line for line in output.splitlines() if line.strip()][-1:]
    found = _LENIENT.findall(summary[0]) if summary else []
    return ", ".join(f"{count} {kind}" for count, kind in found)


def _first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" - ", 1)[0].split(" ", 1)[1]
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _run_profiles(
    settings: RunSettings,
    copy: Path,
    runs: Sequence[tuple[str, str]],
    first: str,
) -> Outcome:
    """Run the suite once per (target, profile) in *runs*; stop at the first kill."""
    outcome = Outcome(mutant=None, status=SURVIVED)
    for target, profile in runs:
        # The key in outcome.runs and in messages: the profile, and a target of its own.
        key = profile if target == "reference" else f"{profile} ({target})"
        try:
            proc = subprocess.run(
                _command(settings, copy, target, profile, first),
                cwd=settings.cwd,
                env=_environment(copy),
                capture_output=True,
                text=True,
                timeout=settings.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            outcome.runs[key] = None
            outcome.status = TIMEOUT
            outcome.detail = f"{key}: no result after {settings.timeout:.0f} s"
            continue
        outcome.runs[key] = proc.returncode
        output = proc.stdout + proc.stderr
        if proc.returncode in _FAILED:
            outcome.status = KILLED
            outcome.killed_by = f"{key}: {_first_failure(output)}"
            return outcome
        if proc.returncode == 0 and (lenient := _lenient_failures(output)):
            # The report shows a SHOULD or MAY case failing: the suite saw the
            # mutant, though the graded run still passes (and an unmutated baseline
            # with such a verdict is refused like a failing one).
            outcome.status = KILLED
            outcome.killed_by = f"{key}: {lenient} (lenient verdicts, exit 0)"
            return outcome
        if proc.returncode != 0:
            outcome.status = ERROR
            outcome.detail = f"{key}: pytest exit {proc.returncode}: " + (
                _first_failure(output)
            )
            return outcome
    return outcome


def run_mutant(mutant: Mutant, settings: RunSettings) -> Outcome:
    """Apply *mutant* to a fresh copy and run the suite under each of its profiles."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutant.id[:40]}-") as tmp:
        copy = apply_mutant(mutant, settings.src, Path(tmp) / "src")
        runs = [(mutant.target, profile) for profile in mutant.profiles]
        outcome = _run_profiles(settings, copy, runs, mutant.behavior)
    outcome.mutant = mutant
    outcome.seconds = time.monotonic() - started
    return outcome


def baseline_runs(mutants: Sequence[Mutant]) -> list[tuple[str, str]]:
    """The (target, profile) runs the baseline needs to vouch for *mutants*' kills."""
    return sorted({(m.target, p) for m in mutants for p in m.profiles})


def baseline(settings: RunSettings, runs: Sequence[tuple[str, str]]) -> Outcome:
    """Run the suite against an unmutated copy: it must pass, or no kill means anything.

    *runs* are (target, profile) pairs, as :func:`baseline_runs` lists them.
    """
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutant-baseline-") as tmp:
        copy = copy_sources(settings.src, Path(tmp) / "src")
        outcome = _run_profiles(settings, copy, runs, "")
    outcome.seconds = time.monotonic() - started
    return outcome


def run_mutants(
    mutants: Sequence[Mutant],
    settings: RunSettings,
    *,
    jobs: int,
    progress: Callable[[int, int, Outcome], None] | None = None,
) -> list[Outcome]:
    """Run every mutant, *jobs* at a time; outcomes come back in *mutants* order."""
    outcomes: dict[str, Outcome] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(run_mutant, m, settings): m for m in mutants}
        for done, future in enumerate(as_completed(futures), start=1):
            outcome = future.result()
            outcomes[futures[future].id] = outcome
            if progress is not None:
                progress(done, len(mutants), outcome)
    return [outcomes[m.id] for m in mutants]
