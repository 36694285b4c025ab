"""Image builders: reproducible bytes, honest digests, and deliberately broken variants."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import zstandard
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from registry_sim._jose import b64url_decode, b64url_encode
from registry_sim._schema1 import MALFORMED_KINDS
from registry_sim.images import (
    HOSTILE,
    Config,
    FileSpec,
    Image,
    Index,
    Layer,
    Platform,
    RecipeError,
    Schema1,
    Schema1Entry,
    load_recipe,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "images"
EMPTY_LAYER = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _uncompress(layer: Layer) -> bytes:
    data = layer.read_bytes()
    if layer.compression == "gzip":
        return gzip.decompress(data)
    if layer.compression == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def _members(layer: Layer) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(_uncompress(layer))) as tar:
        return tar.getmembers()


def _files() -> dict[str, bytes | str | FileSpec]:
    return {
        "bin/sh": FileSpec.file(b"#!shell", mode=0o755),
        "etc/passwd": "root:x:0:0::/root:/bin/sh\n",
        "bin/ash": FileSpec.symlink("sh"),
        "bin/hard": FileSpec.hardlink("bin/sh"),
        "var/old": FileSpec.whiteout(),
        "opt": FileSpec.opaque(),
    }


def _image(nonce: str = "n1") -> Image:
    base = Layer.from_files(_files())
    top = Layer.from_files({"app/run": "hello"}, "zstd")
    return Image.oci([base, top], Config(env=("A=1",), cmd=("run",)), nonce=nonce)


def _all_bytes(built: Image | Index | Schema1) -> dict[str, bytes]:
    blobs = {
        k: v.read_bytes() if isinstance(v, Path) else v for k, v in built.blobs.items()
    }
    return {**blobs, **{_sha(m): m for _, m in built.manifests}}


# -- layers --------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "none", "zstd"])
def test_layer_bytes_are_reproducible(compression: Any) -> None:
    first = Layer.from_files(_files(), compression)
    second = Layer.from_files(dict(reversed(list(_files().items()))), compression)
    assert first.read_bytes() == second.read_bytes()
    assert first.digest == _sha(first.read_bytes())
    assert first.size == len(first.read_bytes())
    assert first.diff_id == _sha(_uncompress(first))


def test_gzip_header_has_zero_mtime_and_no_file_name() -> None:
    data = Layer.from_files({"a": "b"}).read_bytes()
    assert data[:3] == b"\x1f\x8b\x08"
    assert data[3] & 0x08 == 0, "FNAME flag must be clear"
    assert data[4:8] == b"\0\0\0\0", "MTIME must be 0"


def test_tar_entries_are_sorted_with_fixed_owner_and_time() -> None:
    members = _members(Layer.from_files(_files(), mtime=1234))
    names = [m.name for m in members]
    assert names == sorted(names)
    assert {(m.uid, m.gid, m.mtime, m.uname, m.gname) for m in members} == {
        (0, 0, 1234, "", "")
    }


def test_tar_holds_links_whiteouts_and_implied_parent_dirs() -> None:
    by_name = {m.name: m for m in _members(Layer.from_files(_files()))}
    assert by_name["bin"].isdir()
    assert by_name["etc"].isdir()
    assert by_name["bin/ash"].issym()
    assert by_name["bin/ash"].linkname == "sh"
    assert by_name["bin/hard"].islnk()
    assert by_name["bin/hard"].linkname == "bin/sh"
    assert by_name["var/.wh.old"].isreg()
    assert by_name["var/.wh.old"].size == 0
    assert by_name["opt/.wh..wh..opq"].isreg()
    assert by_name["bin/sh"].mode == 0o755


@pytest.mark.parametrize(
    ("name", "entry", "check"),
    [
        pytest.param("dotdot", "../evil", "isreg", id="dotdot"),
        pytest.param("dotdot-nested", "a/../../evil", "isreg", id="dotdot-nested"),
        pytest.param("absolute", "/evil", "isreg", id="absolute"),
        pytest.param("symlink-escape", "link", "issym", id="symlink-escape"),
        pytest.param("absolute-symlink", "link", "issym", id="absolute-symlink"),
        pytest.param("hardlink-escape", "hard", "islnk", id="hardlink-escape"),
    ],
)
def test_hostile_entries_are_written_verbatim(
    name: str, entry: str, check: str
) -> None:
    members = _members(Layer.hostile(name))
    by_name = {m.name: m for m in members}
    assert entry in by_name, [m.name for m in members]
    assert getattr(by_name[entry], check)()
    assert set(HOSTILE) >= {name}


def test_symlink_escape_puts_a_file_behind_the_link() -> None:
    names = [m.name for m in _members(Layer.hostile("symlink-escape"))]
    assert names == ["link", "link/evil"]


def test_random_layer_is_reproducible_and_incompressible() -> None:
    first = Layer.random(200_000, seed=7)
    assert first == Layer.random(200_000, seed=7)
    assert first.digest != Layer.random(200_000, seed=8).digest
    assert first.size > 200_000  # gzip cannot shrink it
    (member,) = _members(first)
    assert member.size == 200_000
    assert first.diff_id == _sha(_uncompress(first))


def test_random_layer_streams_to_a_file(tmp_path: Path) -> None:
    layer = Layer.random(300_000, seed="s", compression="none", directory=tmp_path)
    assert isinstance(layer.data, Path)
    assert layer.data.parent == tmp_path
    data = layer.data.read_bytes()
    assert layer.digest == _sha(data) == layer.diff_id
    assert layer.size == len(data)
    assert (
        layer.read_bytes() == Layer.random(300_000, seed="s", compression="none").data
    )
    assert list(tmp_path.iterdir()) == [layer.data]


def test_large_random_layer_needs_a_directory() -> None:
    with pytest.raises(ValueError, match="needs a directory"):
        Layer.random(64 * 1024 * 1024, seed=1)


def test_empty_gzip_layer_is_dockers_32_byte_blob() -> None:
    layer = Layer.empty_gzip()
    assert layer.digest == EMPTY_LAYER
    assert layer.size == 32
    assert gzip.decompress(layer.read_bytes()) == bytes(1024)


# -- images -------------------------------------------------------------------------


def test_same_recipe_and_nonce_give_the_same_bytes() -> None:
    assert _image("n1").manifest == _image("n1").manifest
    assert _image("n1").config_digest != _image("n2").config_digest


def test_every_blob_and_manifest_hashes_to_its_digest() -> None:
    image = _image()
    for digest, data in _all_bytes(image).items():
        assert _sha(data) == digest
    doc = json.loads(image.manifest)
    for desc in [doc["config"], *doc["layers"]]:
        assert len(_all_bytes(image)[desc["digest"]]) == desc["size"]
    assert image.digest == _sha(image.manifest)
    assert image.manifests == [(image.media_type, image.manifest)]


def test_config_diff_ids_are_the_uncompressed_layer_digests() -> None:
    image = _image()
    config = json.loads(image.config)
    assert config["rootfs"] == {
        "type": "layers",
        "diff_ids": [_sha(_uncompress(layer)) for layer in image.layers],
    }
    assert config["config"]["Labels"]["io.registry-sim.nonce"] == "n1"
    assert image.config_digest == _sha(image.config)


@pytest.mark.parametrize(
    ("build", "manifest_type", "config_type", "layer_type"),
    [
        pytest.param(
            Image.schema2,
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            id="schema2",
        ),
        pytest.param(
            Image.oci,
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            id="oci",
        ),
    ],
)
def test_manifest_media_types_follow_the_flavour(
    build: Any, manifest_type: str, config_type: str, layer_type: str
) -> None:
    image = build([Layer.from_files({"a": "b"})])
    doc = json.loads(image.manifest)
    assert image.media_type == doc["mediaType"] == manifest_type
    assert doc["schemaVersion"] == 2
    assert doc["config"]["mediaType"] == config_type
    assert doc["layers"][0]["mediaType"] == layer_type


def test_zero_layer_image_has_empty_diff_ids() -> None:
    image = Image.schema2([], nonce="z")
    assert json.loads(image.manifest)["layers"] == []
    assert json.loads(image.config)["rootfs"]["diff_ids"] == []


def test_duplicate_layers_appear_twice_in_manifest_and_config() -> None:
    layer = Layer.from_files({"a": "b"})
    image = Image.schema2([layer, layer])
    assert [d["digest"] for d in json.loads(image.manifest)["layers"]] == [
        layer.digest
    ] * 2
    assert image.diff_ids == [layer.diff_id] * 2
    assert len(image.blobs) == 2  # config + the one layer


# -- deliberately wrong artefacts ------------------------------------------------------


def test_digest_mismatch_stores_other_bytes_under_the_digest() -> None:
    image = _image().with_digest_mismatch(1)
    digest = image.layer_descriptors[1]["digest"]
    stored = image.blobs[digest]
    assert isinstance(stored, bytes)
    assert _sha(stored) != digest
    assert len(stored) == image.layer_descriptors[1]["size"]
    assert image.unverified == {digest}


def test_wrong_size_changes_only_the_descriptor() -> None:
    good = _image()
    bad = good.with_wrong_size(0, delta=-3)
    assert bad.layer_descriptors[0]["size"] == good.layers[0].size - 3
    assert bad.blobs == good.blobs
    assert bad.digest != good.digest


def test_wrong_diff_ids_no_longer_match_the_layers() -> None:
    bad = _image().with_wrong_diff_ids()
    assert len(bad.diff_ids) == 2
    assert not set(bad.diff_ids) & {layer.diff_id for layer in bad.layers}
    assert bad.config_digest == _sha(bad.config)
    assert bad.config_digest in bad.blobs
    assert _image().config_digest not in bad.blobs


def test_media_type_override_is_served_and_written() -> None:
    bad = _image().with_media_type("application/vnd.example+json")
    assert bad.media_type == "application/vnd.example+json"
    assert json.loads(bad.manifest)["mediaType"] == "application/vnd.example+json"
    kept = _image().with_media_type("text/plain", in_body=False)
    assert json.loads(kept.manifest)["mediaType"] == _image().media_type


def test_octet_stream_config_descriptor() -> None:
    image = Image.schema2([Layer.from_files({"a": "b"})]).with_config_media_type()
    assert json.loads(image.manifest)["config"]["mediaType"] == (
        "application/octet-stream"
    )
    assert image.config_digest in image.blobs


# -- indexes ------------------------------------------------------------------------


def _multiarch() -> Index:
    amd = _image()
    arm = Image.oci(
        [Layer.from_files({"a": "arm"})],
        Config(architecture="arm64", variant="v8"),
        nonce="n1",
    )
    return Index.oci([amd, arm, (amd, None), (arm, Platform("linux", "arm", "v7"))])


def test_index_lists_platforms_and_entries_without_one() -> None:
    index = _multiarch()
    doc = json.loads(index.manifest)
    assert (
        doc["mediaType"]
        == index.media_type
        == "application/vnd.oci.image.index.v1+json"
    )
    platforms = [m.get("platform") for m in doc["manifests"]]
    assert platforms == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux", "variant": "v8"},
        None,
        {"architecture": "arm", "os": "linux", "variant": "v7"},
    ]
    assert index.image_for("linux", "arm64", "v8").config_digest in index.blobs


def test_index_manifests_put_children_first_and_root_last() -> None:
    index = _multiarch()
    types = [mt for mt, _ in index.manifests]
    assert types[-1] == index.media_type
    assert len(index.manifests) == 3
    assert index.manifests[-1][1] == index.manifest
    assert index.config_digest is None
    for digest, data in _all_bytes(index).items():
        assert _sha(data) == digest


def test_docker_list_uses_the_docker_media_type() -> None:
    index = Index.docker_list([Image.schema2([Layer.from_files({"a": "b"})])])
    doc = json.loads(index.manifest)
    assert doc["mediaType"] == (
        "application/vnd.docker.distribution.manifest.list.v2+json"
    )
    assert doc["manifests"][0]["platform"] == {"architecture": "amd64", "os": "linux"}


# -- schema1 --------------------------------------------------------------------------


def _schema1(**kwargs: Any) -> Schema1:
    entries: list[Schema1Entry | Layer] = [
        Layer.from_files({"bin/sh": "x"}),
        Schema1Entry(throwaway=True, created_by="#(nop) CMD"),
        Schema1Entry(Layer.from_files({"app": "y"}), size=2),
    ]
    return Schema1.signed(entries, name="t/app", tag="1.0", nonce="s1", **kwargs)


def _protected(body: bytes) -> dict[str, Any]:
    doc = json.loads(body)
    header = json.loads(b64url_decode(doc["signatures"][0]["protected"]))
    assert isinstance(header, dict)
    return header


def test_protected_header_reconstructs_the_payload() -> None:
    s1 = _schema1()
    header = _protected(s1.manifest)
    payload = s1.manifest[: header["formatLength"]] + b64url_decode(
        header["formatTail"]
    )
    assert payload == s1.payload
    assert b"signatures" not in payload
    assert s1.digest == _sha(payload)
    assert s1.body_digest == _sha(s1.manifest)
    assert header["formatTail"] == "Cn0"  # "\n}"
    assert s1.media_type == "application/vnd.docker.distribution.manifest.v1+prettyjws"


def test_schema1_signature_verifies_with_the_jwk() -> None:
    s1 = _schema1()
    sig = json.loads(s1.manifest)["signatures"][0]
    assert sig["header"]["alg"] == "ES256"
    jwk = sig["header"]["jwk"]
    assert jwk["kty"] == "EC"
    assert jwk["crv"] == "P-256"
    assert len(jwk["kid"]) == 59
    key = ec.EllipticCurvePublicNumbers(
        int.from_bytes(b64url_decode(jwk["x"]), "big"),
        int.from_bytes(b64url_decode(jwk["y"]), "big"),
        ec.SECP256R1(),
    ).public_key()
    raw = b64url_decode(sig["signature"])
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
    signed = f"{sig['protected']}.{b64url_encode(s1.payload)}".encode()
    key.verify(der, signed, ec.ECDSA(hashes.SHA256()))  # raises if invalid


def test_schema1_payload_is_three_space_indented_with_newest_layer_first() -> None:
    s1 = _schema1()
    assert s1.payload.startswith(b'{\n   "schemaVersion": 1,\n   "name": "t/app"')
    doc = json.loads(s1.payload)
    sums = [x["blobSum"] for x in doc["fsLayers"]]
    assert sums[1] == EMPTY_LAYER
    assert sums[2] == s1.entries[0].layer.digest  # type: ignore[union-attr]
    history = [json.loads(h["v1Compatibility"]) for h in doc["history"]]
    assert len(history) == len(sums) == 3
    assert history[0]["Size"] == 2
    assert history[1]["throwaway"] is True
    assert history[0]["architecture"] == "amd64"
    assert history[0]["parent"] == history[1]["id"]
    assert "parent" not in history[2]
    assert set(sums) <= set(s1.blobs)


def test_schema1_is_reproducible_per_nonce() -> None:
    assert _schema1().manifest == _schema1().manifest
    other = Schema1.signed([Layer.from_files({"a": "b"})], nonce="other")
    assert other.digest != _schema1().digest


def test_unsigned_schema1_body_is_the_payload() -> None:
    s1 = Schema1.unsigned([Layer.from_files({"a": "b"})], nonce="u")
    assert s1.media_type == "application/vnd.docker.distribution.manifest.v1+json"
    assert s1.manifest == s1.payload
    assert "signatures" not in json.loads(s1.manifest)


def _decode_problem(body: bytes) -> str | None:
    """Apply behaviors.md S1-002's rules; the name of the first failure or None."""
    doc = json.loads(body)
    if not doc.get("signatures"):
        return "no signatures"
    protected = doc["signatures"][0]["protected"]
    if len(protected) % 4 == 1:
        return "illegal base64url string"
    header = json.loads(b64url_decode(protected))
    length = header["formatLength"]
    if not isinstance(length, int):
        return "non-integer formatLength"
    if length > len(body):
        return "invalid protected length block"
    try:
        b64url_decode(header["formatTail"])
    except ValueError:
        return "invalid tail base 64 value"
    return None


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        pytest.param("bad-protected-base64", "illegal base64url string", id="bad-b64"),
        pytest.param(
            "format-length-beyond-body",
            "invalid protected length block",
            id="length-beyond-body",
        ),
        pytest.param(
            "non-integer-format-length", "non-integer formatLength", id="non-integer"
        ),
        pytest.param("bad-tail", "invalid tail base 64 value", id="bad-tail"),
        pytest.param("no-signatures", "no signatures", id="no-signatures"),
    ],
)
def test_malformed_schema1_is_malformed_as_stated(kind: Any, problem: str) -> None:
    good = _schema1()
    assert _decode_problem(good.manifest) is None
    bad = good.malformed(kind)
    assert _decode_problem(bad.manifest) == problem
    assert bad.payload == good.payload  # only the signature block is broken


