"""The catalog lints itself (STYLE.md point 11), and the coverage gate reads tags right."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from cri_conformance.catalog import (
    AREAS,
    UPSTREAM_FINDINGS,
    Catalog,
    CatalogError,
    fixtures_dir,
    lint_catalog,
    load_catalog,
    main,
)
from cri_conformance.coverage import compute_coverage, scan_file
from cri_conformance.coverage import main as gate_main
from refpull.profiles import Profile

# behaviors.md §20: the count per area (137), plus the project's own: PULL-012..015
# (unpack confinement, bombs, unbounded inputs), TOKEN-010 (token size), TOKEN-011
# (realm redirects), RES-014
# (ambiguous manifests), XPORT-010..012 (stalls), HOST-010..014 and CFG-006/007
# (hosts.toml, config_path), CRIO-001..005 (the CRI-O family). A behaviour is
# retired, never deleted, so a shrinking count is a mistake.
EXPECTED_COUNTS = {
    "REF": 13, "EP": 7, "HOST": 14, "TLS": 7, "AUTH": 11, "CHAL": 8, "TOKEN": 11,
    "RES": 14, "FETCH": 8, "XPORT": 9, "PULL": 15, "S1": 10, "CRI": 7, "STORE": 10,
    "ERR": 3, "CFG": 7, "CRIO": 5,
}  # fmt: skip
CATALOG = load_catalog()


def _documents() -> list[tuple[Path, dict[str, Any]]]:
    files = sorted((fixtures_dir() / "catalog").glob("*.json"))
    return [(f, json.loads(f.read_text(encoding="utf-8"))) for f in files]


def test_catalog_lint_is_clean() -> None:
    assert lint_catalog() == []


def test_schema_is_valid_draft_2020_12_and_every_file_validates() -> None:
    schema = json.loads((fixtures_dir() / "catalog.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    for path, doc in _documents():
        jsonschema.Draft202012Validator(schema).validate(doc)
        assert doc["area"].lower() == path.stem


def test_catalog_holds_all_159_behaviours_with_the_counts_per_area() -> None:
    assert len(CATALOG) == 159
    assert {a: len(CATALOG.areas[a]) for a in AREAS} == EXPECTED_COUNTS


def test_ids_are_unique_and_prefixed_by_their_area() -> None:
    ids = [b.id for b in CATALOG]
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    for behavior in CATALOG:
        assert re.fullmatch(rf"{behavior.area}-\d{{3}}", behavior.id)


def test_every_behaviour_has_a_source() -> None:
    assert [b.id for b in CATALOG if not b.sources] == []
    for behavior in CATALOG:
        assert all(s.ref.split(" ")[0].count("@") == 1 for s in behavior.sources)


def test_statements_are_single_present_tense_sentences() -> None:
    for behavior in CATALOG:
        text = behavior.statement
        assert not re.search(r"\bshould\b|test that", text, re.I), behavior.id
        assert text.endswith("."), behavior.id
        assert len(text) <= 200, behavior.id
        assert not text[0].islower(), behavior.id


def test_every_upstream_finding_is_attached_to_a_behaviour() -> None:
    attached = {f for b in CATALOG for f in b.upstream}
    assert attached == set(UPSTREAM_FINDINGS)


def test_security_behaviours_state_the_safe_rule_and_record_the_finding() -> None:
    security = [b for b in CATALOG if b.level == "SECURITY"]
    assert {b.id for b in security} >= {"AUTH-009", "AUTH-008", "FETCH-004", "S1-004"}
    for behavior in security:
        assert behavior.kind == "security"
        assert "SEC" in behavior.markers
        assert set(behavior.finding) == {"seed", "containerd-1.6"}
        assert not behavior.profiles  # never a profile switch for safety


def test_profile_sentences_appear_exactly_on_delta_entries() -> None:
    for behavior in CATALOG:
        if behavior.level != "SECURITY":
            delta = any(m.startswith("DELTA-") for m in behavior.markers)
            assert bool(behavior.profiles) == delta, behavior.id
        if behavior.kind == "quirk":
            assert "seed" in behavior.profiles, behavior.id
    assert (
        CATALOG.by_id["EP-004"]
        .statement_for("seed")
        .endswith(CATALOG.by_id["EP-004"].profiles["seed"])
    )


def test_switches_name_profile_fields_and_cover_every_boolean_switch() -> None:
    fields = {f.name for f in dataclasses.fields(Profile) if f.type in ("bool", bool)}
    named = {s for b in CATALOG for s in b.switches}
    # retry_attempts (CHAL-007) is a number, not a boolean switch.
    assert named <= {f.name for f in dataclasses.fields(Profile)}
    assert fields - named == set()


def _broken_copy(tmp_path: Path) -> Path:
    root = tmp_path / "fixtures"
    shutil.copytree(fixtures_dir() / "catalog", root / "catalog")
    shutil.copy(fixtures_dir() / "catalog.schema.json", root)
    return root


def _edit(root: Path, area: str, change: Any) -> None:
    path = root / "catalog" / f"{area}.json"
    doc = json.loads(path.read_text())
    change(doc["behaviors"])
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("area", "change", "problem"),
    [
        pytest.param("ref", lambda b: b.append(dict(b[0])), "duplicate ID", id="dup"),
        pytest.param(
            "ep",
            lambda b: b[0].update(id="REF-099"),
            "prefix does not match",
            id="prefix",
        ),
        pytest.param(
            "tls",
            lambda b: b[0].update(statement="The puller should reject it."),
            '"should"',
            id="should",
        ),
        pytest.param(
            "auth", lambda b: b[0].update(sources=[]), "sources", id="no-source"
        ),
        pytest.param(
            "cri", lambda b: b[0].update(level="MUSTNT"), "schema", id="level"
        ),
        pytest.param(
            "pull",
            lambda b: b[0].update(switches=["no_such"]),
            "no Profile",
            id="switch",
        ),
        pytest.param(
            "chal", lambda b: b[0].update(markers=["DELTA-1.6"]), "DELTA", id="delta"
        ),
        pytest.param("err", lambda b: b[2].update(upstream=[]), "F-07", id="orphan-F"),
    ],
)
def test_lint_reports_broken_entries(
    tmp_path: Path, area: str, change: Any, problem: str
) -> None:
    root = _broken_copy(tmp_path)
    _edit(root, area, change)
    problems = lint_catalog(root)
    assert any(problem in p for p in problems), problems
    with pytest.raises(CatalogError):
        Catalog.load(root)


def test_lint_reports_a_missing_area_file(tmp_path: Path) -> None:
    root = _broken_copy(tmp_path)
    (root / "catalog" / "cfg.json").unlink()
    assert "catalog/cfg.json: missing" in lint_catalog(root)


SAMPLE = """
import pytest
from pytest import mark

