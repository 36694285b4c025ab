"""How PullImage reads the image reference it is given: normalization and rejection.

Catalog area REF (behaviors.md §1) and ERR-001; upstream finding F-23 (tag+digest).
Accepted references are observed through the request paths the registries see and
the recorded repo tags; rejected ones must fail before any request is made.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from cri_conformance.catalog import fixtures_dir
from cri_conformance.scenario import Case
from cri_conformance.targets.base import Capability

HEX64 = "0123456789abcdef" * 4
UPPER_HEX64 = HEX64.upper()


def _hub_name(case: Case) -> str:
    """A one-component Docker Hub name unique to the case."""
    return case.repo.replace("/", "-")


def _manifest_paths(case: Case, *, host: str | None = None) -> list[str]:
    return [
        ex.path
        for ex in case.world.exchanges()
        if "/manifests/" in ex.path and (host is None or ex.host == host)
    ]


def _assert_no_request(case: Case) -> None:
    seen = case.world.exchanges()
    assert seen == [], "\n".join(ex.line() for ex in seen)


# -- rejected before any request ---------------------------------------------------

# behaviors.md REF-005..REF-011: each of these fails ParseDockerRef, so PullImage
# answers with an error (gRPC Unknown, ERR-001) and never contacts a registry.
INVALID = [
    pytest.param("{host}/{repo}/Upper:1", id="uppercase-path"),
    pytest.param(HEX64, id="bare-64-hex"),
    pytest.param("{host}/{repo}/" + "a" * 256, id="name-over-255"),
    pytest.param("{host}/{repo}@sha256:" + UPPER_HEX64, id="digest-upper-hex"),
    pytest.param("{host}/{repo}@sha256:" + HEX64[:32], id="digest-short"),
    pytest.param("{host}/{repo}@md5:" + HEX64[:32], id="digest-md5"),
    pytest.param("{host}/{repo}@SHA256:" + HEX64, id="digest-upper-algorithm"),
    pytest.param("{host}/{repo}/foo___bar:1", id="triple-underscore"),
    pytest.param("{host}/{repo}/foo..bar:1", id="double-dot"),
    pytest.param("{host}/{repo}/-foo:1", id="leading-dash"),
    pytest.param("{host}/{repo}//foo:1", id="empty-component"),
    pytest.param("{host}/{repo}/:1", id="trailing-slash"),
    pytest.param("{host}/{repo}:1:2", id="two-tags"),
    pytest.param("{host}/{repo}:", id="empty-tag"),
    pytest.param("{host}/{repo}:" + "t" * 129, id="tag-over-128"),
    pytest.param("{host}/{repo}:-tag", id="tag-leading-dash"),
    pytest.param("http://{host}/{repo}:1", id="url-scheme"),
    pytest.param(" {host}/{repo}:1", id="leading-space"),
    pytest.param("", id="empty-string"),
    pytest.param("[::1]:5000/{repo}:1", id="ipv6-literal"),
]


@pytest.mark.behavior(
    "REF-005",
    "REF-006",
    "REF-007",
    "REF-008",
    "REF-009",
    "REF-010",
    "REF-011",
    "ERR-001",
)
@pytest.mark.parametrize("template", INVALID)
def test_invalid_reference_is_rejected_without_any_request(
    case: Case, template: str
) -> None:
    """A malformed reference fails with gRPC Unknown and reaches no registry."""
    image = template.format(host=case.world.sim.host_port, repo=case.repo)
    error = case.pull_error(image)
    assert error.code == "UNKNOWN"
    _assert_no_request(case)


# -- accepted and normalized -------------------------------------------------------


@pytest.mark.behavior("REF-001", "REF-003", "REF-012", "REF-013")
@pytest.mark.parametrize(
    "template",
    [
        pytest.param("{name}", id="bare-name"),
        pytest.param("library/{name}", id="library-prefix"),
        pytest.param("docker.io/{name}", id="docker-io"),
        pytest.param("index.docker.io/{name}", id="index-docker-io"),
        pytest.param("docker.io/library/{name}:latest", id="fully-qualified"),
    ],
)
def test_familiar_names_normalize_to_docker_io_library(
    case: Case, template: str
) -> None:
    """Familiar Hub names become ``docker.io/library/<name>:latest`` (REF-001/003)."""
    name = _hub_name(case)
    image = case.image()
    case.require(Capability.PROXY_ENVIRONMENT)
    case.world.sim.push(image, f"library/{name}:latest", host="registry-1.docker.io")
    assert case.pull(template.format(name=name)) == image.config_digest
    paths = _manifest_paths(case, host="registry-1.docker.io")
    assert paths
    assert set(paths) <= {
        f"/v2/library/{name}/manifests/latest",
        f"/v2/library/{name}/manifests/{image.digest}",
    }
    info = case.status(image.config_digest)
    assert info is not None
    assert list(info.repo_tags) == [f"docker.io/library/{name}:latest"]


@pytest.mark.behavior("REF-001", "REF-013")
def test_registry_1_docker_io_is_not_a_familiar_domain(case: Case) -> None:
    """``registry-1.docker.io/<name>`` keeps its domain and gets no ``library/``."""
    name = _hub_name(case)
    image = case.image()
    case.require(Capability.PROXY_ENVIRONMENT)
    case.world.sim.push(image, f"{name}:latest", host="registry-1.docker.io")
    assert case.pull(f"registry-1.docker.io/{name}") == image.config_digest
    assert f"/v2/{name}/manifests/latest" in _manifest_paths(case)
    info = case.status(image.config_digest)
    assert info is not None
    assert list(info.repo_tags) == [f"registry-1.docker.io/{name}:latest"]


@pytest.mark.behavior("REF-002")
def test_port_without_a_slash_is_a_tag_of_a_hub_name(case: Case) -> None:
    """``name:5000`` has no domain: it is Hub's ``library/name`` tagged ``5000``."""
    name = _hub_name(case)
    image = case.image()
    case.require(Capability.PROXY_ENVIRONMENT)
    case.world.sim.push(image, f"library/{name}:5000", host="registry-1.docker.io")
    assert case.pull(f"{name}:5000") == image.config_digest
    assert f"/v2/library/{name}/manifests/5000" in _manifest_paths(case)