def test_format_length_zero_puts_the_whole_payload_in_the_tail() -> None:
    s1 = _schema1().malformed("format-length-zero")
    header = _protected(s1.manifest)
    assert header["formatLength"] == 0
    assert b64url_decode(header["formatTail"]) == s1.payload


def test_negative_format_length_is_negative_and_nothing_else_changes() -> None:
    good = _schema1()
    bad = good.malformed("negative-format-length")
    assert _protected(bad.manifest)["formatLength"] == -1
    assert bad.payload == good.payload


@pytest.mark.parametrize("key", ["layers", "manifests"])
def test_ambiguous_schema1_carries_the_extra_key_in_its_payload(key: str) -> None:
    s1 = _schema1().malformed(f"extra-{key}-key")  # type: ignore[arg-type]
    header = _protected(s1.manifest)
    payload = s1.manifest[: header["formatLength"]] + b64url_decode(
        header["formatTail"]
    )
    assert json.loads(payload)[key] == []
    assert payload == s1.payload


def test_every_malformation_kind_builds() -> None:
    for kind in MALFORMED_KINDS:
        assert _schema1().malformed(kind).manifest


# -- recipes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", sorted(p.name for p in FIXTURES.glob("*.json")) or ["<none>"]
)
def test_recipe_builds_reproducibly_with_honest_digests(name: str) -> None:
    first = load_recipe(FIXTURES / name, nonce="r1")
    assert first.manifests == load_recipe(FIXTURES / name, nonce="r1").manifests
    for digest, data in _all_bytes(first).items():
        if digest not in first.unverified:
            assert _sha(data) == digest


def test_recipe_files_exist() -> None:
    names = {p.name for p in FIXTURES.glob("*.json")}
    assert {"busybox-like.json", "multiarch.json", "schema1-signed.json"} <= names


def test_multiarch_recipe_has_an_entry_without_platform() -> None:
    index = load_recipe(FIXTURES / "multiarch.json", nonce="m")
    assert isinstance(index, Index)
    platforms = [e.get("platform") for e in index.entries]
    assert None in platforms
    assert len(platforms) >= 3


@pytest.mark.parametrize(
    "recipe",
    [
        pytest.param({"layers": []}, id="no-kind"),
        pytest.param({"kind": "nope"}, id="unknown-kind"),
        pytest.param({"kind": "oci", "layers": [{"files": {"a": 3}}]}, id="bad-file"),
        pytest.param({"kind": "oci", "config": {"colour": "red"}}, id="bad-config"),
    ],
)
def test_malformed_recipe_raises_recipe_error(recipe: Any, tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(recipe))
    with pytest.raises(RecipeError):
        load_recipe(path)
