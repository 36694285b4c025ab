"""Graded verdicts: how one test outcome and the levels of its behaviours become a verdict.

STYLE.md point 12 (after Autobahn's verdicts and the distribution-spec conformance
statuses): a failed MUST is not the same news as a failed SHOULD, and a target that
lacks an optional capability is not failing. The grading is a pure function of the
behaviour levels a test is tagged with and the outcome pytest observed:

=============  ==============================================  ==================
verdict        when                                            fails the run?
=============  ==============================================  ==================
PASS           the test passed                                 no
FAIL           failed, strictest level MUST or SECURITY        yes
NON-STRICT     failed, strictest level SHOULD                  no (status ``N``)
INFORMATIONAL  failed, strictest level MAY                     no (status ``I``)
UNSUPPORTED    skipped with a reason starting ``unsupported:``  no
SKIPPED        skipped for any other reason                    no
ERROR          setup or teardown broke (harness failure)       yes
XFAIL          failed as its expectations entry predicted      no
XPASS          passed despite an expectations entry            yes
CRASH          the test raised ``TargetCrashed``               yes
=============  ==============================================  ==================

A test tagged with no behaviour is graded as MUST: its failures are failures.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import NoReturn

import pytest

__all__ = [
    "UNSUPPORTED_PREFIX",
    "Level",
    "Outcome",
    "Verdict",
    "fails_run",
    "grade",
    "is_security_finding",
    "strictest",
    "unsupported",
    "worst",
]

#: A skip whose reason starts with this is graded UNSUPPORTED, not SKIPPED.
UNSUPPORTED_PREFIX = "unsupported:"


class Level(StrEnum):
    """How binding a catalog behaviour is (``level`` in fixtures/catalog)."""

    MUST = "MUST"
    SHOULD = "SHOULD"
    MAY = "MAY"
    SECURITY = "SECURITY"


class Outcome(StrEnum):
    """What pytest observed for one test, all phases folded together."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    ERROR = "error"
    XFAILED = "xfailed"
    XPASSED = "xpassed"
    CRASHED = "crashed"


class Verdict(StrEnum):
    """The graded result of one test case."""

    PASS = "PASS"
    FAIL = "FAIL"
    NON_STRICT = "NON-STRICT"
    INFORMATIONAL = "INFORMATIONAL"
    UNSUPPORTED = "UNSUPPORTED"
    SKIPPED = "SKIPPED"
    ERROR = "ERROR"
    XFAIL = "XFAIL"
    XPASS = "XPASS"
    CRASH = "CRASH"


_STRICTNESS = {Level.MAY: 0, Level.SHOULD: 1, Level.MUST: 2, Level.SECURITY: 3}

# Higher is worse; ``worst`` folds the verdicts of a test's phases with it.
_SEVERITY = {
    Verdict.PASS: 0,
    Verdict.SKIPPED: 1,
    Verdict.UNSUPPORTED: 2,
    Verdict.XFAIL: 3,
    Verdict.INFORMATIONAL: 4,
    Verdict.NON_STRICT: 5,
    Verdict.XPASS: 6,
    Verdict.FAIL: 7,
    Verdict.ERROR: 8,
    Verdict.CRASH: 9,
}

_RUN_FAILING = frozenset({Verdict.FAIL, Verdict.ERROR, Verdict.XPASS, Verdict.CRASH})


def strictest(levels: Iterable[Level | str]) -> Level:
    """Return the most binding of *levels*; MUST when there are none.

    Args:
        levels: catalog levels (``Level`` members or their string values).

    Raises:
        ValueError: a value is not a catalog level.
    """
    found = [Level(level) for level in levels]
    if not found:
        return Level.MUST
    return max(found, key=_STRICTNESS.__getitem__)


def grade(
    levels: Iterable[Level | str], outcome: Outcome | str, *, skip_reason: str = ""
) -> Verdict:
    """Grade one test.

    Args:
        levels: the catalog levels of the behaviours the test is tagged with.
        outcome: what pytest observed for the test (all phases folded).
        skip_reason: the skip message, used to tell UNSUPPORTED from SKIPPED.

    Returns:
        The verdict, per the table in this module's docstring.
    """
    observed = Outcome(outcome)
    if observed is Outcome.FAILED:
        level = strictest(levels)
        if level is Level.SHOULD:
            return Verdict.NON_STRICT
        if level is Level.MAY:
            return Verdict.INFORMATIONAL
        return Verdict.FAIL
    if observed is Outcome.SKIPPED:
        reason = skip_reason.removeprefix("Skipped:").strip()
        if reason.startswith(UNSUPPORTED_PREFIX):
            return Verdict.UNSUPPORTED
        return Verdict.SKIPPED
    return {
        Outcome.PASSED: Verdict.PASS,
        Outcome.ERROR: Verdict.ERROR,
        Outcome.XFAILED: Verdict.XFAIL,
        Outcome.XPASSED: Verdict.XPASS,
        Outcome.CRASHED: Verdict.CRASH,
    }[observed]


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """Return the most severe verdict (PASS for an empty input)."""
    return max(verdicts, key=_SEVERITY.__getitem__, default=Verdict.PASS)


def fails_run(verdict: Verdict) -> bool:
    """Tell whether *verdict* makes the pytest run fail."""
    return verdict in _RUN_FAILING


def is_security_finding(levels: Iterable[Level | str], verdict: Verdict) -> bool:
    """Tell whether a case is a security finding: a SECURITY behaviour not met.

    Known deviations (XFAIL) are findings too: an expected weakness is still one.
    """
    if verdict not in (Verdict.FAIL, Verdict.XFAIL):
        return False
    return any(Level(level) is Level.SECURITY for level in levels)


def unsupported(reason: str) -> NoReturn:
    """Skip the running test because the target lacks an optional capability.

    The test is graded UNSUPPORTED, never PASS.

    Args:
        reason: what is missing, e.g. ``"target cannot configure registry mirrors"``.

    Raises:
        pytest.skip.Exception: always.
    """
    pytest.skip(f"{UNSUPPORTED_PREFIX} {reason}")