behavior = pytest.mark.behavior
pytestmark = pytest.mark.behavior("REF-001")
TABLE = [pytest.param(1, marks=pytest.mark.behavior("EP-001"), id="tbl")]

@mark.behavior("REF-002", "REF-003")
def test_deco():
    pass

@pytest.mark.parametrize("x", [pytest.param(1, marks=[behavior("AUTH-001")], id="p1")])
def test_param(x):
    pass

@pytest.mark.parametrize("x", TABLE)
def test_table(x):
    pass

class TestGroup:
    pytestmark = [pytest.mark.behavior("CHAL-001")]

    def test_method(self):
        pass

def test_dynamic():
    pytest.mark.behavior(ID)
"""


def test_gate_scanner_finds_every_tag_form(tmp_path: Path) -> None:
    path = tmp_path / "test_sample.py"
    path.write_text(SAMPLE)
    tags, dynamic = scan_file(path, origin="suite", root=tmp_path)
    found = {(t.behavior, t.test) for t in tags}
    assert found == {
        ("REF-001", "test_sample.py"),
        ("EP-001", "test_sample.py::test_table[tbl]"),
        ("REF-002", "test_sample.py::test_deco"),
        ("REF-003", "test_sample.py::test_deco"),
        ("AUTH-001", "test_sample.py::test_param[p1]"),
        ("CHAL-001", "test_sample.py::TestGroup"),
    }
    line = SAMPLE.splitlines().index("    pytest.mark.behavior(ID)") + 1
    assert dynamic == [f"test_sample.py:{line}"]


def test_gate_fails_on_uncovered_strict_behaviours_and_unknown_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    strict = [b.id for b in CATALOG if b.strict]
    ids = ", ".join(f'"{i}"' for i in strict)
    (suite / "test_all.py").write_text(
        f"import pytest\n\n@pytest.mark.behavior({ids})\ndef test_all():\n    pass\n"
    )
    assert gate_main(["gate", "--suite", str(suite)]) == 0
    assert "Uncovered MUST/SECURITY behaviours (0)" in capsys.readouterr().out

    (suite / "test_more.py").write_text(
        "import pytest\n\n@pytest.mark.behavior('NOPE-001')\ndef test_x():\n    pass\n"
    )
    assert gate_main(["gate", "--suite", str(suite)]) == 1
    assert "NOPE-001" in capsys.readouterr().out

    (suite / "test_all.py").unlink()
    (suite / "test_more.py").unlink()
    assert gate_main(["gate", "--suite", str(suite)]) == 1
    assert gate_main(["coverage", "--suite", str(suite)]) == 0
    coverage = compute_coverage(CATALOG, suite=[suite])
    assert set(coverage.uncovered()) == set(strict)


def test_cli_lint_reports_ok_and_fails_on_a_broken_catalog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lint"]) == 0
    assert "159 behaviours in 17 areas" in capsys.readouterr().out
    root = _broken_copy(tmp_path)
    _edit(root, "ref", lambda b: b.append(dict(b[0])))
    assert main(["--fixtures", str(root), "lint"]) == 1


def test_catalog_api_indexes_behaviours_by_id_and_area() -> None:
    behavior = CATALOG.by_id["AUTH-009"]
    assert CATALOG.get("AUTH-009") is behavior
    assert CATALOG.get("NOPE-001") is None
    assert "AUTH-009" in CATALOG
    assert behavior in CATALOG.areas["AUTH"]
    assert list(CATALOG.areas) == list(AREAS)
    assert behavior.strict
    assert not CATALOG.by_id["RES-010"].strict
    assert behavior.sources[0].ref.startswith("containerd/cri@ab6701bd")
    assert load_catalog() is CATALOG  # cached per directory


def test_fixtures_dir_prefers_the_copy_shipped_in_a_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cri_conformance.catalog as module

    shipped = tmp_path / "site-packages" / "cri_conformance" / "_fixtures"
    shipped.mkdir(parents=True)
    (shipped / "catalog.schema.json").write_text("{}")
    monkeypatch.setattr(module, "__file__", str(shipped.parent / "catalog.py"))
    assert fixtures_dir() == shipped
    (shipped / "catalog.schema.json").unlink()
    with pytest.raises(FileNotFoundError):
        fixtures_dir()
