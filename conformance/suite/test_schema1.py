"""Docker schema1 images: conversion, the image ID, what is downloaded, what is refused.

Catalog area S1 (behaviors.md §12) and CRI-002; upstream finding F-23. A case that
checks a converted image ID builds a fixed schema1 image (``_build``: no nonce, the
same layers every run) and reads the ID from its golden vector,
``fixtures/vectors/schema1/case-<name>.json``, recorded per profile from the real
runtimes (issue 11 item 2); the runtime is seen only through CRI and the journal.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from cri_conformance.catalog import fixtures_dir
from cri_conformance.scenario import Case
from registry_sim.faults import Fault, Match, WrongMediaType
from registry_sim.images import Layer, Schema1, Schema1Entry

SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
VECTORS = fixtures_dir() / "vectors" / "schema1"


def _schema1(case: Case, entries: list[Any], **kwargs: Any) -> Schema1:
    return Schema1.signed(entries, name=case.repo, tag="1", nonce=case.nonce, **kwargs)


def _fixed(vector: str, index: int) -> Layer:
    """Layer *index* of a vector's image: the same bytes on every run."""
    return Layer.random(512, seed=f"schema1-case-{vector}-{index}")


def _entries(vector: str) -> list[Schema1Entry | Layer]:
    """The history (base first) of each vector's image."""
    layer = _fixed(vector, 0)
    return {
        "two-layers": [layer, _fixed(vector, 1)],
        "empty-by-history": [
            Schema1Entry(layer),
            Schema1Entry(_fixed(vector, 1), throwaway=True),
            Schema1Entry(_fixed(vector, 2), size=0),
            Schema1Entry(_fixed(vector, 3), throwaway=False, size=0),
        ],
        "all-zero-blob": [layer, Schema1Entry(None)],
        "repeated-blob": [layer, _fixed(vector, 1), layer],
        "spec11-fields": [
            Schema1Entry(
                layer,
                extra={
                    "variant": "v2",
                    "os.version": "10.0.17763",
                    "os.features": ["win32k"],
                },
            )
        ],
    }.get(vector, [layer])


#: Vectors whose document is a signed one broken as ``Schema1.malformed`` names.
_MALFORMED = ("format-length-zero", "extra-layers-key", "extra-manifests-key")
#: The vectors ``_build`` makes (each file's ``source`` says how it was measured).
CASE_VECTORS = (
    "two-layers",
    "empty-by-history",
    "all-zero-blob",
    "repeated-blob",
    "spec11-fields",
    *_MALFORMED,
)


def _build(vector: str, name: str) -> Schema1:
    """The image of ``case-<vector>.json``; *name* is only its ``name`` field."""
    s1 = Schema1.signed(_entries(vector), name=name, tag="1")
    return s1.malformed(vector) if vector in _MALFORMED else s1  # type: ignore[arg-type]


def _document(manifest: bytes | str) -> dict[str, Any]:
    """A schema1 document without what the conversion does not read."""
    doc: dict[str, Any] = json.loads(manifest)
    return {k: v for k, v in doc.items() if k not in ("name", "tag", "signatures")}


def _vector(vector: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (VECTORS / f"case-{vector}.json").read_text(encoding="utf-8")
    )
    return data


def _recorded_id(case: Case, vector: str, s1: Schema1) -> str:
    """The image ID the real runtime of the case's profile gave *s1* (its vector's)."""
    recorded = _vector(vector)
    # The vector holds this very image: same layers, same history, same blobs.
    assert _document(recorded["manifest"]) == _document(s1.payload)
    assert set(recorded["blobs"]) == set(s1.blobs)
    expected = recorded["expected"].get(case.profile)
    if expected is None:
        pytest.skip(f"not applicable: case-{vector}.json records no {case.profile} ID")
    image_id: str = expected["image_id"]
    return image_id


def _push(case: Case, s1: Schema1) -> None:
    """Serve *s1* as ``:1``, its body as built (a malformed one included)."""
    case.world.sim.push_manifest(case.repo, "1", s1.manifest, SCHEMA1_SIGNED)
    for content in s1.blobs.values():
        case.world.sim.push_blob(case.repo, content)


def _blob_gets(case: Case) -> set[str]:
    return {
        ex.path.rsplit("/", 1)[-1]
        for ex in case.exchanges()
        if ex.method == "GET" and "/blobs/" in ex.path
    }


