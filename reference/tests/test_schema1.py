"""Schema1 signature stripping and conversion (behaviors.md §12, S1-001..S1-010)."""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refpull import mediatypes as mt
from refpull.content.schema1 import (
    MANIFEST_SIZE_LIMIT,
    Schema1Converter,
    blob_state,
    check_requested_digest,
    strip_signature,
)
from refpull.digest import sha256_digest
from refpull.errors import DigestMismatch, Schema1Error
from refpull.profiles import CONTAINERD_16, SEED, Profile

PROFILES = pytest.mark.parametrize(
    "profile", [SEED, CONTAINERD_16], ids=["seed", "containerd-1.6"]
)
VECTORS = Path(__file__).resolve().parents[2] / "fixtures" / "vectors" / "schema1"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def protected(length: Any, tail: Any) -> str:
    return b64(json.dumps({"formatLength": length, "formatTail": tail}).encode())


def sign(payload: dict[str, Any], *, signature: str = "c2ln") -> tuple[bytes, bytes]:
    """Return (signed document, canonical payload) the way libtrust lays them out."""
    body = json.dumps(payload, indent=3).encode()
    cut = body.rindex(b"\n}")
    sig = {
        "header": {"alg": "ES256"},
        "signature": signature,
        "protected": protected(cut, b64(body[cut:])),
    }
    signed = (
        body[:cut]
        + b',\n   "signatures": ['
        + json.dumps(sig).encode()
        + b"]"
        + body[cut:]
    )
    return signed, body


def dg(c: str) -> str:
    return "sha256:" + c * 64


def schema1(
    layers: list[tuple[str, dict[str, Any]]], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 1,
        "name": "t/a",
        "tag": "v1",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": blob} for blob, _ in layers],
        "history": [{"v1Compatibility": json.dumps(v1)} for _, v1 in layers],
    }
    doc.update(extra or {})
    return doc


# ------------------------------------------------------------------ S1-002 / S1-003


@pytest.mark.behavior("S1-002")
def test_signature_is_stripped_to_the_canonical_payload() -> None:
    signed, body = sign({"schemaVersion": 1, "name": "x"})
    assert strip_signature(signed) == body


def doc_with(prot: str) -> bytes:
    return json.dumps({"a": 1, "signatures": [{"protected": prot}]}).encode()


@pytest.mark.behavior("S1-002")
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(b'{"a": 1}', "no signatures", id="no-signatures"),
        pytest.param(b'{"signatures": []}', "no signatures", id="empty-signatures"),
        pytest.param(
            doc_with("abcde"),
            "could not decode abcde: illegal base64url string",
            id="bad-length",
        ),
        pytest.param(
            doc_with(protected(10_000, "")),
            "invalid protected length block",
            id="length-too-big",
        ),
        pytest.param(
            doc_with(b64(b'{"formatLength": 1.5, "formatTail": ""}')),
            "json: cannot unmarshal number 1.5 into Go struct field "
            "protectedBlock.formatLength of type int",
            id="fractional-length",
        ),
        pytest.param(
            doc_with(protected(1, "abcde")),
            "invalid tail base 64 value: illegal base64url string",
            id="bad-tail",
        ),
        pytest.param(
            doc_with(""), "unexpected end of JSON input", id="empty-protected"
        ),
        pytest.param(
            b'{"signatures": 5}',
            "json: cannot unmarshal number into Go struct field "
            "signature.signatures of type []schema1.jsParsedSignature",
            id="signatures-number",
        ),
    ],
)
def test_signature_errors_have_containerd_wording(raw: bytes, message: str) -> None:
    with pytest.raises(Schema1Error) as info:
        strip_signature(raw)
    assert str(info.value) == message


@pytest.mark.behavior("S1-002")
def test_zero_format_length_yields_the_tail_only() -> None:
    assert strip_signature(doc_with(protected(0, b64(b"{}")))) == b"{}"