@pytest.mark.behavior("REF-002", "REF-013")
def test_localhost_with_port_is_a_domain(case: Case) -> None:
    """``localhost:<port>/<repo>`` is a registry domain, not a Hub path (REF-002)."""
    image = case.image()
    case.push(image, "1")
    port = case.world.sim.host_port.rsplit(":", 1)[1]
    assert case.pull(f"localhost:{port}/{case.repo}:1") == image.config_digest
    assert f"/v2/{case.repo}/manifests/1" in _manifest_paths(case)


def _vectors_by_profile() -> list[Any]:
    """The inputs of ``fixtures/vectors/references.json`` answered per profile.

    Each parameter is the group of vectors for one input; their ``profiles`` lists
    say which generation gets which answer.
    """
    path = fixtures_dir() / "vectors" / "references.json"
    vectors: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    groups: dict[str, list[dict[str, Any]]] = {}
    for vector in vectors:
        # Upper-case inputs only: test_reference_vectors drives the other ones.
        if "profiles" in vector and vector["input"] != vector["input"].lower():
            groups.setdefault(vector["input"], []).append(vector)
    return [
        pytest.param(group, id=text.replace("/", "-")) for text, group in groups.items()
    ]


@pytest.mark.behavior("REF-002", "REF-005", "REF-006", "ERR-001")
@pytest.mark.parametrize("group", _vectors_by_profile())
def test_upper_case_reference_follows_the_profiles_vector(
    case: Case, group: list[dict[str, Any]]
) -> None:
    """Upper case in a reference, answered as the profile's vector says.

    Up to 1.6 an upper-case first component (``LOCALHOST/foo``, ``Foo/bar``) is a
    path component: the reference fails parsing with the vector's reason and no
    registry (nor proxy) is contacted. From 1.7 (distribution/reference v0.6.0,
    measured on 1.7.34, 2.0.11 and 2.3.4) it is a domain: the vector's host is asked
    for over https, through the proxy, as Go proxies every name but the exact
    ``localhost``; and the lowercase error quotes the remote name it refused.
    """
    matching = [v for v in group if case.profile in v["profiles"]]
    if not matching:
        pytest.skip(f"no vector states {group[0]['input']!r} for {case.profile}")
    (vector,) = matching
    expect = vector["expect"]
    if "error" in expect:
        error = case.pull_error(vector["input"])
        assert error.code == "UNKNOWN"
        assert expect["reason"] in error.message, error.message
        _assert_no_request(case)
        return
    case.require(Capability.PROXY_ENVIRONMENT)
    error = case.pull_error(vector["input"])
    # The proxy refuses the unknown name with 502: a transport error (Unknown).
    assert error.code == "UNKNOWN"
    assert "invalid reference format" not in error.message, error.message
    connects = [
        ex.host.lower() for ex in case.world.journal.exchanges if ex.method == "CONNECT"
    ]
    # No port in the vector's host: https's 443 (neither name is exactly localhost).
    assert connects == [f"{expect['host'].lower()}:443"], case.journal_text()


@pytest.mark.behavior("REF-003", "REF-013")
def test_name_only_reference_resolves_latest(case: Case) -> None:
    """A reference without tag or digest asks for ``manifests/latest`` (REF-003)."""
    image = case.image()
    case.push(image, "latest")
    assert case.pull(case.ref(None)) == image.config_digest
    heads = [ex for ex in case.exchanges() if ex.method == "HEAD"]
    assert heads
    assert heads[0].path == f"/v2/{case.repo}/manifests/latest"
    info = case.status(image.config_digest)
    assert info is not None
    assert list(info.repo_tags) == [case.ref("latest")]


