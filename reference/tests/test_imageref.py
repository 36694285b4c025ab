"""ParseDockerRef normalization (behaviors.md §1, REF-001..REF-013).

The tables are ``fixtures/vectors/references.json``: the catalog's Go outputs, kept
as data so the conformance suite can replay them against a runtime.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from refpull.errors import InvalidReference
from refpull.gocompat import _grammar
from refpull.gocompat.imageref import (
    ImageRef,
    RepoLocation,
    parse_docker_ref,
    parse_for_profile,
    split_registry_host,
)
from refpull.profiles import PROFILES, Profile

VECTORS = Path(__file__).resolve().parents[2] / "fixtures" / "vectors"
_REFERENCES: list[dict[str, Any]] = json.loads(
    (VECTORS / "references.json").read_text(encoding="utf-8")
)
_BEHAVIORS = [f"REF-{n:03d}" for n in range(1, 14)]


# A vector without "profiles" states docker/distribution@0d3efadf's answer, the seed's
# and containerd 1.6's; one with "profiles" holds for exactly those generations.
_GRAMMAR_16 = ["seed", "containerd-1.6"]


def _vectors(behavior: str) -> list[Any]:
    return [
        pytest.param(vector, PROFILES[name], id=f"{vector['id']}-{name}")
        for vector in _REFERENCES
        if vector["behavior"] == behavior
        for name in vector.get("profiles", _GRAMMAR_16)
    ]


def _check(vector: dict[str, Any], profile: Profile) -> None:
    """Compare parse_docker_ref and split_registry_host with one vector."""
    expect = vector["expect"]
    if "error" in expect:
        with pytest.raises(InvalidReference) as info:
            parse_for_profile(vector["input"], profile)
        assert (info.value.reference, info.value.reason) == (
            vector["input"],
            expect["reason"],
        )
        return
    ref = parse_for_profile(vector["input"], profile)
    location = split_registry_host(ref)
    got = {
        "normalized": str(ref),
        "domain": ref.domain,
        "path": ref.path,
        "tag": ref.tag,
        "digest": ref.digest,
        "host": location.host,
        "repository": location.repository,
        "object": location.object,
    }
    assert got == expect


def test_vectors_are_well_formed() -> None:
    ids = [vector["id"] for vector in _REFERENCES]
    assert len(ids) == len(set(ids))
    for vector in _REFERENCES:
        assert vector["behavior"] in _BEHAVIORS, vector["id"]
        assert vector["id"].startswith(vector["behavior"] + "-")
        assert 0 < len(vector["description"]) < 100
        assert "should" not in vector["description"]
        assert set(vector.get("profiles", _GRAMMAR_16)) <= set(PROFILES), vector["id"]


def test_profile_specific_vectors_cover_each_profile_once() -> None:
    by_input: dict[str, list[str]] = {}
    for vector in _REFERENCES:
        if "profiles" in vector:
            by_input.setdefault(vector["input"], []).extend(vector["profiles"])
    assert by_input
    for text, names in by_input.items():
        assert sorted(names) == sorted(PROFILES), text


@pytest.mark.behavior("REF-001")
@pytest.mark.parametrize(("vector", "profile"), _vectors("REF-001"))
def test_familiar_names_are_normalized_to_docker_io_library(
    vector: Any, profile: Profile
) -> None:
    _check(vector, profile)


@pytest.mark.behavior("REF-002")
@pytest.mark.parametrize(("vector", "profile"), _vectors("REF-002"))
def test_first_component_is_a_domain_only_with_dot_colon_or_localhost(
    vector: Any, profile: Profile
) -> None:
    _check(vector, profile)


@pytest.mark.behavior("REF-003")
@pytest.mark.parametrize(("vector", "profile"), _vectors("REF-003"))
def test_latest_is_added_when_neither_tag_nor_digest(
    vector: Any, profile: Profile
) -> None:
    _check(vector, profile)


@pytest.mark.behavior("REF-004")
@pytest.mark.parametrize(("vector", "profile"), _vectors("REF-004"))
def test_tag_is_dropped_when_digest_present(vector: Any, profile: Profile) -> None:
    _check(vector, profile)


@pytest.mark.behavior("REF-005")
@pytest.mark.parametrize(("vector", "profile"), _vectors("REF-005"))
def test_repository_name_before_first_colon_must_be_lowercase(
    vector: Any, profile: Profile
) -> None:
    _check(vector, profile)


@pytest.mark.behavior("REF-006")
@pytest.mark.parametrize(("vector", "profile"), _vectors("REF-006"))
def test_64_hex_names_are_rejected_but_sha256_prefixed_names_are_not(
    vector: Any, profile: Profile
) -> None:
    _check(vector, profile)


@pytest.mark.behavior("REF-007")
@pytest.mark.parametrize(("vector", "profile"), _vectors("REF-007"))
def test_path_components_follow_the_grammar(vector: Any, profile: Profile) -> None:
    _check(vector, profile)


@pytest.mark.behavior("REF-008")
@pytest.mark.parametrize(("vector", "profile"), _vectors("REF-008"))
def test_tags_are_word_characters_up_to_128(vector: Any, profile: Profile) -> None:
    _check(vector, profile)


@pytest.mark.behavior("REF-009")
@pytest.mark.parametrize(("vector", "profile"), _vectors("REF-009"))
def test_name_length_limit_counts_the_normalized_name(
    vector: Any, profile: Profile
) -> None:
    _check(vector, profile)


@pytest.mark.behavior("REF-010")
@pytest.mark.parametrize(("vector", "profile"), _vectors("REF-010"))
def test_digests_are_validated_as_go_digest_does(vector: Any, profile: Profile) -> None:
    _check(vector, profile)


@pytest.mark.behavior("REF-011")
@pytest.mark.parametrize(("vector", "profile"), _vectors("REF-011"))
def test_ipv6_hosts_fail_and_underscore_hosts_become_paths(
    vector: Any, profile: Profile
) -> None:
    _check(vector, profile)


@pytest.mark.behavior("REF-012")
@pytest.mark.parametrize(("vector", "profile"), _vectors("REF-012"))
def test_equivalent_spellings_share_one_normalized_reference(
    vector: Any, profile: Profile
) -> None:
    _check(vector, profile)


@pytest.mark.behavior("REF-013")
@pytest.mark.parametrize(("vector", "profile"), _vectors("REF-013"))
def test_reference_splits_into_host_repository_and_object(
    vector: Any, profile: Profile
) -> None:
    _check(vector, profile)


@pytest.mark.behavior("REF-012")
@pytest.mark.parametrize(
    "spellings",
    [
        pytest.param(
            ["busybox", "library/busybox:latest", "index.docker.io/busybox"],
            id="docker-hub-library",
        ),
        pytest.param(
            ["index.docker.io/foo/bar", "docker.io/foo/bar:latest", "foo/bar"],
            id="docker-hub-user",
        ),
    ],
)
def test_downstream_sees_only_the_normalized_reference(spellings: list[str]) -> None:
    normalized = {str(parse_docker_ref(spelling)) for spelling in spellings}
    assert len(normalized) == 1
    (ref,) = normalized
    assert split_registry_host(ref) == split_registry_host(parse_docker_ref(ref))


@pytest.mark.behavior("REF-013")
@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("h/a://b", "invalid reference", id="contains-scheme-separator"),
        pytest.param("/a:latest", "hostname required", id="no-host"),
        pytest.param(
            "a b/c:latest",
            'parse "dummy://a b/c:latest": invalid character " " in host name',
            id="url-parse-error",
        ),
    ],
)
def test_split_registry_host_rejects_strings_without_a_host(
    text: str, reason: str
) -> None:
    with pytest.raises(InvalidReference) as info:
        split_registry_host(text)
    assert info.value.reason == reason


@pytest.mark.behavior("REF-013")
def test_split_registry_host_accepts_the_string_form() -> None:
    assert split_registry_host("docker.io/library/busybox:latest") == RepoLocation(
        "docker.io", "library/busybox", "latest"
    )


@pytest.mark.parametrize(
    ("ref", "familiar"),
    [
        pytest.param("busybox", "busybox:latest", id="library"),
        pytest.param("foo/bar:1", "foo/bar:1", id="user-repo"),
        pytest.param("library/a/b", "library/a/b:latest", id="nested-library"),
        pytest.param("localhost:5000/a", "localhost:5000/a:latest", id="other-host"),
    ],
)
def test_familiar_form_drops_docker_io_and_library(ref: str, familiar: str) -> None:
    assert parse_docker_ref(ref).familiar == familiar


def test_image_ref_renders_name_tag_and_digest() -> None:
    ref = ImageRef("h:5000", "a/b", "v1", "sha256:" + "0" * 64)
    assert ref.name == "h:5000/a/b"
    assert str(ref) == "h:5000/a/b:v1@sha256:" + "0" * 64
    assert ImageRef("", "foo_bar.com/x", "latest").name == "foo_bar.com/x"


@pytest.mark.behavior("REF-007")
@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a" * 5000 + "!", id="path-component"),
        pytest.param("a" + "-a" * 2500 + "!/x", id="domain-component"),
        pytest.param("a" + "_a" * 2500 + "_/x", id="separators"),
    ],
)
def test_malformed_long_names_fail_in_linear_time(text: str) -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidReference):
        parse_docker_ref(text)
    assert time.perf_counter() - started < 2.0


# --- properties -------------------------------------------------------------


def _fragments(pattern: str, limit: int) -> st.SearchStrategy[str]:
    """Strings of one grammar fragment, cut to *limit* characters and re-checked.

    Whole names drawn from one big regex are slow to generate and mostly too long;
    short pieces composed below reach the interesting shapes quickly.
    """
    return (
        st.from_regex(pattern, fullmatch=True)
        .map(lambda text: text[:limit])
        .filter(lambda text: re.fullmatch(pattern, text) is not None)
    )


_labels = _fragments(_grammar.DOMAIN_COMPONENT, 12)
_ports = _fragments(_grammar.PORT_NUMBER, 6).map(lambda port: ":" + port)
_domains = st.one_of(
    st.builds(
        lambda labels, port: ".".join(labels) + port,
        st.lists(_labels, min_size=2, max_size=3),
        st.just("") | _ports,
    ),
    st.builds(lambda label, port: label + port, _labels, _ports),
    st.just("localhost"),
).filter(lambda domain: domain not in ("docker.io", "index.docker.io"))
_paths = st.lists(_fragments(_grammar.PATH_COMPONENT, 20), min_size=1, max_size=4).map(
    "/".join
)
_tags = st.from_regex(_grammar.TAG, fullmatch=True)


@pytest.mark.behavior("REF-012")
@given(st.from_regex(_grammar.REFERENCE, fullmatch=True))
def test_normalization_is_idempotent(text: str) -> None:
    try:
        ref = parse_docker_ref(text)
    except InvalidReference:
        return  # grammar-shaped but refused (case, length, digest): not this property
    assert str(parse_docker_ref(str(ref))) == str(ref)
    assert parse_docker_ref(str(ref)) == ref


@pytest.mark.behavior("REF-002", "REF-007", "REF-008")
@given(domain=_domains, path=_paths, tag=_tags)
def test_explicit_domain_reference_keeps_its_parts(
    domain: str, path: str, tag: str
) -> None:
    assume(len(domain) + 1 + len(path) <= _grammar.NAME_TOTAL_LENGTH_MAX)
    ref = parse_docker_ref(f"{domain}/{path}:{tag}")
    assert ref == ImageRef(domain, path, tag, None)
    assert split_registry_host(ref) == RepoLocation(domain, path, tag)


@pytest.mark.behavior("REF-001", "REF-003")
@given(st.from_regex(_grammar.PATH_COMPONENT, fullmatch=True))
def test_single_component_names_go_to_docker_hub_library(component: str) -> None:
    assume(len(component) <= 237 and len(component) != 64)
    assert str(parse_docker_ref(component)) == f"docker.io/library/{component}:latest"


@pytest.mark.behavior("REF-004", "REF-010")
@given(domain=_domains, path=_paths, tag=_tags, digest=st.binary(max_size=8))
def test_digest_reference_round_trips_without_tag(
    domain: str, path: str, tag: str, digest: bytes
) -> None:
    assume(len(domain) + 1 + len(path) <= _grammar.NAME_TOTAL_LENGTH_MAX)
    hexdigest = "sha256:" + digest.hex().ljust(64, "0")
    ref = parse_docker_ref(f"{domain}/{path}:{tag}@{hexdigest}")
    assert ref == ImageRef(domain, path, None, hexdigest)
    assert parse_docker_ref(str(ref)) == ref