@pytest.mark.behavior("S1-002")
def test_bodies_over_8mb_are_truncated_and_fail_to_parse() -> None:
    signed, _ = sign({"schemaVersion": 1, "pad": "x" * MANIFEST_SIZE_LIMIT})
    with pytest.raises(Schema1Error):
        Schema1Converter.parse(signed, SEED)


@pytest.mark.behavior("S1-003")
def test_negative_format_length_is_an_error_not_a_crash() -> None:
    # Go panics here (slice bounds out of range [:-1]): Debian containerd 1.6.20 was seen
    # to crash during PullImage of such a manifest. The reference reports an error.
    with pytest.raises(Schema1Error, match="invalid protected length block"):
        strip_signature(doc_with(protected(-5, "")))


hostile_values = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
)


@pytest.mark.behavior("S1-003")
@given(length=hostile_values, tail=hostile_values, extra=st.text(max_size=10))
def test_hostile_protected_headers_only_raise_schema1_errors(
    length: Any, tail: Any, extra: str
) -> None:
    header = json.dumps({"formatLength": length, "formatTail": tail}).encode()
    for prot in (b64(header), b64(header) + extra, extra):
        try:
            out = strip_signature(doc_with(prot))
        except Schema1Error:
            continue
        assert isinstance(out, bytes)


@pytest.mark.behavior("S1-003")
@given(st.binary(max_size=300))
def test_arbitrary_documents_only_raise_schema1_errors(raw: bytes) -> None:
    with contextlib.suppress(Schema1Error):
        Schema1Converter.parse(raw, CONTAINERD_16)


v1_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["2020-01-01T00:00:00Z", "2020-02-30T00:00:00Z", "1:2"]),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(
        st.sampled_from(["Cmd", "Labels", "Env", "x"]), st.text(), max_size=3
    ),
)
v1_docs = st.dictionaries(
    st.sampled_from(
        [
            "created",
            "throwaway",
            "Size",
            "container_config",
            "config",
            "os",
            "OS",
            "architecture",
            "author",
            "history",
            "rootfs",
            "variant",
            "os.features",
        ]
    ),
    v1_values,
    max_size=6,
)


@pytest.mark.behavior("S1-003", "S1-010")
@given(st.lists(st.tuples(st.sampled_from("abc"), v1_docs), max_size=4))
def test_hostile_v1_compatibility_only_raises_schema1_errors(
    layers: list[tuple[str, dict[str, Any]]],
) -> None:
    signed, _ = sign(schema1([(dg(c), v1) for c, v1 in layers]))
    for profile in (SEED, CONTAINERD_16):
        try:
            conv = Schema1Converter.parse(signed, profile)
            blobs = [d.digest for d in conv.blobs_to_fetch()]
            image = conv.build({b: dg("e") for b in blobs}, {b: 1 for b in blobs})
        except Schema1Error:
            continue
        assert json.loads(image.config_bytes)["rootfs"]["type"] == "layers"


# ------------------------------------------------------------------ S1-004 / S1-005


@pytest.mark.behavior("S1-004")
def test_signatures_are_never_verified() -> None:
    signed, body = sign(schema1([(dg("a"), {"Size": 1})]), signature="not-a-signature")
    conv = Schema1Converter.parse(signed, CONTAINERD_16)
    assert [d.digest for d in conv.blobs_to_fetch()] == [dg("a")]
    # The digest a tag resolves to by GET is that of the payload, not of the served bytes.
    assert sha256_digest(strip_signature(signed)) == sha256_digest(body)
    assert sha256_digest(body) != sha256_digest(signed)


_SIGNED, _PAYLOAD = sign(schema1([(dg("a"), {"Size": 1})]))


