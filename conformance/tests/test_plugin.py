"""The pytest plugin end to end, driven with pytester on tiny suites."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

SUITE = """
import pytest
from cri_conformance.targets.base import TargetCrashed
from cri_conformance.verdicts import unsupported


@pytest.mark.behavior("REF-001")
def test_must_pass():
    pass


@pytest.mark.behavior("REF-003")
def test_must_fail(evidence):
    evidence.add("journal", "HEAD /v2/a/manifests/latest\\nAuthorization: Basic dTpw")
    assert False, "password=hunter2 leaked"


@pytest.mark.behavior("RES-010")
def test_should_fail():
    assert "pulling from host" == "unexpected status code"


@pytest.mark.behavior("ERR-002")
def test_may_fail():
    assert False


@pytest.mark.behavior("AUTH-009")
def test_security_fail():
    assert False, "mirror received the upstream credential"


@pytest.mark.behavior("TLS-002")
def test_unsupported():
    unsupported("target cannot present client certificates")


def test_plain_skip():
    pytest.skip("not today")


@pytest.fixture
def broken():
    raise RuntimeError("simulator failed to start")


@pytest.mark.behavior("REF-002")
def test_harness_error(broken):
    pass


@pytest.mark.behavior("REF-004")
def test_crash():
    raise TargetCrashed("CRI socket closed", log_tail="panic: runtime error")
"""

EXPECTED = {
    "test_must_pass": "PASS",
    "test_must_fail": "FAIL",
    "test_should_fail": "NON-STRICT",
    "test_may_fail": "INFORMATIONAL",
    "test_security_fail": "FAIL",
    "test_unsupported": "UNSUPPORTED",
    "test_plain_skip": "SKIPPED",
    "test_harness_error": "ERROR",
    "test_crash": "CRASH",
}


def _verdicts(report_dir: Path) -> dict[str, Any]:
    data = json.loads((report_dir / "report.json").read_text())
    return {c["nodeid"].split("::")[-1]: c for c in data["cases"]}


def test_graded_run_grades_every_case_and_writes_the_reports(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    out = pytester.path / "out"
    result = pytester.runpytest(
        "--target",
        "reference",
        "--report-dir",
        str(out),
        "--junitxml",
        str(out / "j.xml"),
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    outcomes = result.parseoutcomes()
    assert outcomes["nonstrict"] == 1
    assert outcomes["informational"] == 1
    assert outcomes["unsupported"] == 1
    assert outcomes["failed"] == 3  # two FAILs and the CRASH
    assert outcomes["errors"] == 1
    assert outcomes["skipped"] == 1
    result.stdout.fnmatch_lines(
        ["*SECURITY FINDING FAIL: test_suite.py::test_security_fail*"]
    )
    result.stdout.fnmatch_lines(["CRASH test_suite.py::test_crash*"])

    cases = _verdicts(out)
    assert {name: case["verdict"] for name, case in cases.items()} == EXPECTED
    assert cases["test_security_fail"]["level"] == "SECURITY"
    assert cases["test_must_fail"]["behaviors"] == ["REF-003"]
    kinds = [e["kind"] for e in cases["test_must_fail"]["evidence"]]
    assert kinds[0] == "journal"
    assert "call failure" in kinds
    assert any(e["kind"] == "target log" for e in cases["test_crash"]["evidence"])
    failure = " ".join(e["text"] for e in cases["test_should_fail"]["evidence"])
    assert "unexpected status code" in failure  # the SHOULD failure is kept as evidence
    report = json.loads((out / "report.json").read_text())
    assert [f["behaviors"] for f in report["security_findings"]] == [["AUTH-009"]]
    assert report["run"] == report["run"] | {"target": "reference", "profile": "seed"}

    for name in ("report.json", "report.md", "report.html", "j.xml"):
        text = (out / name).read_text()
        assert "hunter2" not in text, name
        assert "dTpw" not in text, name
    assert 'name="cri_verdict" value="NON-STRICT"' in (out / "j.xml").read_text()
    markdown = (out / "report.md").read_text()
    # The summary and the security section come first, before any table of cases.
    assert markdown.index("## Summary") < markdown.index("## Security findings")
    assert markdown.index("## Security findings") < markdown.index("## Cases that")


def test_without_suite_options_outcomes_stay_plain_pytest(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest()
    outcomes = result.parseoutcomes()
    assert "nonstrict" not in outcomes
    assert "unsupported" not in outcomes
    assert outcomes["failed"] == 5
    assert outcomes["skipped"] == 2
    assert not (pytester.path / "report.json").exists()


def test_unknown_behaviour_id_fails_collection(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.behavior("REF-001", "NOPE-042")
        def test_tagged():
            pass

        @pytest.mark.behavior()
        def test_empty_tag():
            pass
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown behaviour ID(s) ['NOPE-042']" in result.stderr.str()
    result.stderr.fnmatch_lines(["*test_empty_tag: behavior mark without an ID*"])


SIGNATURES_SUITE = """
import pytest
from cri_conformance.targets.base import TargetCrashed, TargetError


