"""Manifest/index parsing, platform selection, config checks (PULL-001/004/007/008/009)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refpull import mediatypes as mt
from refpull.content.manifests import (
    Descriptor,
    ImageIndex,
    ImageManifest,
    Platform,
    check_layer_count,
    parse_image_config,
    parse_manifest,
    rewrite_legacy_config,
    select_platform,
    transfer_entries,
)
from refpull.digest import sha256_digest
from refpull.errors import (
    InvalidArgument,
    NoMatchingPlatform,
    RefpullError,
    ResolveError,
    UnpackError,
    UnsupportedMediaType,
)
from refpull.profiles import CONTAINERD_16, SEED, Profile

PROFILES = pytest.mark.parametrize(
    "profile", [SEED, CONTAINERD_16], ids=["seed", "containerd-1.6"]
)


def dg(c: str) -> str:
    return "sha256:" + c * 64


def manifest_doc(layers: int = 1, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": {"mediaType": mt.DOCKER_CONFIG, "digest": dg("c"), "size": 7},
        "layers": [
            {"mediaType": mt.DOCKER_LAYER, "digest": dg(str(i)), "size": 10 + i}
            for i in range(layers)
        ],
    }
    doc.update(extra)
    return doc


def entry(
    os: str, arch: str, variant: str | None = None, c: str = "1"
) -> dict[str, Any]:
    plat: dict[str, Any] = {"os": os, "architecture": arch}
    if variant:
        plat["variant"] = variant
    return {"mediaType": mt.OCI_MANIFEST, "digest": dg(c), "size": 1, "platform": plat}


def index_of(*entries: dict[str, Any]) -> ImageIndex:
    doc = {"schemaVersion": 2, "manifests": list(entries)}
    parsed = parse_manifest(json.dumps(doc).encode(), mt.OCI_INDEX)
    assert isinstance(parsed, ImageIndex)
    return parsed


def test_manifest_fields_are_parsed() -> None:
    parsed = parse_manifest(json.dumps(manifest_doc(2)).encode(), mt.DOCKER_MANIFEST)
    assert isinstance(parsed, ImageManifest)
    assert parsed.config.digest == dg("c")
    assert [layer.size for layer in parsed.layers] == [10, 11]
    assert parsed.schema_version == 2


def test_keys_match_case_insensitively_and_last_duplicate_wins() -> None:
    raw = (
        '{{"schemaVersion":2,"CONFIG":{{"digest":"{}","size":1}},'
        '"config":{{"digest":"{}","Size":2}},"layers":[]}}'.format(dg("a"), dg("b"))
    ).encode()
    parsed = parse_manifest(raw, mt.OCI_MANIFEST)
    assert isinstance(parsed, ImageManifest)
    assert parsed.config.digest == dg("b")
    assert parsed.config.size == 2


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"{", id="truncated"),
        pytest.param(b"", id="empty"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'{"layers": 5}', id="layers-number"),
        pytest.param(
            b'{"config": {"digest": "sha256:abc", "size": 1}}', id="bad-digest"
        ),
        pytest.param(
            b'{"config": {"digest": "sha256:../../etc/passwd", "size": 1}}',
            id="traversal",
        ),
        pytest.param(
            ('{{"config": {{"digest": "{}", "size": -1}}}}'.format(dg("a"))).encode(),
            id="neg",
        ),
        pytest.param(
            ('{{"config": {{"digest": "{}", "size": 1e3}}}}'.format(dg("a"))).encode(),
            id="float-size",
        ),
        pytest.param(
            (
                '{{"config": {{"digest": "{}", "size": 99999999999999999999}}}}'.format(
                    dg("a")
                )
            ).encode(),
            id="huge-size",
        ),
        pytest.param(b'{"config": {"digest": 1}}', id="digest-number"),
        pytest.param(b'{"a": NaN}', id="nan"),
    ],
)
def test_malformed_manifests_raise_resolve_error(raw: bytes) -> None:
    with pytest.raises(ResolveError):
        parse_manifest(raw, mt.OCI_MANIFEST)


@pytest.mark.parametrize(
    ("doc", "media_type", "message"),
    [
        pytest.param(
            {"manifests": [], "layers": []},
            mt.OCI_MANIFEST,
            "media-type: expected manifest but found index",
            id="manifest-with-manifests",
        ),
        pytest.param(
            {"manifests": [], "layers": []},
            mt.OCI_INDEX,
            "media-type: expected index but found manifest",
            id="index-with-layers",
        ),
        pytest.param(
            {"fsLayers": [], "Layers": []},
            mt.DOCKER_MANIFEST,
            "media-type: schema 1 not supported",
            id="fslayers",
        ),
    ],
)
def test_ambiguous_documents_are_rejected_in_every_profile(
    doc: dict[str, Any], media_type: str, message: str
) -> None:
    with pytest.raises(ResolveError, match=message):
        parse_manifest(json.dumps(doc).encode(), media_type)


@pytest.mark.behavior("PULL-008")
@pytest.mark.parametrize(
    "media_type",
    [
        pytest.param("application/json", id="json"),
        pytest.param(
            "application/vnd.docker.distribution.manifest.v1+json", id="unsigned-s1"
        ),
        pytest.param(mt.OCTET_STREAM, id="octet-stream"),
    ],
)
def test_unknown_root_media_type_fails_with_containerd_wording(media_type: str) -> None:
    data = b"{}"
    with pytest.raises(UnsupportedMediaType) as info:
        parse_manifest(data, media_type)
    assert str(info.value) == (
        f"unexpected media type {media_type} for {sha256_digest(data)}: not found"
    )
    assert info.value.media_type == media_type


@pytest.mark.behavior("RES-004")
def test_root_without_media_type_is_an_invalid_argument() -> None:
    """containerd's image store refuses a record whose target has no media type."""
    with pytest.raises(InvalidArgument, match=r"Target\.MediaType must be set"):
        parse_manifest(b"{}", "")