@pytest.mark.behavior("S1-004")
@pytest.mark.parametrize(
    "requested",
    [
        pytest.param(sha256_digest(_PAYLOAD), id="payload-digest"),
        pytest.param(sha256_digest(_SIGNED), id="served-body-digest"),
        pytest.param(
            "sha512:" + hashlib.sha512(_SIGNED).hexdigest(), id="served-body-sha512"
        ),
    ],
)
def test_schema1_matching_its_requested_digest_is_accepted(requested: str) -> None:
    check_requested_digest(_SIGNED, requested)


@pytest.mark.behavior("S1-004")
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_SIGNED, id="signed"),
        pytest.param(b"not json at all", id="unparsable"),
        pytest.param(_PAYLOAD, id="unsigned"),
    ],
)
def test_schema1_not_matching_its_requested_digest_is_refused(raw: bytes) -> None:
    forged = dg("f")
    with pytest.raises(DigestMismatch, match=r": failed precondition$") as info:
        check_requested_digest(raw, forged)
    assert info.value.expected == forged
    assert info.value.actual in (sha256_digest(raw), sha256_digest(_PAYLOAD))


@pytest.mark.behavior("S1-005")
@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"layers": []}, id="layers-empty-list"),
        pytest.param({"manifests": None}, id="manifests-null"),
        pytest.param({"Layers": [{"digest": dg("b")}]}, id="layers-any-case"),
    ],
)
@PROFILES
def test_ambiguous_schema1_documents_follow_the_profile(
    extra: dict[str, Any], profile: Profile
) -> None:
    signed, _ = sign(schema1([(dg("a"), {"Size": 1})], extra))
    if profile.schema1_rejects_ambiguous:
        with pytest.raises(Schema1Error) as info:
            Schema1Converter.parse(signed, profile)
        assert (
            str(info.value)
            == "converter: expected schema1 document but found extra keys"
        )
    else:
        assert Schema1Converter.parse(signed, profile).blobs_to_fetch()


# ------------------------------------------------------------------ S1-006 / S1-007


@pytest.mark.behavior("S1-006")
def test_download_plan_is_base_first_deduplicated_and_skips_empty_layers() -> None:
    layers = [
        (dg("d"), {"throwaway": True, "Size": 5}),  # top: throwaway wins -> empty
        (dg("c"), {"throwaway": False, "Size": 0}),  # throwaway false wins -> download
        (dg("b"), {"Size": 0}),  # Size 0 -> empty
        (dg("c"), {"Size": 0}),  # duplicate: first occurrence decided
        (dg("a"), {}),  # undecidable -> download
    ]
    signed, _ = sign(schema1(layers))
    conv = Schema1Converter.parse(signed, SEED)
    plan = conv.blobs_to_fetch()
    assert [d.digest for d in plan] == [dg("a"), dg("c")]
    assert {(d.media_type, d.size) for d in plan} == {(mt.DOCKER_LAYER, -1)}


@pytest.mark.behavior("S1-006")
def test_history_and_layer_counts_must_match() -> None:
    doc = schema1([(dg("a"), {})])
    doc["history"].append({"v1Compatibility": "{}"})
    signed, _ = sign(doc)
    with pytest.raises(Schema1Error) as info:
        Schema1Converter.parse(signed, SEED)
    assert str(info.value) == "invalid schema 1 manifest, history and layer mismatch"


@pytest.mark.behavior("S1-006")
def test_string_throwaway_is_a_go_type_error() -> None:
    signed, _ = sign(schema1([(dg("a"), {"throwaway": "true"})]))
    with pytest.raises(Schema1Error) as info:
        Schema1Converter.parse(signed, SEED)
    assert str(info.value) == (
        "json: cannot unmarshal string into Go struct field v1History.throwaway of type bool"
    )


