"""``cri-conformance``: run, list, report, diff, and one line per usage error."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cri_conformance import cli
from cri_conformance._cli_parallel import without_options
from cri_conformance.catalog import AREAS
from cri_conformance.report import REPORT_FORMAT

_CASE = "test_anonymous_pull_gets_a_token_with_get_and_the_repository_scope"


def _main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cri-conformance: error: ")
    return lines[0]


def test_version_names_the_distribution_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("cri-conformance ")


def test_the_suite_and_the_expectations_are_found() -> None:
    assert (cli.suite_dir() / "conftest.py").is_file()
    assert (cli.expectations_dir() / "containerd-1.6.20.toml").is_file()


def test_list_prints_behaviours_of_one_area(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _main(capsys, "list", "--area", "token")
    assert code == 0
    ids = [line.split()[0] for line in out.splitlines()]
    assert ids
    assert all(i.startswith("TOKEN-") for i in ids)


def test_list_cases_shows_each_case_with_its_behaviours(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _main(capsys, "list", "--cases", "--area", "TOKEN")
    assert code == 0
    line = next(x for x in out.splitlines() if _CASE in x)
    assert "TOKEN-002" in line.split()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        pytest.param(
            ["run", "--target", "containerd", "--containerd-bin", "/nonexistent/ctrd"],
            "containerd binary '/nonexistent/ctrd' not found",
            id="missing-containerd",
        ),
        pytest.param(
            ["run", "--runtime-endpoint", "unix:///nonexistent/cri.sock"],
            "/nonexistent/cri.sock does not exist",
            id="missing-socket",
        ),
        pytest.param(
            ["run", "--target", "cri"], "needs --runtime-endpoint", id="cri-no-endpoint"
        ),
        pytest.param(["run", "--area", "NOPE"], "not a catalog area", id="bad-area"),
        pytest.param(["run", "--jobs", "0"], "give 1 or more", id="jobs-0"),
        pytest.param(
            ["run", "--jobs", "2", "--target", "cri", "-r", "unix:///"],
            "a runtime endpoint is graded by one run",
            id="jobs-endpoint",
        ),
        pytest.param(
            ["run", "--expectations", "no-such-runtime"],
            "shipped names: containerd-1.6.20",
            id="unknown-expectations",
        ),
        pytest.param(
            ["run", "--baseline", "/nonexistent/report.json"],
            "--baseline /nonexistent/report.json: no such file",
            id="missing-baseline",
        ),
        pytest.param(
            ["report", "/nonexistent/report.json"], "cannot read", id="report-missing"
        ),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code, out, err = _main(capsys, *argv)
    assert code == 2
    assert out == ""
    assert needle in _one_error_line(err)


def test_a_report_that_is_not_json_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bogus = tmp_path / "report.json"
    bogus.write_text("<html>")
    code, _, err = _main(capsys, "report", str(bogus))
    assert code == 2
    assert "is not JSON" in _one_error_line(err)


def _report(path: Path, verdicts: dict[str, str]) -> Path:
    cases = [
        {
            "nodeid": nodeid,
            "behaviors": ["TOKEN-002"],
            "level": "MUST",
            "verdict": verdict,
            "target": "reference",
            "profile": "seed",
            "duration": 0.1,
            "message": "",
            "evidence": [],
        }
        for nodeid, verdict in verdicts.items()
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    run = {"target": "reference", "profile": "seed", "started": "2026-01-01T00:00:00"}
    path.write_text(json.dumps({"format": REPORT_FORMAT, "run": run, "cases": cases}))
    return path


def test_diff_exits_1_only_when_a_case_now_fails_the_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    old = _report(tmp_path / "old.json", {"a": "PASS", "b": "FAIL", "c": "PASS"})
    better = _report(tmp_path / "better.json", {"a": "PASS", "b": "PASS", "c": "PASS"})
    worse = _report(tmp_path / "worse.json", {"a": "FAIL", "b": "FAIL", "c": "PASS"})
    code, out, _ = _main(capsys, "diff", str(old), str(better))
    assert (code, out) == (0, "b: FAIL -> PASS\n")
    code, out, _ = _main(capsys, "diff", str(old), str(worse))
    assert (code, out) == (1, "a: PASS -> FAIL  worse\n")


def test_report_merges_several_runs_into_one_matrix(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    one = _report(tmp_path / "job1" / "report.json", {"a": "PASS", "b": "PASS"})
    two = _report(tmp_path / "job2" / "report.json", {"c": "FAIL"})
    code, _, err = _main(capsys, "report", str(one), str(two))
    assert code == 2
    assert "needs --out" in _one_error_line(err)
    code, out, _ = _main(capsys, "report", str(one), str(two), "--out", str(tmp_path))
    assert code == 0
    assert len(out.splitlines()) == 3
    merged = json.loads((tmp_path / "report.json").read_text())
    assert merged["summary"]["verdicts"]["PASS"] == 2
    assert merged["summary"]["verdicts"]["FAIL"] == 1
    assert "TOKEN-002" in (tmp_path / "report.md").read_text()


def test_run_grades_the_reference_and_writes_the_report(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "cri_conformance.cli", "run", "-k", _CASE),
            *("--report-dir", str(tmp_path / "rep"), "-q"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert [c["verdict"] for c in report["cases"]] == ["PASS"]
    assert report["cases"][0]["nodeid"] == f"test_tokens.py::{_CASE}"
    assert {p.name for p in (tmp_path / "rep").iterdir()} >= {
        "report.md",
        "report.html",
    }


def test_pytest_stops_once_when_the_runtime_binary_is_missing(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", str(cli.suite_dir())),
            *("-p", "no:cacheprovider", "--target", "containerd"),
            *("--containerd-bin", "/nonexistent/ctrd"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 4
    assert done.stdout.count("containerd binary '/nonexistent/ctrd' not found") == 1
    assert "Traceback" not in done.stdout + done.stderr


def test_areas_partition_the_cases(capsys: pytest.CaptureFixture[str]) -> None:
    code, everything, _ = _main(capsys, "list", "--cases")
    assert code == 0
    by_area = []
    for area in AREAS:
        code, out, _ = _main(capsys, "list", "--cases", "--area", area)
        by_area += out.splitlines()
    assert sorted(by_area) == sorted(everything.splitlines())


def test_xdist_is_refused_with_what_to_use_instead(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = _main(capsys, "run", "-n", "2")
    assert code == 2
    assert "use --jobs N" in _one_error_line(err)


def test_per_part_options_are_dropped_in_both_spellings() -> None:
    argv = ["run", "--jobs", "2", "--area=AUTH", "-k", "x", "--report-dir", "r", "-q"]
    kept = without_options(argv, {"--jobs": 1, "--area": 1, "--report-dir": 1})
    assert kept == ["run", "-k", "x", "-q"]


def test_jobs_split_the_areas_and_merge_the_reports(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "cri_conformance.cli", "run", "--jobs", "2"),
            *("--area", "CFG,EP", "--report-dir", str(tmp_path / "rep")),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    parts = sorted(p.name for p in (tmp_path / "rep" / "parts").iterdir())
    assert parts == ["1-EP", "2-CFG"]
    merged = json.loads((tmp_path / "rep" / "report.json").read_text())
    counted = 0
    for part in parts:
        one = json.loads(
            (tmp_path / "rep" / "parts" / part / "report.json").read_text()
        )
        counted += len(one["cases"])
        assert (tmp_path / "rep" / "parts" / part / "junit.xml").is_file()
    assert len(merged["cases"]) == counted > 0
    areas = {c["behaviors"][0].rsplit("-", 1)[0] for c in merged["cases"]}
    assert areas == {"CFG", "EP"}


def test_jobs_that_select_no_case_exit_5(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "cri_conformance.cli", "run", "--jobs", "2"),
            *("--area", "CFG,EP", "-k", "no_such_case_anywhere"),
            *("--report-dir", str(tmp_path / "rep")),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 5, done.stdout + done.stderr


@pytest.fixture
def stale_socket() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="cc-", dir="/tmp"))
    path = directory / "cri.sock"
    bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound.bind(str(path))  # bound, never listening: connect() is refused
    yield path
    bound.close()
    shutil.rmtree(directory, ignore_errors=True)


def test_a_stale_runtime_socket_is_one_line(
    capsys: pytest.CaptureFixture[str], stale_socket: Path
) -> None:
    code, _, err = _main(capsys, "run", "-r", f"unix://{stale_socket}")
    assert code == 2
    assert f"nothing answers on {stale_socket}" in _one_error_line(err)


def test_pytest_stops_once_when_the_endpoint_does_not_answer(
    tmp_path: Path, stale_socket: Path
) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", str(cli.suite_dir())),
            *("-p", "no:cacheprovider", "--target", "cri"),
            *("--cri-endpoint", f"unix://{stale_socket}"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 4, done.stdout[-3000:]
    assert done.stdout.count(f"the runtime at unix://{stale_socket} does not") == 1
    assert "Traceback" not in done.stdout + done.stderr


def test_ci_runs_the_readme_test_command() -> None:
    repo = Path(__file__).resolve().parents[2]
    ci = (repo / ".ci" / "run").read_text().strip().splitlines()
    readme = (repo / "README.md").read_text()
    # The README's "all tests" line is the peers' apt-get, then .ci/run's last line.
    assert f"&& {ci[-1]}\n" in readme
    assert "pip install tox" in ci[-1]
    assert "python3 -m pip install" not in readme  # PEP 668: refused on Debian 12