@pytest.mark.behavior("PULL-008", "S1-001")
def test_schema1_is_not_parsed_as_a_manifest() -> None:
    with pytest.raises(
        UnsupportedMediaType, match=r"manifest\.v1\+prettyjws not supported"
    ):
        parse_manifest(b"{}", mt.DOCKER_SCHEMA1_MANIFEST)


@pytest.mark.behavior("PULL-001")
@pytest.mark.parametrize(
    ("entries", "seed", "c16"),
    [
        pytest.param(
            [entry("linux", "arm64", c="1"), entry("linux", "amd64", c="2")],
            "2",
            "2",
            id="amd64-among-others",
        ),
        pytest.param([entry("linux", "386", c="1")], None, "1", id="only-386"),
        pytest.param(
            [entry("linux", "386", c="1"), entry("linux", "amd64", c="2")],
            "2",
            "2",
            id="amd64-preferred-over-386",
        ),
        pytest.param(
            [entry("linux", "amd64", "v2", c="1")], "1", None, id="amd64-v2-variant"
        ),
        pytest.param(
            [entry("linux", "amd64", "v1", c="1")], "1", "1", id="amd64-v1-is-amd64"
        ),
        pytest.param(
            [entry("Linux", "x86_64", c="1")], "1", "1", id="normalized-os-and-arch"
        ),
        pytest.param(
            [
                {"mediaType": mt.OCI_MANIFEST, "digest": dg("1"), "size": 1},
                entry("linux", "amd64", c="2"),
            ],
            "2",
            "2",
            id="no-platform-sorts-last",
        ),
        pytest.param(
            [
                {"mediaType": mt.OCI_MANIFEST, "digest": dg("1"), "size": 1},
                entry("linux", "arm64", c="2"),
            ],
            "1",
            "1",
            id="no-platform-kept",
        ),
        pytest.param(
            [entry("linux", "amd64", c="1"), entry("linux", "amd64", c="2")],
            "1",
            "1",
            id="stable-order",
        ),
        pytest.param([entry("windows", "amd64", c="1")], None, None, id="other-os"),
        pytest.param([], None, None, id="empty-index"),
    ],
)
def test_platform_selection_matches_each_runtime(
    entries: list[dict[str, Any]], seed: str | None, c16: str | None
) -> None:
    index = index_of(*entries)
    for profile, want in ((SEED, seed), (CONTAINERD_16, c16)):
        if want is None:
            with pytest.raises(NoMatchingPlatform) as info:
                select_platform(index, Platform.default(), profile)
            assert str(info.value) == "no match for platform in manifest: not found"
        else:
            assert select_platform(index, Platform.default(), profile).digest == dg(
                want
            )


@pytest.mark.behavior("PULL-001")
@PROFILES
def test_arm64_hosts_fall_back_to_arm_variants(profile: Profile) -> None:
    index = index_of(
        entry("linux", "arm", "v6", c="1"), entry("linux", "arm", "v7", c="2")
    )
    host = Platform(os="linux", architecture="aarch64")
    assert select_platform(index, host, profile).digest == dg("2")


@pytest.mark.behavior("PULL-001")
def test_transfer_entries_are_exact_platform_matches_and_platform_less_ones() -> None:
    index = index_of(
        entry("linux", "386", c="1"),
        entry("linux", "amd64", c="2"),
        {"mediaType": mt.OCI_MANIFEST, "digest": dg("3"), "size": 1},
        entry("linux", "amd64", "v2", c="4"),
        entry("linux", "x86_64", "v1", c="5"),
        entry("linux", "arm64", c="6"),
    )
    host = Platform(os="linux", architecture="amd64")
    got = [d.digest for d in transfer_entries(index, host)]
    assert got == [dg("2"), dg("3"), dg("5")]


@pytest.mark.behavior("PULL-001")
def test_amd64_v3_host_prefers_v3_then_v2_in_16() -> None:
    index = index_of(
        entry("linux", "amd64", c="1"),
        entry("linux", "amd64", "v2", c="2"),
        entry("linux", "amd64", "v3", c="3"),
    )
    host = Platform(os="linux", architecture="amd64", variant="v3")
    assert select_platform(index, host, CONTAINERD_16).digest == dg("3")
    host2 = Platform(os="linux", architecture="amd64", variant="v2")
    assert select_platform(index, host2, CONTAINERD_16).digest == dg("2")