def test_invalid_blob_sums_are_refused_before_any_fetch() -> None:
    signed, _ = sign(schema1([("sha256:../../x", {})]))
    with pytest.raises(Schema1Error, match="invalid blobSum"):
        Schema1Converter.parse(signed, SEED)


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.behavior("S1-007")
@PROFILES
def test_blob_state_hashes_the_uncompressed_stream(profile: Profile) -> None:
    raw = tar_bytes({"a": b"hello"})
    gz = blob_state(io.BytesIO(gzip.compress(raw)), profile)
    plain = blob_state(io.BytesIO(raw), profile)
    assert gz.diff_id == plain.diff_id == sha256_digest(raw)
    assert (gz.compression, plain.compression) == ("gzip", "none")
    assert not gz.empty


@pytest.mark.behavior("S1-007")
@pytest.mark.parametrize(
    "blob",
    [
        pytest.param(b"\0" * 1024, id="empty-tar"),
        pytest.param(gzip.compress(b"\0" * 1024), id="gzipped-empty-tar"),
        pytest.param(b"", id="zero-length"),
    ],
)
def test_all_zero_blobs_are_empty(blob: bytes) -> None:
    assert blob_state(io.BytesIO(blob), SEED).empty


# ------------------------------------------------------------------ S1-008 / S1-009


def history_v1(**fields: Any) -> dict[str, Any]:
    return {"id": "x", **fields}


def convert(
    layers: list[tuple[str, dict[str, Any]]],
    profile: Profile,
    diff: dict[str, str] | None = None,
    empty: tuple[str, ...] = (),
) -> Any:
    signed, _ = sign(schema1(layers))
    conv = Schema1Converter.parse(signed, profile)
    blobs = [d.digest for d in conv.blobs_to_fetch()]
    diff = diff or {b: "sha256:" + b[7] * 63 + "f" for b in blobs}
    return conv.build(diff, {b: 100 for b in blobs}, empty_blobs=empty)


@pytest.mark.behavior("S1-008")
@PROFILES
def test_config_bytes_follow_go_marshal_indent(profile: Profile) -> None:
    top = history_v1(
        created="2020-01-02T03:04:05.500000000+02:00",
        author="A <a@b>",
        architecture="amd64",
        os="linux",
        OS="LINUX2",
        config={"Cmd": ["sh"], "Labels": {"b": "1", "a": "x&y\u2028\x01"}},
        container_config={"Cmd": ["/bin/sh", "-c", "echo <hi>"]},
        throwaway=True,
    )
    base = history_v1(container_config={"Cmd": ["ADD", "f"]}, Size=10)
    image = convert([(dg("b"), top), (dg("a"), base)], profile)
    expected = (
        "{\n"
        '   "created": "2020-01-02T03:04:05.5+02:00",\n'
        '   "author": "A \\u003ca@b\\u003e",\n'
        '   "architecture": "amd64",\n'
        '   "os": "LINUX2",\n'
        '   "config": {\n'
        '      "Cmd": [\n'
        '         "sh"\n'
        "      ],\n"
        '      "Labels": {\n'
        '         "a": "x\\u0026y\\u2028\\u0001",\n'
        '         "b": "1"\n'
        "      }\n"
        "   },\n"
        '   "rootfs": {\n'
        '      "type": "layers",\n'
        '      "diff_ids": [\n'
        f'         "sha256:{"a" * 63}f"\n'
        "      ]\n"
        "   },\n"
        '   "history": [\n'
        "      {\n"
        '         "created": "0001-01-01T00:00:00Z",\n'
        '         "created_by": "ADD f"\n'
        "      },\n"
        "      {\n"
        '         "created": "2020-01-02T03:04:05.5+02:00",\n'
        '         "created_by": "/bin/sh -c echo \\u003chi\\u003e",\n'
        '         "author": "A \\u003ca@b\\u003e",\n'
        '         "empty_layer": true\n'
        "      }\n"
        "   ]\n"
        "}"
    )
    assert image.config_bytes.decode() == expected
    assert image.image_id == sha256_digest(expected.encode())


