"""pytest plugin (``pytest11`` entry point): suite options, catalog checks, verdicts, report.

It loads in every pytest run of the repository, so everything beyond three cheap things
is off until a suite option is given:

* always: the ``behavior`` marker's IDs are checked against the catalog at collection
  (an unknown ID is a usage error), the ``evidence`` and ``suite_options`` fixtures
  exist, and the Hypothesis profiles ``dev``/``ci``/``thorough`` are registered and
  ``HYPOTHESIS_PROFILE`` (default ``dev``) is loaded;
* graded mode, on as soon as ``--target``, ``--profile``, ``--report-dir``,
  ``--expectations``, ``--baseline`` or ``--compare-with`` is given: verdicts per
  :mod:`cri_conformance.verdicts` (a failed SHOULD is reported passed with status
  ``N``, a failed MAY with ``I``, an ``unsupported:`` skip with ``U``, a crash with
  ``C``), known deviations are matched by their failure signature (see
  :mod:`cri_conformance.expectations`: the recorded failure is XFAIL, another failure
  stays FAIL/ERROR with a note, a pass is XPASS), and ``--report-dir`` gets the report.

Options and Hypothesis profiles live in :mod:`cri_conformance.options`, the only
module below tox.ini that reads environment variables.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from cri_conformance._signals import interrupt_on_sigterm
from cri_conformance.catalog import Catalog, CatalogError, family_of, load_catalog
from cri_conformance.evidence import Evidence, redact
from cri_conformance.expectations import (
    Deviation,
    Expectations,
    ExpectationsError,
    Failure,
    load_expectations,
)
from cri_conformance.options import (
    SuiteOptions,
    add_options,
    register_hypothesis_profiles,
    resolve_options,
)
from cri_conformance.report import CaseResult, RunReport, load_baseline, write_reports
from cri_conformance.targets.base import TargetCrashed, TargetError
from cri_conformance.verdicts import (
    Outcome,
    Verdict,
    fails_run,
    grade,
    is_security_finding,
    strictest,
    worst,
)

__all__ = [
    "EVIDENCE_KEY",
    "OPTIONS_KEY",
    "behavior_ids",
    "evidence",
    "suite_options",
]

_STATUS = {
    Verdict.NON_STRICT: ("nonstrict", "N", "NON-STRICT"),
    Verdict.INFORMATIONAL: ("informational", "I", "INFORMATIONAL"),
    Verdict.UNSUPPORTED: ("unsupported", "U", "UNSUPPORTED"),
    Verdict.CRASH: ("failed", "C", "CRASH"),
    # Only a teardown that re-grades a provisional XFAIL carries FAIL (not an error).
    Verdict.FAIL: ("failed", "F", "FAILED"),
}
_MAX_TEXT = 20_000
_BROKEN = frozenset({Outcome.FAILED, Outcome.ERROR, Outcome.CRASHED, Outcome.XFAILED})


OPTIONS_KEY = pytest.StashKey[SuiteOptions]()
EVIDENCE_KEY = pytest.StashKey[Evidence]()
_DEVIATION_KEY = pytest.StashKey[Deviation]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "behavior(*ids): catalog behaviour IDs a test shows (checked)"
    )
    register_hypothesis_profiles()
    # A CI timeout's SIGTERM must still tear down runtimes and temp dirs (issue 12).
    config.add_cleanup(interrupt_on_sigterm())
    options = resolve_options(config)
    config.stash[OPTIONS_KEY] = options
    config.pluginmanager.register(_Conformance(options), "cri-conformance-session")


def behavior_ids(item: pytest.Item) -> tuple[str, ...]:
    """The catalog IDs of all ``behavior`` marks on *item*, first occurrence first."""
    ids: dict[str, None] = {}
    for mark in item.iter_markers("behavior"):
        ids.update((str(arg), None) for arg in mark.args)
    return tuple(ids)


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Evidence:
    """Evidence for this case: ``evidence.add("journal", text)``; kept in the report."""
    collected = Evidence()
    request.node.stash[EVIDENCE_KEY] = collected
    return collected


@pytest.fixture(scope="session")
def suite_options(request: pytest.FixtureRequest) -> SuiteOptions:
    """The resolved suite options (target, profile, endpoints …)."""
    return request.config.stash[OPTIONS_KEY]


@dataclass
class _Case:
    behaviors: tuple[str, ...]
    levels: list[str]
    verdicts: list[Verdict] = field(default_factory=list)
    duration: float = 0.0
    message: str = ""
    extra: Evidence = field(default_factory=Evidence)
    #: A deviation listed for the case: (its reason, a note when it did not match).
    expected: str = ""
    note: str = ""
    #: A call failure whose evidence signature is checked once the evidence is in.
    pending: Failure | None = None


class _Conformance:
    """Per-session state and the hooks that need it."""

    def __init__(self, options: SuiteOptions) -> None:
        self.options = options
        self.catalog: Catalog | None = None
        self.cases: dict[str, _Case] = {}
        self.results: list[CaseResult] = []
        self.started = time.time()
        self.expectations: Expectations | None = None
        self.baseline: dict[str, str] | None = None
        #: (family, number of cases deselected because no behaviour binds it).
        self.out_of_scope: tuple[str, int] | None = None

    def _catalog(self) -> Catalog:
        if self.catalog is None:
            try:
                self.catalog = load_catalog()
            except (CatalogError, FileNotFoundError) as exc:
                raise pytest.UsageError(
                    f"cannot load the behaviour catalog: {exc}"
                ) from exc
        return self.catalog

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        options = self.options
        if options.expectations is not None:
            try:
                known = self._catalog().by_id
                self.expectations = load_expectations(
                    options.expectations, known_ids=known
                )
            except ExpectationsError as exc:
                raise pytest.UsageError(str(exc)) from exc
            if self.expectations.target != options.target:
                raise pytest.UsageError(
                    f"{options.expectations} lists deviations of target "
                    f"{self.expectations.target!r}, but --target is {options.target!r}"
                )
        if options.baseline is not None:
            try:
                self.baseline = load_baseline(options.baseline)
            except (OSError, ValueError) as exc:
                raise pytest.UsageError(f"--baseline: {exc}") from exc

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, object, object]:
        """A target that cannot be made or reached ends the run, once.

        A binary or an option is missing, or the endpoint does not answer. The
        session-scoped ``target`` fixture would otherwise re-raise the same error
        for every case: one line, once, and pytest exits with status 4.
        """
        try:
            return (yield)
        except (FileNotFoundError, ValueError) as exc:
            if fixturedef.argname != "target":
                raise
            pytest.exit(
                f"cri-conformance: {exc}", returncode=pytest.ExitCode.USAGE_ERROR
            )
        except grpc.RpcError as exc:
            if fixturedef.argname != "target" or (
                exc.code() is not grpc.StatusCode.UNAVAILABLE
            ):
                raise
            endpoint = self.options.cri_endpoint
            pytest.exit(
                f"cri-conformance: the runtime at {endpoint} does not answer "
                f"({exc.details()}); start it or check --cri-endpoint",
                returncode=pytest.ExitCode.USAGE_ERROR,
            )

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        problems = []
        for item in items:
            for mark in item.iter_markers("behavior"):
                if not mark.args:
                    problems.append(f"{item.nodeid}: behavior mark without an ID")
                unknown = [a for a in mark.args if a not in self._catalog()]
                if unknown:
                    problems.append(f"{item.nodeid}: unknown behaviour ID(s) {unknown}")
        if problems:
            raise pytest.UsageError(
                "behaviour tags not in the catalog:\n  " + "\n  ".join(problems)
            )
        if self.options.graded:
            self._drop_out_of_scope(items)
        if self.expectations is None:
            return
        for item in items:
            names = (item.name, getattr(item, "originalname", item.name), item.nodeid)
            deviation = self.expectations.find(names, behavior_ids(item))
            if deviation is not None:
                item.stash[_DEVIATION_KEY] = deviation

    def _drop_out_of_scope(self, items: list[pytest.Item]) -> None:
        """Deselect cases whose every behaviour binds another runtime family.

        A behaviour's ``scope`` says which runtimes it binds (``cri``: all of them);
        the target is graded only against those, so a containerd-only case is not
        run against CRI-O and a CRI-O-only case not against containerd.
        """
        family = family_of(self.options.profile)
        keep: list[pytest.Item] = []
        drop: list[pytest.Item] = []
        for item in items:
            ids = behavior_ids(item)
            binding = [i for i in ids if self._binds(i)]
            (keep if binding or not ids else drop).append(item)
        if drop:
            self.out_of_scope = (family, len(drop))
            items[:] = keep
            drop[0].config.hook.pytest_deselected(items=drop)

    def _binds(self, behavior_id: str) -> bool:
        b = self._catalog().get(behavior_id)
        return b is not None and b.binds(family_of(self.options.profile))

    def _case(self, item: pytest.Item) -> _Case:
        case = self.cases.get(item.nodeid)
        if case is None:
            ids = behavior_ids(item)
            if self.options.graded:
                # A case tagged with several behaviours is graded by those that bind.
                ids = tuple(i for i in ids if self._binds(i)) or ids
            levels = []
            if ids:
                levels = [
                    b.level for i in ids if (b := self._catalog().get(i)) is not None
                ]
            case = self.cases[item.nodeid] = _Case(behaviors=ids, levels=levels)
        return case

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        case = self._case(item)
        case.duration += report.duration
        deviation = item.stash.get(_DEVIATION_KEY, None)
        regraded = deviation is not None and self._match_deviation(
            item, case, deviation, call, report
        )
        outcome, reason = _outcome(call, report)
        if outcome is not None and not regraded:
            verdict = grade(case.levels, outcome, skip_reason=reason)
            case.verdicts.append(verdict)
            self._record_phase(case, verdict, outcome, call, report, reason)
        if self.options.graded:
            _redact_report(report)
        if report.when == "teardown":
            self._finish(item, case, report)
        return report

    def _match_deviation(
        self,
        item: pytest.Item,
        case: _Case,
        deviation: Deviation,
        call: pytest.CallInfo[None],
        report: pytest.TestReport,
    ) -> bool:
        """Turn a listed case's call into XFAIL/XPASS when its signature says so.

        Returns:
            True when this teardown re-graded a provisional XFAIL whose evidence did
            not match (the phase's verdict is then already recorded).
        """
        case.expected = deviation.xfail_reason()
        if report.when == "teardown" and case.pending is not None:
            failure, case.pending = case.pending, None
            evidence = item.stash.get(EVIDENCE_KEY, Evidence())
            texts = [e.text for e in (*evidence.items, *case.extra.items)]
            evidence_text = "\n".join([failure.evidence, *texts])
            if not deviation.signature.matches(
                Failure(message=failure.message, evidence=evidence_text)
            ):
                # The call was shown as XFAIL; grade it as the failure it was.
                case.note = deviation.mismatch_note()
                case.verdicts = [v for v in case.verdicts if v is not Verdict.XFAIL] + [
                    grade(case.levels, Outcome.FAILED)
                ]
                if fails_run(case.verdicts[-1]) and not report.failed:
                    report.outcome = "failed"
                    report.longrepr = f"{case.note}\n{failure.evidence}"
                    report.cri_verdict = case.verdicts[-1]  # type: ignore[attr-defined]
                    return True
            return False
        if report.when != "call" or report.skipped:
            if report.failed:
                self._mismatch(case, deviation, report)
            return False
        if report.passed:
            report.outcome = "failed"
            report.longrepr = (
                f"[XPASS(strict)] {deviation.xfail_reason()}: the case met the "
                "catalog statement; remove the entry from the expectations file"
            )
            return False
        failure = _failure(call, report)
        if deviation.signature.kind == "evidence" and not failure.crashed:
            # The case's evidence (journal, CRI calls) is complete only at teardown.
            case.pending = failure
        elif not deviation.signature.matches(failure):
            self._mismatch(case, deviation, report)
            return False
        report.outcome = "skipped"
        report.wasxfail = deviation.xfail_reason()
        return False

    @staticmethod
    def _mismatch(case: _Case, deviation: Deviation, report: pytest.TestReport) -> None:
        case.note = deviation.mismatch_note()
        report.longrepr = f"{case.note}\n{report.longreprtext}"

    def _record_phase(
        self,
        case: _Case,
        verdict: Verdict,
        outcome: Outcome,
        call: pytest.CallInfo[None],
        report: pytest.TestReport,
        reason: str,
    ) -> None:
        if call.excinfo is not None and outcome in _BROKEN:
            case.message = case.message or call.excinfo.exconly()[:_MAX_TEXT]
            case.extra.add(f"{report.when} failure", report.longreprtext[-_MAX_TEXT:])
            if (
                isinstance(call.excinfo.value, TargetCrashed)
                and call.excinfo.value.log_tail
            ):
                case.extra.add("target log", call.excinfo.value.log_tail[-_MAX_TEXT:])
        elif reason:
            case.message = case.message or reason
        if not self.options.graded:
            return
        if (
            verdict in (Verdict.NON_STRICT, Verdict.INFORMATIONAL)
            and report.when == "call"
        ):
            # The failure stays as evidence; the test counts as passed (STYLE.md point 12).
            report.outcome = "passed"
            report.longrepr = None
        if verdict in _STATUS:
            report.cri_verdict = verdict  # type: ignore[attr-defined]

    def _finish(
        self, item: pytest.Item, case: _Case, report: pytest.TestReport
    ) -> None:
        verdict = worst(case.verdicts)
        if self.options.graded:
            report.user_properties.append(("cri_verdict", str(verdict)))
        evidence = item.stash.get(EVIDENCE_KEY, Evidence())
        self.results.append(
            CaseResult(
                nodeid=item.nodeid,
                behaviors=case.behaviors,
                level=str(strictest(case.levels)),
                verdict=verdict,
                target=self.options.target,
                profile=self.options.profile,
                duration=case.duration,
                evidence=evidence.items + case.extra.items,
                message="\n".join(m for m in (case.note, case.message) if m),
                expected=case.expected,
            )
        )

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(
        self, report: pytest.TestReport
    ) -> tuple[str, str, str] | None:
        verdict = getattr(report, "cri_verdict", None)
        return _STATUS.get(verdict) if verdict is not None else None

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.options.graded:
            return
        tr = terminalreporter
        tr.section(f"cri-conformance: {self.options.target} ({self.options.profile})")
        counts: dict[str, int] = {}
        for result in self.results:
            counts[str(result.verdict)] = counts.get(str(result.verdict), 0) + 1
        tr.write_line(", ".join(f"{n} {v}" for v, n in counts.items()) or "no cases")
        if self.out_of_scope is not None:
            family, dropped = self.out_of_scope
            tr.write_line(
                f"{dropped} cases not graded: their behaviours do not bind the "
                f"{family} family (catalog scope)"
            )
        for result in self.results:
            if is_security_finding(self.cases[result.nodeid].levels, result.verdict):
                tr.write_line(f"SECURITY FINDING {result.verdict}: {result.nodeid}")
        if self.options.report_dir is not None:
            tr.write_line(f"report written to {self.options.report_dir}")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.options.report_dir is None:
            return
        try:
            catalog: Catalog | None = self._catalog()
        except pytest.UsageError:
            catalog = None
        report = RunReport(
            target=self.options.target,
            profile=self.options.profile,
            cases=tuple(self.results),
            started=datetime.fromtimestamp(self.started, UTC).isoformat(
                timespec="seconds"
            ),
            duration=time.time() - self.started,
            exit_status=int(exitstatus),
            catalog=catalog,
            baseline=self.baseline,
        )
        write_reports(report, self.options.report_dir)


def _redact_report(report: pytest.TestReport) -> None:
    """Redact credentials from what pytest prints and writes to JUnit XML."""
    if report.longrepr is not None and not isinstance(report.longrepr, tuple):
        text = report.longreprtext
        clean = redact(text)
        if clean != text:
            report.longrepr = clean
    report.sections = [(title, redact(body)) for title, body in report.sections]


def _failure(call: pytest.CallInfo[None], report: pytest.TestReport) -> Failure:
    """What a deviation's signature is matched against, for a failed call."""
    if call.excinfo is None:
        return Failure(message=report.longreprtext, evidence=report.longreprtext)
    codes = []
    seen: BaseException | None = call.excinfo.value
    for _ in range(10):  # the exception, its cause, the cause's cause …
        if seen is None:
            break
        if isinstance(seen, TargetError):
            codes.append(seen.code)
        seen = seen.__cause__ or seen.__context__
    return Failure(
        message=call.excinfo.exconly(),
        codes=tuple(codes),
        crashed=call.excinfo.errisinstance(TargetCrashed),
        evidence=report.longreprtext,
    )


def _outcome(
    call: pytest.CallInfo[None], report: pytest.TestReport
) -> tuple[Outcome | None, str]:
    """Fold one phase's report into an outcome (None: a setup/teardown that passed)."""
    reason = ""
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
    if hasattr(report, "wasxfail"):
        # A crash the expectations file records is a known deviation (XFAIL); its
        # evidence (the target's log tail) is still attached to the case.
        return (Outcome.XFAILED if report.skipped else Outcome.XPASSED), reason
    if call.excinfo is not None and call.excinfo.errisinstance(TargetCrashed):
        return Outcome.CRASHED, reason
    longrepr = report.longrepr
    if (
        report.failed
        and isinstance(longrepr, str)
        and longrepr.startswith("[XPASS(strict)]")
    ):
        return Outcome.XPASSED, longrepr
    if report.skipped:
        return Outcome.SKIPPED, reason
    if report.when != "call":
        return (Outcome.ERROR, reason) if report.failed else (None, reason)
    return (Outcome.FAILED if report.failed else Outcome.PASSED), reason