def _assert_alive(case: Case) -> None:
    """The target still answers and still pulls a good image."""
    image = case.image(salt="alive")
    case.push(image, "alive")
    assert case.pull(case.ref("alive")) == image.config_digest


@pytest.fixture(autouse=True)
def _schema1_is_pulled(request: pytest.FixtureRequest, case: Case) -> None:
    """containerd 2.x pulls no schema1 at all (S1-001): the conversion cases do not apply."""
    if case.since("containerd-2.0") and request.node.name != (
        "test_schema1_pull_follows_the_profile"
    ):
        pytest.skip(
            f"unsupported: {case.profile} refuses schema1 manifests (S1-001; "
            "test_schema1_pull_follows_the_profile shows it)"
        )


@pytest.mark.behavior("S1-001")
def test_schema1_pull_follows_the_profile(case: Case) -> None:
    """Up to 1.7 a schema1 tag pulls; containerd 2.x refuses it and records nothing."""
    s1 = _schema1(case, [case.layer(0)])
    case.push(s1, "1")
    if not case.since("containerd-2.0"):
        assert case.pull(case.ref("1")).startswith("sha256:")
        return
    case.pull_error(case.ref("1"))
    assert case.status(case.ref("1")) is None
    # Refused for what the manifest is (it was served), before any layer is fetched.
    assert any(
        "/manifests/" in ex.path and ex.status == 200 for ex in case.exchanges()
    ), case.journal_text()
    assert _blob_gets(case) == set()


@pytest.mark.behavior("S1-001", "S1-008", "S1-009")
def test_signed_schema1_pulls_with_the_synthesized_id_and_no_repo_digest(
    case: Case,
) -> None:
    """A schema1 tag pull answers the converted config's digest and no repo digest."""
    s1 = _build("two-layers", case.repo)
    case.push(s1, "1")
    image_id = case.pull(case.ref("1"))
    assert image_id == _recorded_id(case, "two-layers", s1)
    info = case.status(case.ref("1"))
    assert info is not None
    assert info.id == image_id
    assert list(info.repo_tags) == [case.ref("1")]
    assert list(info.repo_digests) == []


@pytest.mark.behavior("S1-001", "RES-004")
def test_text_plain_is_read_as_signed_schema1(case: Case) -> None:
    """A schema1 body served as ``text/plain`` is converted like ``+prettyjws``."""
    s1 = _build("two-layers", case.repo)
    case.push(s1, "1")
    case.world.add_fault(Fault(Match(path="/manifests/"), WrongMediaType("text/plain")))
    assert case.pull(case.ref("1")) == _recorded_id(case, "two-layers", s1)


@pytest.mark.behavior("S1-001", "S1-009")
def test_repeated_schema1_pull_gives_the_same_id(case: Case) -> None:
    """Pulling the same schema1 tag twice yields the same image ID (F-23)."""
    s1 = _schema1(case, [case.layer(0)])
    case.push(s1, "1")
    assert case.pull(case.ref("1")) == case.pull(case.ref("1"))


@pytest.mark.behavior("S1-006", "S1-007")
def test_empty_layers_by_history_are_never_downloaded(case: Case) -> None:
    """``throwaway: true`` and ``Size: 0`` layers are skipped; the rest are fetched."""
    s1 = _build("empty-by-history", case.repo)
    kept, thrown, sized_zero, kept_too = (
        _fixed("empty-by-history", i) for i in range(4)
    )
    case.push(s1, "1")
    assert case.pull(case.ref("1")) == _recorded_id(case, "empty-by-history", s1)
    fetched = _blob_gets(case)
    assert {kept.digest, kept_too.digest} <= fetched
    assert thrown.digest not in fetched
    assert sized_zero.digest not in fetched


@pytest.mark.behavior("S1-007", "S1-008")
def test_all_zero_blob_is_dropped_from_diff_ids(case: Case) -> None:
    """The classic empty-tar blob is downloaded but left out of the rootfs."""
    s1 = _build("all-zero-blob", case.repo)
    case.push(s1, "1")
    assert case.pull(case.ref("1")) == _recorded_id(case, "all-zero-blob", s1)