# The Go that built each graded runtime decides how backspace and form feed are written
# (go1.19.8 for Debian's 1.6.20, go1.27.3 for the seed built here; Go 1.22 changed it).
_CONTROL_ESCAPES = {
    "seed": '"\\b \\f \\u0007"',
    "containerd-1.6": '"\\u0008 \\u000c \\u0007"',
}


@pytest.mark.behavior("S1-008")
@PROFILES
def test_backspace_and_form_feed_follow_the_go_that_built_the_runtime(
    profile: Profile,
) -> None:
    top = history_v1(
        architecture="amd64", os="linux", config={"Labels": {"k": "\b \f \a"}}
    )
    image = convert([(dg("a"), top)], profile)
    assert f'"k": {_CONTROL_ESCAPES[profile.name]}' in image.config_bytes.decode()


@pytest.mark.behavior("S1-008")
def test_image_spec_11_fields_change_the_image_id_in_16_only() -> None:
    plain = history_v1(architecture="arm", os="linux", Size=1)
    rich = {
        **plain,
        "variant": "v7",
        "os.version": "1",
        "os.features": ["f"],
        "config": {"ArgsEscaped": True},
    }
    seed_plain = convert([(dg("a"), plain)], SEED)
    seed_rich = convert([(dg("a"), rich)], SEED)
    c16_plain = convert([(dg("a"), plain)], CONTAINERD_16)
    c16_rich = convert([(dg("a"), rich)], CONTAINERD_16)
    assert seed_plain.image_id == seed_rich.image_id == c16_plain.image_id
    assert c16_rich.image_id != c16_plain.image_id
    text = c16_rich.config_bytes.decode()
    order = ['"architecture"', '"variant"', '"os"', '"os.version"', '"os.features"']
    assert [text.index(k) for k in order] == sorted(text.index(k) for k in order)
    assert '"ArgsEscaped": true' in text


@pytest.mark.behavior("S1-007", "S1-009")
def test_all_zero_blob_is_dropped_from_layers_and_marked_empty() -> None:
    image = convert(
        [(dg("b"), history_v1(Size=5)), (dg("a"), history_v1(Size=5))],
        SEED,
        empty=(dg("b"),),
    )
    assert image.diff_ids == ("sha256:" + "a" * 63 + "f",)
    assert [d.digest for d in image.layers] == [dg("a")]
    history = json.loads(image.config_bytes)["history"]
    assert [h.get("empty_layer", False) for h in history] == [False, True]


@pytest.mark.behavior("S1-009")
@PROFILES
def test_converted_manifest_is_an_oci_manifest(profile: Profile) -> None:
    raw = tar_bytes({"f": b"x"})
    blob = sha256_digest(raw)  # uncompressed blob: diffID == digest -> tar media type
    image = convert(
        [
            (dg("b"), history_v1(Size=1)),
            (blob, history_v1(Size=1)),
            (dg("b"), history_v1()),
        ],
        profile,
        diff={dg("b"): "sha256:" + "e" * 64, blob: blob},
    )
    manifest = json.loads(image.manifest_bytes)
    assert image.manifest_desc.media_type == mt.OCI_MANIFEST
    assert image.manifest_desc.digest == sha256_digest(image.manifest_bytes)
    assert list(manifest) == ["schemaVersion", "config", "layers"]
    assert manifest["config"] == {
        "mediaType": mt.OCI_CONFIG,
        "digest": image.image_id,
        "size": len(image.config_bytes),
    }
    # Duplicated blob appears twice (base first); the plain tar keeps the tar media type.
    assert [(x["digest"], x["mediaType"]) for x in manifest["layers"]] == [
        (dg("b"), mt.DOCKER_LAYER),
        (blob, mt.DOCKER_LAYER_UNCOMPRESSED),
        (dg("b"), mt.DOCKER_LAYER),
    ]
    assert image.manifest_bytes.startswith(
        b'{\n   "schemaVersion": 2,\n   "config": {\n'
    )


