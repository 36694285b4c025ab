"""Per-endpoint construction: schemes, paths, TLS settings and eager validation.

Catalog areas EP, HOST, TLS (behaviors.md §2–§4); upstream findings F-16, F-17, F-19,
F-21. Each case uses its own registry name whose mirrors and configs the world's
session setup defines (``World.setup``).
"""

from __future__ import annotations

import pytest

from cri_conformance.scenario import Case
from cri_conformance.targets.base import Capability


def _paths(case: Case, sim_host_port: str) -> list[str]:
    return [ex.path for ex in case.exchanges() if ex.host == sim_host_port]


@pytest.mark.behavior("EP-003", "EP-005")
def test_docker_hub_default_endpoint_is_tried_twice_when_configured_as_mirror(
    case: Case,
) -> None:
    """A ``registry-1.docker.io`` mirror does not suppress the default: it repeats (EP-003)."""
    case.require_tables()
    case.require(Capability.PROXY_ENVIRONMENT, Capability.CONFIGURE_REGISTRIES)
    name = case.repo.replace("/", "-")
    case.pull_error(f"{name}:1")
    heads = [
        ex
        for ex in case.world.exchanges()
        if f"library/{name}/manifests/" in ex.path and ex.method == "HEAD"
    ]
    assert {ex.host for ex in heads} == {"registry-1.docker.io"}
    assert len(heads) == 2
    assert len({ex.connection_id for ex in heads}) == 2


@pytest.mark.behavior("EP-006")
def test_schemeless_mirror_endpoint_follows_the_profile(case: Case) -> None:
    """``host:port`` without a scheme: seed fails before any I/O, 1.6 adds http (EP-006)."""
    case.require_tables()
    sim = case.world.extra_http
    image = case.image()
    sim.push(image, f"{case.repo}:1")
    ref = case.ref("1", host="schemeless.test")
    if case.since("containerd-1.6"):
        assert case.pull(ref) == image.config_digest
        assert _paths(case, sim.host_port)
    else:
        case.pull_error(ref)
        assert case.exchanges() == []


@pytest.mark.behavior("HOST-002")
def test_endpoint_path_slash_is_used_verbatim_without_v2(case: Case) -> None:
    """An endpoint path ``/`` is not replaced by ``/v2`` (HOST-002)."""
    case.require_tables()
    sim = case.world.extra_http
    sim.push(case.image(), f"{case.repo}:1")
    case.pull_error(case.ref("1", host="slashpath.test"))
    paths = _paths(case, sim.host_port)
    assert paths
    assert all(not p.startswith("/v2/") for p in paths)
    assert any(p.startswith(f"/{case.repo}/manifests/") for p in paths)


@pytest.mark.behavior("HOST-005")
def test_tls_config_on_a_plain_http_endpoint_follows_the_profile(case: Case) -> None:
    """Seed rejects TLS settings on an http endpoint; 1.6 ignores them (HOST-005)."""
    sim = case.world.tls_http
    image = case.image()
    sim.push(image, f"{case.repo}:1")
    ref = case.ref("1", host="tlshttp.test")
    if case.since("containerd-1.6"):
        assert case.pull(ref) == image.config_digest
        assert all(ex.scheme == "http" for ex in case.exchanges())
    else:
        case.pull_error(ref)
        assert _paths(case, sim.host_port) == []


@pytest.mark.behavior("TLS-004")
def test_insecure_skip_verify_accepts_an_untrusted_certificate(case: Case) -> None:
    """``insecure_skip_verify`` lets the endpoint's untrusted certificate pass (TLS-004)."""
    sim = case.world.untrusted_skip
    image = case.image()
    sim.push(image, f"{case.repo}:1")
    assert case.pull(case.ref("1", host="skipverify.test")) == image.config_digest
    assert _paths(case, sim.host_port)


@pytest.mark.behavior("TLS-006")
def test_untrusted_certificate_is_refused_by_default(case: Case) -> None:
    """Without TLS settings an unknown CA fails the handshake: no request is sent (TLS-006)."""
    sim = case.world.untrusted
    sim.push(case.image(), f"{case.repo}:1")
    case.pull_error(case.ref("1", host="verify.test"))
    assert _paths(case, sim.host_port) == []


@pytest.mark.behavior("EP-007", "TLS-003")
def test_a_broken_later_endpoint_fails_the_pull_before_any_request(case: Case) -> None:
    """A missing CA file on the second mirror fails the pull before the first is asked."""
    case.push(case.image(), "1", host="mirror-a.test")
    case.pull_error(case.ref("1", host="eager.test"))
    assert case.exchanges() == []


@pytest.mark.behavior("TLS-001")
def test_client_certificate_without_key_is_a_configuration_error(case: Case) -> None:
    """A cert_file without key_file fails the pull with no request sent (TLS-001)."""
    case.pull_error(case.ref("1", host="certonly.test"))
    assert case.exchanges() == []
