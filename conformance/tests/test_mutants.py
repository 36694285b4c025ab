"""The mutation gate's inputs: every mutant file parses and every mutant applies.

The full gate (the suite against each mutant) is ``tox -e mutation``; this is its
quick ``--check``, so a refactor of refpull that breaks a mutant's ``find`` is caught
by the unit tests.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cri_conformance.catalog import load_catalog
from cri_conformance.mutation import (
    MutantError,
    apply_mutant,
    check_mutants,
    load_mutants,
    runner,
)
from cri_conformance.mutation.__main__ import main
from cri_conformance.mutation.runner import RunSettings, _command, baseline_runs

ROOT = Path(__file__).resolve().parents[2]
MUTANTS = ROOT / "conformance" / "mutants"
SRC = ROOT / "reference" / "src"


def test_every_mutant_applies_once_compiles_and_names_a_catalog_behavior() -> None:
    mutants = load_mutants(MUTANTS)
    assert len(mutants) >= 80
    assert check_mutants(mutants, SRC, (b.id for b in load_catalog())) == []


#: SECURITY behaviours still without a mutant of their own (RES-012's verification is
#: the content store's, mutated as FETCH-008-digest-not-verified). Shrinks, never grows.
KNOWN_GAPS = {"RES-012"}


def test_every_security_behavior_has_a_mutant() -> None:
    covered = {m.behavior for m in load_mutants(MUTANTS)}
    security = {b.id for b in load_catalog() if b.level == "SECURITY"}
    assert sorted(security - covered) == sorted(KNOWN_GAPS)


def test_check_mode_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--repo", str(ROOT), "--check"]) == 0
    assert "all apply" in capsys.readouterr().out


def test_a_mutant_whose_find_is_not_unique_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(
        "[[mutant]]\n"
        'id = "REF-001-x"\nbehavior = "REF-001"\nprofiles = ["seed"]\n'
        'file = "refpull/gocompat/imageref.py"\nfind = "import"\nreplace = "import "\n'
        'why = "w"\n'
    )
    [mutant] = load_mutants(tmp_path)
    [problem] = check_mutants([mutant], SRC)
    assert "exactly once" in problem
    with pytest.raises(MutantError):
        apply_mutant(mutant, SRC, tmp_path / "copy")
    assert main(["--repo", str(ROOT), "--mutants", str(tmp_path), "--check"]) == 2


def test_a_duplicate_id_is_refused(tmp_path: Path) -> None:
    entry = (
        "[[mutant]]\n"
        'id = "REF-001-x"\nbehavior = "REF-001"\nprofiles = ["seed"]\n'
        'file = "refpull/gocompat/imageref.py"\nfind = "a"\nreplace = "b"\nwhy = "w"\n'
    )
    (tmp_path / "a.toml").write_text(entry)
    (tmp_path / "b.toml").write_text(entry)
    with pytest.raises(MutantError, match="used twice"):
        load_mutants(tmp_path)


def test_an_applied_mutant_changes_only_its_copy(tmp_path: Path) -> None:
    mutant = load_mutants(MUTANTS)[0]
    copy = apply_mutant(mutant, SRC, tmp_path / "src")
    mutated = (copy / mutant.file).read_text()
    assert mutant.replace in mutated
    assert mutant.find in (SRC / mutant.file).read_text()


_ENTRY = (
    "[[mutant]]\n"
    'id = "CRI-007-x"\nbehavior = "CRI-007"\nprofiles = ["containerd-2.0"]\n'
    'file = "refpull/gocompat/imageref.py"\nfind = "a"\nreplace = "b"\nwhy = "w"\n'
)


def test_a_mutant_names_the_target_that_runs_its_code(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(_ENTRY + 'target = "reference-grpc"\n')
    [mutant] = load_mutants(tmp_path)
    assert mutant.target == "reference-grpc"
    settings = RunSettings(src=SRC, suite=ROOT / "conformance" / "suite", cwd=ROOT)
    argv = _command(settings, tmp_path, mutant.target, "containerd-2.0", "CRI-007")
    assert argv[argv.index("--target") + 1] == "reference-grpc"
    assert argv[argv.index("--profile") + 1] == "containerd-2.0"


def test_the_baseline_runs_every_target_and_profile_its_mutants_use(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.toml").write_text(
        _ENTRY
        + 'target = "reference-grpc"\n'
        + _ENTRY.replace("CRI-007-x", "CRI-007-y")
    )
    assert baseline_runs(load_mutants(tmp_path)) == [
        ("reference", "containerd-2.0"),
        ("reference-grpc", "containerd-2.0"),
    ]


def test_a_target_that_cannot_run_a_mutant_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(_ENTRY + 'target = "containerd"\n')
    with pytest.raises(MutantError, match="target must be one of"):
        load_mutants(tmp_path)


@pytest.mark.parametrize(
    ("stdout", "code", "status", "why"),
    [
        ("12 passed, 1 nonstrict in 0.3s\n", 0, "killed", "1 nonstrict"),
        ("40 passed, 2 informational in 3s\n", 0, "killed", "2 informational"),
        ("40 passed in 3s\n", 0, "survived", ""),
        ("FAILED a.py::t - boom\n1 failed, 3 passed\n", 1, "killed", "a.py::t"),
    ],
)
def test_a_lenient_verdict_kills_like_a_failure(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    stdout: str,
    code: int,
    status: str,
    why: str,
) -> None:
    """A SHOULD case that fails is NON-STRICT and pytest still exits 0: the runner
    reads the summary line, so a mutant only such a case sees is killed, and an
    unmutated baseline showing one is refused like a failing one."""

    def fake_run(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess([], code, stdout=stdout, stderr="")

    monkeypatch.setattr(runner.subprocess, "run", fake_run)
    settings = RunSettings(src=SRC, suite=ROOT / "conformance" / "suite", cwd=ROOT)
    outcome = runner._run_profiles(settings, tmp_path, [("reference", "seed")], "")
    assert outcome.status == status
    assert (why in outcome.killed_by) if why else outcome.killed_by == ""