# ------------------------------------------------------------------ S1-010


@pytest.mark.behavior("S1-010")
def test_empty_history_fails_conversion() -> None:
    signed, _ = sign(schema1([]))
    conv = Schema1Converter.parse(signed, SEED)
    assert conv.blobs_to_fetch() == []
    with pytest.raises(Schema1Error) as info:
        conv.build({})
    assert str(info.value) == "schema 1 conversion failed: no history"


@pytest.mark.behavior("S1-010")
def test_bad_history_entry_fails_conversion() -> None:
    # Only the first occurrence of a blob is decoded while planning (S1-006), so a bad
    # entry for a repeated blob surfaces during conversion.
    doc = schema1([(dg("a"), {"throwaway": True}), (dg("a"), {"throwaway": True})])
    doc["history"][1]["v1Compatibility"] = '{"throwaway": true, "created": "yesterday"}'
    signed, _ = sign(doc)
    conv = Schema1Converter.parse(signed, SEED)
    with pytest.raises(
        Schema1Error,
        match=r"^schema 1 conversion failed: failed to "
        r"unmarshal history: parsing time",
    ):
        conv.build({})


@pytest.mark.behavior("S1-010")
def test_bad_top_history_as_image_fails_conversion() -> None:
    signed, _ = sign(schema1([(dg("a"), {"throwaway": True, "architecture": 5})]))
    conv = Schema1Converter.parse(signed, SEED)
    with pytest.raises(Schema1Error) as info:
        conv.build({})
    assert str(info.value) == (
        "failed to unmarshal image from schema 1 history: json: cannot unmarshal number "
        "into Go struct field Image.architecture of type string"
    )


def test_missing_diff_ids_or_sizes_are_reported() -> None:
    signed, _ = sign(schema1([(dg("a"), {"Size": 1})]))
    conv = Schema1Converter.parse(signed, SEED)
    with pytest.raises(Schema1Error, match="missing diff id"):
        conv.build({})
    with pytest.raises(Schema1Error, match="missing size"):
        conv.build({dg("a"): dg("e")})


# ------------------------------------------------------------------ fixture vectors


def vector_files() -> list[Path]:
    return sorted(VECTORS.glob("*.json"))


@pytest.mark.behavior("S1-006", "S1-007", "S1-008", "S1-009")
@pytest.mark.parametrize("path", vector_files(), ids=lambda p: p.stem)
@PROFILES
def test_fixture_vectors_convert_byte_for_byte(path: Path, profile: Profile) -> None:
    """containerd-1.6 expectations were recorded from Debian containerd 1.6.20."""
    vector = json.loads(path.read_text("utf-8"))
    refused = vector.get("refused", {}).get(profile.name)
    if refused is not None:  # the runtime refused the document (e.g. S1-005)
        message = refused.split(": ", 1)[1]
        with pytest.raises(Schema1Error, match=f"^{re.escape(message)}$"):
            Schema1Converter.parse(vector["manifest"].encode(), profile)
        return
    conv = Schema1Converter.parse(vector["manifest"].encode(), profile)
    assert [d.digest for d in conv.blobs_to_fetch()] == vector["fetch"]
    blobs = {d: base64.b64decode(b) for d, b in vector["blobs"].items()}
    states = {d: blob_state(io.BytesIO(blobs[d]), profile) for d in vector["fetch"]}
    image = conv.build(
        {d: s.diff_id for d, s in states.items()},
        {d: len(blobs[d]) for d in states},
        empty_blobs=[d for d, s in states.items() if s.empty],
    )
    want = vector["expected"][profile.name]
    assert image.config_bytes.decode() == want["config"]
    assert image.image_id == want["image_id"]
    assert image.manifest_bytes.decode() == want["manifest"]
    assert image.manifest_desc.digest == want["manifest_digest"]


def test_fixture_vectors_exist() -> None:
    assert len(vector_files()) >= 4