@pytest.fixture
def journal(evidence):
    yield
    evidence.add("registry journal", "POST http://127.0.0.1:1/token user=alice")


@pytest.fixture
def broken():
    raise RuntimeError("simulator failed to start")


@pytest.mark.behavior("AUTH-009")
def test_assertion_matches():
    assert False, "mirror received the upstream credential"


@pytest.mark.behavior("REF-003")
def test_assertion_differs():
    assert False, "the pull timed out"


@pytest.mark.behavior("ERR-001")
def test_code_matches():
    try:
        raise TargetError("UNKNOWN", "failed to resolve")
    except TargetError as exc:
        raise AssertionError("pull failed") from exc


@pytest.mark.behavior("REF-004")
def test_code_differs():
    raise TargetError("NOT_FOUND", "no such image")


@pytest.mark.behavior("AUTH-010")
def test_evidence_matches(journal):
    assert False


@pytest.mark.behavior("AUTH-008")
def test_evidence_differs(journal):
    assert False


@pytest.mark.behavior("REF-002")
def test_harness_error(broken):
    assert False


@pytest.mark.behavior("S1-003")
def test_crash_matches():
    raise TargetCrashed("CRI socket closed", log_tail="panic: slice bounds")


@pytest.mark.behavior("REF-005")
def test_crash_is_not_a_code():
    raise TargetCrashed("CRI socket closed", log_tail="panic")


@pytest.mark.behavior("REF-001")
def test_fixed():
    pass
"""

EXPECTATIONS = """
target = "reference"
description = "known deviations of the demo target"

[[deviation]]
behavior = "AUTH-009"
test = "test_assertion_matches"
signature = { assertion = "mirror received" }
reason = "first configured credential is shared"
upstream = "https://github.com/containerd/containerd/pull/5446"

[[deviation]]
behavior = "REF-003"
signature = { assertion = "unexpected status code" }
reason = "listed with another failure"

[[deviation]]
behavior = "ERR-001"
signature = { code = "UNKNOWN" }
reason = "every resolution error is UNKNOWN"

[[deviation]]
behavior = "REF-004"
signature = { code = "UNKNOWN" }
reason = "listed with another code"

[[deviation]]
behavior = "AUTH-010"
signature = { evidence = "POST http://[^ ]+/token user=" }
reason = "credentials go to a plain-http realm"

[[deviation]]
behavior = "AUTH-008"
signature = { evidence = "GET https://mirror" }
reason = "credentials go to a mirror"

[[deviation]]
behavior = "REF-002"
signature = { assertion = "." }
reason = "a harness failure is never the deviation"

[[deviation]]
behavior = "S1-003"
signature = { crash = true }
reason = "a negative formatLength panics"

[[deviation]]
behavior = "REF-005"
signature = { code = "UNKNOWN" }
reason = "listed with a code, crashes instead"

