"""Report rendering: sections in order, redaction, HTML escaping, baseline changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cri_conformance.catalog import load_catalog
from cri_conformance.evidence import Evidence, EvidenceItem, redact
from cri_conformance.report import (
    REPORT_FORMAT,
    CaseResult,
    Change,
    RunReport,
    diff_baseline,
    load_baseline,
    render_html,
    render_json,
    render_markdown,
    write_reports,
)
from cri_conformance.verdicts import Verdict

SECRET = "hunter2"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.payload"


def _case(nodeid: str, verdict: Verdict, *ids: str, **extra: object) -> CaseResult:
    catalog = load_catalog()
    levels = [catalog.by_id[i].level for i in ids]
    level = "SECURITY" if "SECURITY" in levels else (levels[0] if levels else "MUST")
    return CaseResult(
        nodeid=nodeid,
        behaviors=ids,
        level=level,
        verdict=verdict,
        target="reference",
        profile="seed",
        **extra,  # type: ignore[arg-type]
    )


def _report(baseline: dict[str, str] | None = None) -> RunReport:
    cases = (
        _case("suite/test_ref.py::test_ok", Verdict.PASS, "REF-001"),
        _case(
            "suite/test_auth.py::test_leak",
            Verdict.FAIL,
            "AUTH-009",
            message=f"mirror got Authorization: Basic dTpw and password={SECRET}",
            evidence=(
                EvidenceItem("journal", f"GET /token\nAuthorization: Bearer {TOKEN}"),
            ),
        ),
        _case("suite/test_res.py::test_text", Verdict.NON_STRICT, "RES-010"),
        _case("suite/test_s1.py::test_known", Verdict.XFAIL, "S1-004"),
        _case(
            "suite/test_ref.py::test_html[<b>]",
            Verdict.FAIL,
            "AUTH-008",
            message="registry said <script>alert('x')</script> | pipe",
        ),
        _case("suite/test_tls.py::test_mtls", Verdict.UNSUPPORTED, "TLS-002"),
    )
    return RunReport(
        target="reference",
        profile="seed",
        cases=cases,
        catalog=load_catalog(),
        baseline=baseline,
    )


def test_json_report_has_cases_summary_and_security_findings() -> None:
    data = json.loads(render_json(_report()))
    assert data["format"] == REPORT_FORMAT
    assert data["summary"]["total"] == 6
    assert data["summary"]["verdicts"]["FAIL"] == 2
    assert data["summary"]["verdicts"]["NON-STRICT"] == 1
    findings = {(f["behaviors"][0], f["verdict"]) for f in data["security_findings"]}
    assert findings == {("AUTH-009", "FAIL"), ("AUTH-008", "FAIL"), ("S1-004", "XFAIL")}
    case = next(c for c in data["cases"] if c["nodeid"].endswith("test_leak"))
    assert set(case) >= {"nodeid", "behaviors", "level", "verdict", "target", "profile"}
    assert set(case) >= {"duration", "evidence", "message"}
    assert data["coverage"]["areas"]["REF"] == {"exercised": 1, "total": 13}


@pytest.mark.parametrize("render", [render_json, render_markdown, render_html])
def test_every_rendering_redacts_credentials(render: object) -> None:
    text = render(_report())  # type: ignore[operator]
    for secret in (SECRET, TOKEN, "dTpw"):
        assert secret not in text
    assert "[REDACTED]" in text


def test_markdown_reads_from_the_top_summary_security_cases_matrix_coverage() -> None:
    text = render_markdown(_report(baseline={}))
    order = [
        "- [Summary](#summary)",  # the table of contents
        "## Summary",
        "## Security findings",
        "## Changes since baseline",
        "## Cases that did not pass",
        "## Behaviour x verdict matrix",
        "## Coverage",
    ]
    positions = [text.index(heading) for heading in order]
    assert positions == sorted(positions)
    assert (
        "| AUTH-009 | SECURITY | Configured credentials stay with their endpoint |"
        in text
    )
    assert "**AUTH**" in text
    assert "**REF**" in text


def test_markdown_escapes_html_and_table_pipes_outside_code_blocks() -> None:
    text = render_markdown(_report())
    prose = "".join(text.split("```")[::2])  # code fences keep text literal anyway
    assert "<script>" not in prose
    assert "\\<script\\>alert('x')\\</script\\> \\| pipe |" in prose
    assert "&lt;" not in text


def test_html_is_self_contained_escaped_and_coloured() -> None:
    page = render_html(_report())
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    assert "&lt;script&gt;" in page
    assert "test_html[&lt;b&gt;]" in page
    for external in ("<link", " src=", 'href="http', "@import", "url("):
        assert external not in page
    assert 'class="v-FAIL"' in page
    assert 'class="v-NON-STRICT"' in page
    assert page.index("Security findings") < page.index("Behaviour x verdict matrix")
    assert '<a href="#security-findings">' in page


def test_baseline_diff_lists_changed_new_and_gone_cases() -> None:
    report = _report()
    baseline = {
        "suite/test_ref.py::test_ok": "FAIL",
        "suite/test_auth.py::test_leak": "FAIL",
        "suite/test_old.py::test_gone": "PASS",
    }
    changes = diff_baseline(report.cases, baseline)
    by_id = {c.nodeid: c for c in changes}
    assert by_id["suite/test_ref.py::test_ok"] == Change(
        nodeid="suite/test_ref.py::test_ok", before="FAIL", after="PASS"
    )
    assert by_id["suite/test_old.py::test_gone"].after is None
    assert by_id["suite/test_res.py::test_text"].before is None
    assert "suite/test_auth.py::test_leak" not in by_id
    text = render_markdown(_report(baseline=baseline))
    assert "| suite/test\\_ref.py::test\\_ok | FAIL | PASS |" in text
    assert "(gone)" in text
    assert "(new)" in text


def test_write_reports_round_trips_through_load_baseline(tmp_path: Path) -> None:
    written = write_reports(_report(), tmp_path / "out")
    assert sorted(p.name for p in written) == [
        "report.html",
        "report.json",
        "report.md",
    ]
    baseline = load_baseline(tmp_path / "out" / "report.json")
    assert baseline["suite/test_s1.py::test_known"] == "XFAIL"


def test_load_baseline_rejects_other_json(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text('{"cases": []}')
    with pytest.raises(ValueError):
        load_baseline(path)


def test_empty_run_renders_cleanly() -> None:
    report = RunReport(target="cri", profile="containerd-1.6", cases=())
    assert json.loads(render_json(report))["summary"]["total"] == 0
    assert "No cases ran." in render_markdown(report)
    assert "this run proves nothing" in render_html(report)


def test_a_run_of_errors_proves_nothing_and_shows_no_security_behaviour() -> None:
    errors = [
        _case(f"suite/test_x.py::test_{i}", Verdict.ERROR, bid)
        for i, bid in enumerate(("AUTH-008", "AUTH-009", "REF-001"))
    ]
    cases = (*errors, _case("suite/test_x.py::test_u", Verdict.UNSUPPORTED, "AUTH-010"))
    report = RunReport(
        target="containerd", profile="containerd-1.6", cases=cases,
        catalog=load_catalog(),
    )  # fmt: skip
    text = render_markdown(report)
    assert "This run proves nothing: every one of 4 cases is ERROR or UNSUPPORTED." in (
        text
    )
    assert "Shown to hold (0): none." in text
    assert "AUTH-008 (ERROR)" in text
    assert "AUTH-010 (UNSUPPORTED)" in text
    assert "every SECURITY case passed" not in text


def test_security_section_splits_held_failed_and_not_shown() -> None:
    text = render_markdown(_report())
    assert "Failed (3): AUTH-008, AUTH-009, S1-004." in text
    assert "FETCH-004 (no case ran)" in text


def test_matrix_counts_a_case_once_however_many_tags_it_has() -> None:
    cases = (
        _case(
            "suite/test_r.py::test_many", Verdict.PASS, "REF-001", "REF-002", "REF-003"
        ),
    )
    report = RunReport(target="reference", profile="seed", cases=cases)
    assert "| cases |   | 1 cases (3 behaviours" in render_markdown(report)


def test_known_deviation_shows_the_expectation_reason_beside_it() -> None:
    case = _case(
        "suite/test_s1.py::test_known", Verdict.XFAIL, "S1-004",
        message="AssertionError: pull of 'x' succeeded",
        expected="known deviation S1-004: schema1 is never compared with the digest",
    )  # fmt: skip
    report = RunReport(target="containerd", profile="containerd-1.6", cases=(case,))
    text = render_markdown(report)
    row = next(line for line in text.splitlines() if line.startswith("| S1-004"))
    assert "schema1 is never compared with the digest" in row


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Authorization: Basic dTpw", "Authorization: Basic [REDACTED]", id="basic"),
        pytest.param("{'Authorization': 'Bearer a.B-c'}", "{'Authorization': 'Bearer [REDACTED]'}", id="dict"),
        pytest.param("Authorization: Bearer ", "Authorization: Bearer ", id="empty-bearer"),
        pytest.param("grant_type=password&password=p+w%26&username=u", "grant_type=password&password=[REDACTED]&username=u", id="form"),
        pytest.param('{"access_token": "x", "expires_in": 60}', '{"access_token": "[REDACTED]", "expires_in": 60}', id="json"),
        pytest.param("AuthSpec(username='u', password='p')", "AuthSpec(username='u', password='[REDACTED]')", id="repr"),
        pytest.param("/b?X-Amz-Signature=S1&sig=S2", "/b?X-Amz-Signature=[REDACTED]&sig=[REDACTED]", id="signed-url"),
        pytest.param("http://u:pw@127.0.0.1:5/v2", "http://u:[REDACTED]@127.0.0.1:5/v2", id="userinfo"),
        pytest.param('invalid decoded auth: "user\\x00"', 'invalid decoded auth: "[REDACTED]"', id="decoded-auth"),
        pytest.param("failed to fetch anonymous token: unexpected status: 401", "failed to fetch anonymous token: unexpected status: 401", id="prose-stays"),
        pytest.param("Basic auth and Bearer tokens", "Basic auth and Bearer tokens", id="words-stay"),
    ],
)  # fmt: skip
def test_redact_hides_credentials_and_is_idempotent(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected


def test_evidence_redacts_on_add_and_decodes_bytes() -> None:
    collected = Evidence()
    collected.add("cri", b"auth=dXNlcjpwYXNz \xff")
    collected.add("journal", {"password": "x"})
    assert [e.kind for e in collected] == ["cri", "journal"]
    assert collected.items[0].text == "auth=[REDACTED] \ufffd"
    assert collected.items[1].text == "{'password': '[REDACTED]'}"
    assert len(collected) == 2
