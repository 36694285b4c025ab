"""Docker schema1 images: conversion, the image ID, what is downloaded, what is refused.

Catalog area S1 (behaviors.md §12) and CRI-002; upstream finding F-23. The expected
image ID comes from the reference's converter (``refpull.content.schema1``), which
``cri_conformance`` may import; the runtime is seen only through CRI and the journal.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import pytest

from cri_conformance.scenario import Case
from refpull.content.schema1 import Schema1Converter, blob_state
from refpull.profiles import CONTAINERD_16, SEED, Profile, get_profile
from registry_sim.faults import Fault, Match, WrongMediaType
from registry_sim.images import Schema1, Schema1Entry

SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"


def _schema1(case: Case, entries: list[Any], **kwargs: Any) -> Schema1:
    return Schema1.signed(entries, name=case.repo, tag="1", nonce=case.nonce, **kwargs)


def _expected_id(s1: Schema1, profile: Profile) -> str:
    """The image ID the reference converter computes for *s1* (S1-007, S1-008)."""
    converter = Schema1Converter.parse(s1.manifest, profile)
    diff_ids: dict[str, str] = {}
    sizes: dict[str, int] = {}
    empty: set[str] = set()
    for desc in converter.blobs_to_fetch():
        content = s1.blobs[desc.digest]
        data = content if isinstance(content, bytes) else content.read_bytes()
        state = blob_state(io.BytesIO(data), profile)
        diff_ids[desc.digest] = state.diff_id
        sizes[desc.digest] = len(data)
        if state.empty:
            empty.add(desc.digest)
    return converter.build(diff_ids, sizes, empty_blobs=empty).image_id


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
    """A schema1 tag pull answers the converter's config digest and no repo digest."""
    s1 = _schema1(case, [case.layer(0), case.layer(1)])
    case.push(s1, "1")
    image_id = case.pull(case.ref("1"))
    assert image_id == _expected_id(s1, get_profile(case.profile))
    info = case.status(case.ref("1"))
    assert info is not None
    assert info.id == image_id
    assert list(info.repo_tags) == [case.ref("1")]
    assert list(info.repo_digests) == []


@pytest.mark.behavior("S1-001", "RES-004")
def test_text_plain_is_read_as_signed_schema1(case: Case) -> None:
    """A schema1 body served as ``text/plain`` is converted like ``+prettyjws``."""
    s1 = _schema1(case, [case.layer(0)])
    case.push(s1, "1")
    case.world.add_fault(Fault(Match(path="/manifests/"), WrongMediaType("text/plain")))
    assert case.pull(case.ref("1")) == _expected_id(s1, get_profile(case.profile))


@pytest.mark.behavior("S1-001", "S1-009")
def test_repeated_schema1_pull_gives_the_same_id(case: Case) -> None:
    """Pulling the same schema1 tag twice yields the same image ID (F-23)."""
    s1 = _schema1(case, [case.layer(0)])
    case.push(s1, "1")
    assert case.pull(case.ref("1")) == case.pull(case.ref("1"))


@pytest.mark.behavior("S1-006", "S1-007")
def test_empty_layers_by_history_are_never_downloaded(case: Case) -> None:
    """``throwaway: true`` and ``Size: 0`` layers are skipped; the rest are fetched."""
    kept = [case.layer(0), case.layer(3)]
    thrown, sized_zero = case.layer(1), case.layer(2)
    entries = [
        Schema1Entry(kept[0]),
        Schema1Entry(thrown, throwaway=True),
        Schema1Entry(sized_zero, size=0),
        Schema1Entry(kept[1], throwaway=False, size=0),
    ]
    s1 = _schema1(case, entries)
    case.push(s1, "1")
    assert case.pull(case.ref("1")) == _expected_id(s1, get_profile(case.profile))
    fetched = _blob_gets(case)
    assert {kept[0].digest, kept[1].digest} <= fetched
    assert thrown.digest not in fetched
    assert sized_zero.digest not in fetched


@pytest.mark.behavior("S1-007", "S1-008")
def test_all_zero_blob_is_dropped_from_diff_ids(case: Case) -> None:
    """The classic empty-tar blob is downloaded but left out of the rootfs."""
    s1 = _schema1(case, [case.layer(0), Schema1Entry(None)])
    case.push(s1, "1")
    assert case.pull(case.ref("1")) == _expected_id(s1, get_profile(case.profile))


@pytest.mark.behavior("S1-006")
def test_repeated_blob_is_downloaded_once(case: Case) -> None:
    """A blobSum listed twice is fetched once (de-duplicated, F-27)."""
    layer = case.layer(0)
    s1 = _schema1(case, [layer, case.layer(1), layer])
    case.push(s1, "1")
    assert case.pull(case.ref("1")) == _expected_id(s1, get_profile(case.profile))
    gets = [ex for ex in case.exchanges() if ex.path.endswith(layer.digest)]
    assert [ex.method for ex in gets] == ["GET"]


@pytest.mark.behavior("S1-008")
def test_image_spec_11_fields_follow_the_profile(case: Case) -> None:
    """``variant``/``os.version`` in v1Compatibility change the ID only in 1.6."""
    extra = {"variant": "v2", "os.version": "10.0.17763", "os.features": ["win32k"]}
    s1 = _schema1(case, [Schema1Entry(case.layer(0), extra=extra)])
    assert _expected_id(s1, SEED) != _expected_id(s1, CONTAINERD_16)
    case.push(s1, "1")
    assert case.pull(case.ref("1")) == _expected_id(s1, get_profile(case.profile))


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
    s1 = _schema1(case, [case.layer(0)]).malformed(kind)
    case.world.sim.push_manifest(case.repo, "1", s1.manifest, SCHEMA1_SIGNED)
    for content in s1.blobs.values():
        case.world.sim.push_blob(case.repo, content)
    # S1-003 asks for an error, any error, and no crash: no particular gRPC code.
    case.pull_error(case.ref("1"))
    _assert_alive(case)


@pytest.mark.behavior("S1-002", "S1-003")
def test_zero_format_length_puts_the_whole_payload_in_the_tail(case: Case) -> None:
    """``formatLength: 0`` is well-formed: the payload is the decoded tail alone."""
    s1 = _schema1(case, [case.layer(0)]).malformed("format-length-zero")
    case.world.sim.push_manifest(case.repo, "1", s1.manifest, SCHEMA1_SIGNED)
    for content in s1.blobs.values():
        case.world.sim.push_blob(case.repo, content)
    assert case.pull(case.ref("1")) == _expected_id(s1, get_profile(case.profile))


@pytest.mark.behavior("S1-005")
@pytest.mark.parametrize("kind", ["extra-layers-key", "extra-manifests-key"])
def test_ambiguous_document_follows_the_profile(case: Case, kind: Any) -> None:
    """Schema1 plus ``layers``/``manifests``: seed converts it, containerd 1.6 refuses."""
    s1 = _schema1(case, [case.layer(0)]).malformed(kind)
    case.world.sim.push_manifest(case.repo, "1", s1.manifest, SCHEMA1_SIGNED)
    for content in s1.blobs.values():
        case.world.sim.push_blob(case.repo, content)
    profile = get_profile(case.profile)
    if profile.schema1_rejects_ambiguous:
        assert case.pull_error(case.ref("1")).code == "UNKNOWN"
        assert case.status(case.ref("1")) is None
    else:
        assert case.pull(case.ref("1")) == _expected_id(s1, profile)


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