@pytest.mark.behavior("S1-006")
def test_repeated_blob_is_downloaded_once(case: Case) -> None:
    """A blobSum listed twice is fetched once (de-duplicated, F-27)."""
    s1 = _build("repeated-blob", case.repo)
    layer = _fixed("repeated-blob", 0)  # listed first and last
    case.push(s1, "1")
    assert case.pull(case.ref("1")) == _recorded_id(case, "repeated-blob", s1)
    gets = [ex for ex in case.exchanges() if ex.path.endswith(layer.digest)]
    assert [ex.method for ex in gets] == ["GET"]


@pytest.mark.behavior("S1-008")
def test_image_spec_11_fields_follow_the_profile(case: Case) -> None:
    """``variant``/``os.version`` in v1Compatibility change the ID only in 1.6."""
    s1 = _build("spec11-fields", case.repo)
    recorded = _vector("spec11-fields")["expected"]
    # The real seed and containerd 1.6.20 gave this image different IDs.
    assert recorded["seed"]["image_id"] != recorded["containerd-1.6"]["image_id"]
    case.push(s1, "1")
    assert case.pull(case.ref("1")) == _recorded_id(case, "spec11-fields", s1)


@pytest.mark.behavior("S1-003")
@pytest.mark.parametrize(
    "kind",
    [
        "bad-protected-base64",
        "format-length-beyond-body",
        "negative-format-length",
        "non-integer-format-length",
        "bad-tail",
        "no-signatures",
    ],
)
def test_malformed_protected_header_is_an_error_and_the_target_survives(
    case: Case, kind: Any
) -> None:
    """A broken signature block fails the pull; the runtime keeps serving."""
    _push(case, _schema1(case, [case.layer(0)]).malformed(kind))
    # S1-003 asks for an error, any error, and no crash: no particular gRPC code.
    case.pull_error(case.ref("1"))
    _assert_alive(case)


@pytest.mark.behavior("S1-002", "S1-003")
def test_zero_format_length_puts_the_whole_payload_in_the_tail(case: Case) -> None:
    """``formatLength: 0`` is well-formed: the payload is the decoded tail alone."""
    s1 = _build("format-length-zero", case.repo)
    _push(case, s1)
    assert case.pull(case.ref("1")) == _recorded_id(case, "format-length-zero", s1)


@pytest.mark.behavior("S1-005")
@pytest.mark.parametrize("kind", ["extra-layers-key", "extra-manifests-key"])
def test_ambiguous_document_follows_the_profile(case: Case, kind: Any) -> None:
    """Schema1 plus ``layers``/``manifests``: seed converts it, containerd 1.6 refuses."""
    s1 = _build(kind, case.repo)
    _push(case, s1)
    if case.since("containerd-1.6"):
        assert case.pull_error(case.ref("1")).code == "UNKNOWN"
        assert case.status(case.ref("1")) is None
    else:
        assert case.pull(case.ref("1")) == _recorded_id(case, kind, s1)


@pytest.mark.behavior("S1-010")
def test_schema1_without_history_is_refused(case: Case) -> None:
    """A schema1 document with no layers and no history fails conversion."""
    s1 = _schema1(case, [])
    case.push(s1, "1")
    assert case.pull_error(case.ref("1")).code == "UNKNOWN"
    assert case.status(case.ref("1")) is None
    _assert_alive(case)


@pytest.mark.behavior("S1-004", "CRI-002")
def test_schema1_by_its_payload_digest_records_that_digest(case: Case) -> None:
    """A schema1 pull by its real digest succeeds and records ``name@digest``."""
    s1 = _schema1(case, [case.layer(0)])
    digest = case.push(s1, "1")
    assert digest == s1.digest
    case.pull(case.ref(None, digest=digest))
    info = case.status(case.ref(None, digest=digest))
    assert info is not None
    assert list(info.repo_digests) == [case.ref(None, digest=digest)]


@pytest.mark.behavior("S1-004")
def test_schema1_not_matching_the_requested_digest_is_refused(case: Case) -> None:
    """Schema1 bytes served under a digest they do not hash to are refused (SECURITY)."""
    s1 = _schema1(case, [case.layer(0)])
    forged = "sha256:" + hashlib.sha256(f"forged {case.nonce}".encode()).hexdigest()
    case.world.sim.push_manifest(case.repo, forged, s1.manifest, SCHEMA1_SIGNED)
    for content in s1.blobs.values():
        case.world.sim.push_blob(case.repo, content)
    ref = case.ref(None, digest=forged)
    case.pulled.append(ref)  # removed afterwards even when the runtime accepts it
    case.pull_error(ref)
    assert case.status(ref) is None