def test_default_platform_is_linux_amd64() -> None:
    assert Platform.default() == Platform(os="linux", architecture="amd64")
    assert Platform(
        os="LINUX", architecture="aarch64", variant="v8"
    ).normalized() == Platform(os="linux", architecture="arm64")


@pytest.mark.behavior("PULL-004")
def test_layer_and_diff_id_counts_must_match() -> None:
    layers = [Descriptor(media_type=mt.DOCKER_LAYER, digest=dg("1"), size=1)]
    with pytest.raises(UnpackError) as info:
        check_layer_count(layers, [dg("a"), dg("b")])
    assert str(info.value) == "number of layers and diffIDs don't match: 1 != 2"
    check_layer_count(layers, [dg("a")])


@pytest.mark.behavior("PULL-009")
def test_zero_layer_manifest_and_config_parse() -> None:
    parsed = parse_manifest(json.dumps(manifest_doc(0)).encode(), mt.DOCKER_MANIFEST)
    assert isinstance(parsed, ImageManifest)
    assert parsed.layers == ()
    config = parse_image_config(b'{"os":"linux","architecture":"amd64","rootfs":{}}')
    assert config.diff_ids == ()
    check_layer_count(parsed.layers, config.diff_ids)


def test_image_config_fields_and_bad_diff_ids() -> None:
    cfg = parse_image_config(
        json.dumps(
            {"os": "linux", "Architecture": "arm64", "rootfs": {"diff_ids": [dg("d")]}}
        ).encode()
    )
    assert (cfg.os, cfg.architecture, cfg.diff_ids) == ("linux", "arm64", (dg("d"),))
    with pytest.raises(UnpackError, match="invalid diff_id"):
        parse_image_config(b'{"rootfs": {"diff_ids": ["sha256:../x"]}}')
    with pytest.raises(UnpackError):
        parse_image_config(b'{"rootfs": {"diff_ids": "x"}}')


def legacy_manifest() -> tuple[Descriptor, bytes]:
    doc = manifest_doc(1)
    doc["config"]["mediaType"] = mt.OCTET_STREAM
    data = json.dumps(doc, separators=(",", ":")).encode()
    desc = Descriptor(
        media_type=mt.DOCKER_MANIFEST, digest=sha256_digest(data), size=len(data)
    )
    return desc, data


@pytest.mark.behavior("PULL-007")
def test_seed_rewrites_octet_stream_config_into_a_new_target() -> None:
    desc, data = legacy_manifest()
    new_desc, new = rewrite_legacy_config(data, desc, SEED)
    expected = (
        "{\n"
        '   "schemaVersion": 2,\n'
        '   "config": {\n'
        f'      "mediaType": "{mt.DOCKER_CONFIG}",\n'
        f'      "digest": "{dg("c")}",\n'
        '      "size": 7\n'
        "   },\n"
        '   "layers": [\n'
        "      {\n"
        f'         "mediaType": "{mt.DOCKER_LAYER}",\n'
        f'         "digest": "{dg("0")}",\n'
        '         "size": 10\n'
        "      }\n"
        "   ]\n"
        "}"
    ).encode()
    # image-spec v1.0.1's Manifest has no mediaType field: it is dropped.
    assert new == expected
    assert new_desc.digest == sha256_digest(expected)
    assert new_desc.digest != desc.digest
    assert new_desc.media_type == mt.DOCKER_MANIFEST
    assert new_desc.size == len(expected)


@pytest.mark.behavior("PULL-007")
def test_16_cannot_unpack_an_octet_stream_config_image() -> None:
    desc, data = legacy_manifest()
    with pytest.raises(UnpackError) as info:
        rewrite_legacy_config(data, desc, CONTAINERD_16)
    assert str(info.value) == f"content digest {dg('0')}: not found"


@pytest.mark.behavior("PULL-007")
@PROFILES
def test_regular_configs_are_left_alone(profile: Profile) -> None:
    data = json.dumps(manifest_doc(1)).encode()
    desc = Descriptor(
        media_type=mt.DOCKER_MANIFEST, digest=sha256_digest(data), size=len(data)
    )
    assert rewrite_legacy_config(data, desc, profile) == (desc, data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)
    ),
    max_leaves=20,
)
doc_keys = st.sampled_from(
    [
        "schemaVersion",
        "mediaType",
        "config",
        "layers",
        "manifests",
        "digest",
        "size",
        "platform",
        "urls",
        "annotations",
        "x",
    ]
)


@given(
    st.dictionaries(doc_keys, json_values, max_size=6),
    st.sampled_from([mt.OCI_MANIFEST, mt.DOCKER_MANIFEST_LIST]),
)
def test_hostile_manifests_only_raise_typed_errors(
    doc: dict[str, Any], media: str
) -> None:
    with contextlib.suppress(RefpullError):
        parse_manifest(json.dumps(doc).encode(), media)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_typed_errors(data: bytes) -> None:
    with contextlib.suppress(RefpullError):
        parse_manifest(data, mt.OCI_INDEX)
