"""The pure grading table of cri_conformance.verdicts."""

from __future__ import annotations

import pytest

from cri_conformance.verdicts import (
    UNSUPPORTED_PREFIX,
    Level,
    Outcome,
    Verdict,
    fails_run,
    grade,
    is_security_finding,
    strictest,
    unsupported,
    worst,
)


@pytest.mark.parametrize(
    ("levels", "outcome", "reason", "expected"),
    [
        pytest.param(["MUST"], "passed", "", Verdict.PASS, id="must-passed"),
        pytest.param(["MUST"], "failed", "", Verdict.FAIL, id="must-failed"),
        pytest.param(["SECURITY"], "failed", "", Verdict.FAIL, id="security-failed"),
        pytest.param(["SHOULD"], "failed", "", Verdict.NON_STRICT, id="should-failed"),
        pytest.param(["MAY"], "failed", "", Verdict.INFORMATIONAL, id="may-failed"),
        pytest.param(["MAY"], "passed", "", Verdict.PASS, id="may-passed"),
        pytest.param(["SHOULD", "MUST"], "failed", "", Verdict.FAIL, id="mixed-strict"),
        pytest.param(
            ["MAY", "SHOULD"], "failed", "", Verdict.NON_STRICT, id="mixed-lax"
        ),
        pytest.param([], "failed", "", Verdict.FAIL, id="untagged-is-must"),
        pytest.param(
            ["MUST"],
            "skipped",
            "Skipped: unsupported: no mirrors",
            Verdict.UNSUPPORTED,
            id="unsupported-skip",
        ),
        pytest.param(
            ["MUST"], "skipped", "unsupported: x", Verdict.UNSUPPORTED, id="bare-reason"
        ),
        pytest.param(["MUST"], "skipped", "Skipped: later", Verdict.SKIPPED, id="skip"),
        pytest.param(["SHOULD"], "error", "", Verdict.ERROR, id="harness-error"),
        pytest.param(["MUST"], "xfailed", "", Verdict.XFAIL, id="xfailed"),
        pytest.param(["MUST"], "xpassed", "", Verdict.XPASS, id="xpassed"),
        pytest.param(["MAY"], "crashed", "", Verdict.CRASH, id="crash-any-level"),
    ],
)
def test_grade_maps_levels_and_outcomes_to_verdicts(
    levels: list[str], outcome: str, reason: str, expected: Verdict
) -> None:
    assert grade(levels, outcome, skip_reason=reason) is expected


def test_strictest_orders_security_over_must_over_should_over_may() -> None:
    assert strictest(["MAY", "SECURITY", "SHOULD"]) is Level.SECURITY
    assert strictest([Level.MAY, Level.SHOULD]) is Level.SHOULD
    assert strictest([]) is Level.MUST


def test_unknown_level_or_outcome_is_rejected() -> None:
    with pytest.raises(ValueError):
        strictest(["OPTIONAL"])
    with pytest.raises(ValueError):
        grade(["MUST"], "flaky")


def test_worst_folds_phase_verdicts_by_severity() -> None:
    assert worst([Verdict.PASS, Verdict.ERROR]) is Verdict.ERROR
    assert worst([Verdict.FAIL, Verdict.CRASH, Verdict.ERROR]) is Verdict.CRASH
    assert worst([Verdict.NON_STRICT, Verdict.FAIL]) is Verdict.FAIL
    assert worst([]) is Verdict.PASS


@pytest.mark.parametrize(
    ("verdict", "fails"),
    [
        pytest.param(v, v in {"FAIL", "ERROR", "XPASS", "CRASH"}, id=str(v))
        for v in Verdict
    ],
)
def test_only_fail_error_xpass_and_crash_fail_the_run(
    verdict: Verdict, fails: bool
) -> None:
    assert fails_run(verdict) is fails


def test_security_findings_are_failed_or_expected_security_cases() -> None:
    assert is_security_finding(["SECURITY"], Verdict.FAIL)
    assert is_security_finding(["MUST", "SECURITY"], Verdict.XFAIL)
    assert not is_security_finding(["SECURITY"], Verdict.PASS)
    assert not is_security_finding(["MUST"], Verdict.FAIL)


def test_unsupported_skips_with_the_graded_prefix() -> None:
    with pytest.raises(pytest.skip.Exception) as info:
        unsupported("target cannot configure mirrors")
    assert str(info.value.msg).startswith(UNSUPPORTED_PREFIX)
    assert grade(["MUST"], Outcome.SKIPPED, skip_reason=str(info.value.msg)) is (
        Verdict.UNSUPPORTED
    )