@pytest.mark.behavior("REF-004", "REF-012")
def test_tag_is_dropped_when_digest_present(case: Case) -> None:
    """``name:tag@digest`` requests only the digest and records no tag (REF-004)."""
    image = case.image()
    digest = case.push(image, "v1")
    assert case.pull(case.ref("v1", digest=digest)) == image.config_digest
    paths = _manifest_paths(case)
    assert paths
    assert all(path.endswith(f"/manifests/{digest}") for path in paths)
    info = case.status(image.config_digest)
    assert info is not None
    assert list(info.repo_tags) == []
    assert list(info.repo_digests) == [case.ref(None, digest=digest)]


@pytest.mark.behavior("REF-005", "REF-008")
@pytest.mark.parametrize(
    "tag",
    [
        pytest.param("Latest-UPPER", id="upper-case-tag"),
        pytest.param("_under.score-1", id="underscore-first"),
        pytest.param("t" * 128, id="tag-of-128"),
    ],
)
def test_valid_tags_are_accepted_verbatim(case: Case, tag: str) -> None:
    """Tags may hold upper case and reach 128 characters (REF-005, REF-008)."""
    image = case.image()
    case.push(image, tag)
    assert case.pull(case.ref(tag)) == image.config_digest
    assert f"/v2/{case.repo}/manifests/{tag}" in _manifest_paths(case)


@pytest.mark.behavior("REF-007", "REF-013")
def test_separators_allowed_by_the_grammar_are_accepted(case: Case) -> None:
    """``__``, ``.``, runs of ``-`` and nested paths are valid components (REF-007)."""
    image = case.image()
    repo = f"{case.repo}/a__b.c---d/e"
    case.world.sim.push(image, f"{repo}:1")
    ref = f"{case.world.sim.host_port}/{repo}:1"
    assert case.pull(ref) == image.config_digest
    assert f"/v2/{repo}/manifests/1" in _manifest_paths(case)


@pytest.mark.behavior("REF-009")
def test_name_of_exactly_255_characters_is_accepted(case: Case) -> None:
    """The normalized name may be 255 characters long, domain included (REF-009)."""
    prefix = f"{case.world.sim.host_port}/{case.repo}/"
    repo = f"{case.repo}/" + "a" * (255 - len(prefix))
    name = f"{case.world.sim.host_port}/{repo}"
    assert len(name) == 255
    image = case.image()
    case.world.sim.push(image, f"{repo}:1")
    assert case.pull(f"{name}:1") == image.config_digest


@pytest.mark.behavior("REF-009", "ERR-001")
def test_name_of_256_characters_follows_the_profile(case: Case) -> None:
    """One character more than 255 fails before any request (REF-009).

    Up to 1.6 the domain counts; from 1.7 only the repository path does, so a
    256-character name with a shorter path is valid and is looked up.
    """
    prefix = f"{case.world.sim.host_port}/{case.repo}/"
    name = prefix + "a" * (256 - len(prefix))
    assert len(name) == 256
    if not case.since("containerd-1.7"):
        assert case.pull_error(f"{name}:1").code == "UNKNOWN"
        _assert_no_request(case)
        return
    image = case.image()
    case.world.sim.push(image, f"{name.split('/', 1)[1]}:1")
    assert case.pull(f"{name}:1") == image.config_digest
    case.world.reset()
    path = f"{case.repo}/" + "a" * (256 - len(case.repo) - 1)
    assert len(path) == 256
    assert case.pull_error(f"{case.world.sim.host_port}/{path}:1").code == "UNKNOWN"
    _assert_no_request(case)


@pytest.mark.behavior("REF-006", "RES-007")
def test_sha256_prefixed_hex_is_a_hub_repository_tag(case: Case) -> None:
    """``sha256:<hex>`` is repository ``library/sha256`` tagged ``<hex>`` (REF-006)."""
    case.require(Capability.PROXY_ENVIRONMENT)
    error = case.pull_error(f"sha256:{HEX64}")
    assert error.code == "NOT_FOUND"
    assert f"/v2/library/sha256/manifests/{HEX64}" in _manifest_paths(
        case, host="registry-1.docker.io"
    )


@pytest.mark.behavior("REF-010")
def test_sha512_digest_reference_is_requested_as_given(case: Case) -> None:
    """A well-formed sha512 digest passes parsing and is asked for (REF-010)."""
    digest = "sha512:" + HEX64 * 2
    error = case.pull_error(case.ref(None, digest=digest))
    assert error.code == "NOT_FOUND"
    assert f"/v2/{case.repo}/manifests/{digest}" in _manifest_paths(case)


@pytest.mark.behavior("REF-011")
def test_underscore_host_is_still_contacted_as_a_host(case: Case) -> None:
    """``foo_bar.test/x`` parses domain-less, yet the resolver contacts that host."""
    case.require(Capability.PROXY_ENVIRONMENT)
    error = case.pull_error(f"foo_bar.test/{case.repo}:1")
    # The proxy refuses the unknown name with 502: a transport error (Unknown).
    assert error.code == "UNKNOWN"
    connects = [
        ex.host for ex in case.world.journal.exchanges if ex.method == "CONNECT"
    ]
    assert connects == ["foo_bar.test:443"], case.journal_text()
