"""Digest validation (go-digest wording) and the streaming verifier (FETCH-008)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refpull.digest import Digest, DigestError, DigestVerifier, sha256_digest
from refpull.errors import DigestMismatch, SizeMismatch

HEX64 = "a" * 64


@pytest.mark.behavior("REF-010")
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param(
            "sha256:" + "A" * 64, "invalid checksum digest format", id="upper-hex"
        ),
        pytest.param(
            "sha256:" + "a" * 32, "invalid checksum digest length", id="short"
        ),
        pytest.param("md5:" + "a" * 32, "unsupported digest algorithm", id="md5"),
        pytest.param("sha256", "invalid checksum digest format", id="no-colon"),
        pytest.param(":" + HEX64, "invalid checksum digest format", id="no-algorithm"),
        pytest.param("sha256:", "invalid checksum digest format", id="no-encoded"),
        pytest.param(
            "SHA256:" + HEX64, "invalid checksum digest format", id="upper-algo"
        ),
        pytest.param(
            "sha256:../../x", "invalid checksum digest length", id="traversal"
        ),
        pytest.param(
            "sha256:" + "g" * 64, "invalid checksum digest format", id="non-hex"
        ),
    ],
)
def test_invalid_digests_are_rejected_with_go_digest_wording(
    value: str, reason: str
) -> None:
    with pytest.raises(DigestError) as info:
        Digest.parse(value)
    assert str(info.value) == reason


@pytest.mark.behavior("REF-010")
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("sha256:" + HEX64, id="sha256"),
        pytest.param("sha384:" + "b" * 96, id="sha384"),
        pytest.param("sha512:" + "c" * 128, id="sha512"),
    ],
)
def test_registered_algorithms_are_accepted(value: str) -> None:
    assert str(Digest.parse(value)) == value


@given(st.text(max_size=80))
def test_parse_never_fails_with_an_untyped_error(value: str) -> None:
    try:
        d = Digest.parse(value)
    except DigestError:
        return
    assert str(d) == value
    assert d.algorithm in ("sha256", "sha384", "sha512")


def test_sha256_digest_matches_hashlib() -> None:
    assert sha256_digest(b"x") == "sha256:" + hashlib.sha256(b"x").hexdigest()
    assert str(Digest.from_bytes(b"x")) == sha256_digest(b"x")


@pytest.mark.behavior("FETCH-008")
def test_verifier_reports_size_before_digest() -> None:
    v = DigestVerifier(sha256_digest(b"abc"), 3, ref="layer-x")
    v.update(b"abcd")
    with pytest.raises(SizeMismatch) as info:
        v.verify()
    assert str(info.value) == (
        'failed commit on ref "layer-x": unexpected commit size 4, expected 3: '
        "failed precondition"
    )


@pytest.mark.behavior("FETCH-008")
def test_verifier_reports_digest_mismatch_with_both_digests() -> None:
    want = sha256_digest(b"abc")
    v = DigestVerifier(want, 3, ref="layer-x")
    v.update(b"abd")
    with pytest.raises(DigestMismatch) as info:
        v.verify()
    got = sha256_digest(b"abd")
    assert info.value.expected == want
    assert info.value.actual == got
    assert str(info.value) == (
        f'failed commit on ref "layer-x": unexpected commit digest {got}, '
        f"expected {want}: failed precondition"
    )


def test_verifier_accepts_matching_content_in_chunks() -> None:
    v = DigestVerifier(sha256_digest(b"hello world"), None)
    for chunk in (b"hello", b" ", b"world"):
        v.update(chunk)
    v.verify()
    assert v.size == 11
