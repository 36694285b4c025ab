"""The cross-runtime matrix merges report.json files by runtime version."""

from __future__ import annotations

import json
from pathlib import Path

from cri_conformance.matrix import load_run, version_key
from cri_conformance.report import main

FORMAT = "cri-pull-conformance/report-1"


def _write(root: Path, name: str, verdicts: dict[str, str]) -> Path:
    path = root / name / "report.json"
    path.parent.mkdir(parents=True)
    cases = [
        {"nodeid": f"t.py::test_{bid}", "behaviors": [bid], "verdict": verdict}
        for bid, verdict in verdicts.items()
    ]
    run = {"target": "containerd", "profile": "containerd-1.6"}
    path.write_text(json.dumps({"format": FORMAT, "run": run, "cases": cases}))
    return path


def test_versions_sort_numerically_within_a_family() -> None:
    names = [
        "containerd-2.0.11",
        "containerd-1.10.0",
        "containerd-1.7.34",
        "crio-1.36.3",
        "containerd-seed",
    ]
    assert sorted(names, key=version_key) == [
        "containerd-seed",
        "containerd-1.7.34",
        "containerd-1.10.0",
        "containerd-2.0.11",
        "crio-1.36.3",
    ]


def test_merge_puts_security_first_and_lists_fixes_and_breaks(tmp_path: Path) -> None:
    new = _write(tmp_path, "containerd-1.7.34", {"S1-004": "PASS", "REF-001": "FAIL"})
    old = _write(tmp_path, "containerd-1.6.20", {"S1-004": "XFAIL", "REF-001": "PASS"})
    other = _write(tmp_path, "crio-1.36.3", {"S1-004": "FAIL"})
    assert load_run(old).cells["S1-004"] == "XFAIL"
    assert (
        main(["merge", str(new), str(other), str(old), "--out", str(tmp_path / "m")])
        == 0
    )
    text = (tmp_path / "m" / "matrix.md").read_text()
    assert text.index("## Security behaviours") < text.index("## Area REF")
    assert (
        "| behaviour | level | title | containerd-1.6.20 | containerd-1.7.34 | crio-1.36.3 |"
        in text
    )
    assert (
        "| containerd-1.6.20 to containerd-1.7.34 | S1-004 | fixed | XFAIL | PASS |"
        in text
    )
    assert (
        "| containerd-1.6.20 to containerd-1.7.34 | REF-001 | broke | PASS | FAIL |"
        in text
    )
    assert (
        "crio-1.36.3 |"
        not in text.split("## Changed between versions")[1].split("##")[0]
    )
    assert (tmp_path / "m" / "matrix.html").read_text().startswith("<!DOCTYPE html>")


def test_merge_refuses_a_file_that_is_not_a_report(tmp_path: Path) -> None:
    bad = tmp_path / "x" / "report.json"
    bad.parent.mkdir()
    bad.write_text("{}")
    assert main(["merge", str(bad), "--out", str(tmp_path / "m")]) == 2