[[deviation]]
behavior = "REF-001"
signature = { code = "UNKNOWN" }
reason = "listed, but the target behaves"
"""

SIGNATURE_VERDICTS = {
    "test_assertion_matches": "XFAIL",
    "test_assertion_differs": "FAIL",
    "test_code_matches": "XFAIL",
    "test_code_differs": "FAIL",
    "test_evidence_matches": "XFAIL",
    "test_evidence_differs": "FAIL",
    "test_harness_error": "ERROR",
    "test_crash_matches": "XFAIL",
    "test_crash_is_not_a_code": "CRASH",
    "test_fixed": "XPASS",
}


def test_deviation_is_xfail_only_when_the_case_fails_as_its_signature_says(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_suite=SIGNATURES_SUITE)
    expectations = pytester.makefile(".toml", expectations=EXPECTATIONS)
    out = pytester.path / "out"
    result = pytester.runpytest(
        "--expectations", str(expectations), "--report-dir", str(out), "-rxX"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*XFAIL*test_assertion_matches*known deviation AUTH-009*"]
    )
    cases = _verdicts(out)
    assert {n: c["verdict"] for n, c in cases.items()} == SIGNATURE_VERDICTS
    for name, case in cases.items():
        assert case["expected"].startswith("known deviation "), name
        mismatch = "does not match its recorded signature" in case["message"]
        assert mismatch == (SIGNATURE_VERDICTS[name] in ("FAIL", "ERROR", "CRASH"))
    assert "XPASS" in cases["test_fixed"]["message"]
    outcomes = result.parseoutcomes()
    # The evidence case is shown "x" at its call, then re-graded by its teardown.
    assert outcomes["xfailed"] == 5
    assert outcomes["failed"] == 5  # 3 FAIL (1 at teardown), CRASH, XPASS
    result.stdout.fnmatch_lines(
        ["*listed as known deviation REF-003, but the failure does not match*"]
    )
    assert outcomes["errors"] == 1
    report = json.loads((out / "report.json").read_text())
    findings = {f["nodeid"].split("::")[-1] for f in report["security_findings"]}
    assert findings == {
        "test_assertion_matches",
        "test_evidence_matches",
        "test_evidence_differs",
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            'target = "containerd"\n', "*but --target is 'reference'*", id="target"
        ),
        pytest.param(
            'target = "reference"\n[[deviation]]\nbehavior = "XX-001"\nreason = "r"\n',
            "*unknown behaviour ID 'XX-001'*",
            id="unknown-id",
        ),
        pytest.param('target = "reference"\nbogus = 1\n', "*unknown keys*", id="key"),
        pytest.param(
            'target = "reference"\n[[deviation]]\nbehavior = "REF-001"\nreason = "r"\n',
            "*deviation #1 (REF-001 [*]): missing signature*",
            id="no-signature",
        ),
        pytest.param(
            'target = "reference"\n[[deviation]]\nbehavior = "REF-001"\nreason = "r"\n'
            'signature = { code = "NOPE" }\n',
            "*'NOPE' is not a gRPC code name*",
            id="bad-code",
        ),
        pytest.param(
            'target = "reference"\n[[deviation]]\nbehavior = "REF-001"\nreason = "r"\n'
            'signature = { code = "UNKNOWN", crash = true }\n',
            "*signature needs exactly one key*",
            id="two-kinds",
        ),
    ],
)
def test_bad_expectations_file_is_a_usage_error(
    pytester: pytest.Pytester, content: str, message: str
) -> None:
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    expectations = pytester.makefile(".toml", expectations=content)
    result = pytester.runpytest("--expectations", str(expectations))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_empty_suite_reports_zero_cases(pytester: pytest.Pytester) -> None:
    suite = pytester.mkdir("suite")
    out = pytester.path / "out"
    result = pytester.runpytest(str(suite), "--report-dir", str(out))
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["total"] == 0
    assert report["cases"] == []
    assert "No cases ran." in (out / "report.md").read_text()
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_baseline_lists_verdict_changes(pytester: pytest.Pytester) -> None:
    test_file = pytester.makepyfile(
        test_flip="""
        import pytest

        @pytest.mark.behavior("REF-003")
        def test_flip():
            assert False
        """
    )
    first, second = pytester.path / "first", pytester.path / "second"
    pytester.runpytest("--report-dir", str(first))
    test_file.write_text(test_file.read_text().replace("assert False", "assert True"))
    result = pytester.runpytest(
        "--report-dir", str(second), "--baseline", str(first / "report.json")
    )
    assert result.ret == pytest.ExitCode.OK
    data = json.loads((second / "report.json").read_text())
    assert data["changes"] == [
        {"nodeid": "test_flip.py::test_flip", "before": "FAIL", "after": "PASS"}
    ]
    assert (
        "| test\\_flip.py::test\\_flip | FAIL | PASS |"
        in (second / "report.md").read_text()
    )


def test_missing_baseline_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    result = pytester.runpytest("--baseline", str(pytester.path / "none.json"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_suite_options_fixture_resolves_defaults_and_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRI_ENDPOINT", "unix:///tmp/x.sock")
    pytester.makepyfile(
        """
        def test_options(suite_options):
            assert suite_options.target == "containerd"
            assert suite_options.profile == "containerd-1.6"
            assert suite_options.cri_endpoint == "unix:///tmp/x.sock"
            assert suite_options.cri_api == "auto"
            assert suite_options.graded

        def test_behavior_free_test_is_graded_as_must():
            pass
        """
    )
    result = pytester.runpytest("--target", "containerd")
    result.assert_outcomes(passed=2)
    pytester.makepyfile(
        test_defaults="""
        def test_defaults(suite_options):
            assert (suite_options.target, suite_options.profile) == ("reference", "seed")
            assert not suite_options.graded
        """
    )
    pytester.runpytest("test_defaults.py").assert_outcomes(passed=1)


def test_unknown_cri_api_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    result = pytester.runpytest("--cri-api", "v2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_hypothesis_profile_comes_from_the_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hypothesis import settings

    pytester.makepyfile(
        """
        from hypothesis import settings

        def test_profile():
            assert settings.default.derandomize
            assert settings.default.max_examples == 50
        """
    )
    outer = os.environ.get("HYPOTHESIS_PROFILE", "dev")
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "ci")
    try:
        pytester.runpytest().assert_outcomes(passed=1)
        monkeypatch.setenv("HYPOTHESIS_PROFILE", "no-such-profile")
        assert pytester.runpytest().ret == pytest.ExitCode.USAGE_ERROR
    finally:
        settings.load_profile(outer)  # the in-process runs changed the global profile
