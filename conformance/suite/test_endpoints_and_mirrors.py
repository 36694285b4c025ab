"""Which hosts a pull contacts, in which order, over which scheme.

Catalog areas EP, HOST, XPORT (behaviors.md §2, §3, §10); upstream findings F-16, F-18,
F-19, F-20. Observed only through the registry journal and the proxy's CONNECT log.
"""

from __future__ import annotations

import pytest

from cri_conformance.scenario import Case
from cri_conformance.targets.base import Capability


def _manifest_hosts(case: Case) -> list[str]:
    return list(
        dict.fromkeys(ex.host for ex in case.exchanges() if "/manifests/" in ex.path)
    )


@pytest.mark.behavior("EP-001", "EP-002", "RES-006")
def test_mirrors_are_tried_in_order_before_the_default_endpoint(case: Case) -> None:
    """Configured mirrors come first, in order; the registry itself is tried last."""
    image = case.image()
    case.push(image, "1", host="mirrored.test")
    case.pull(case.ref("1", host="mirrored.test"))
    assert _manifest_hosts(case)[:3] == [
        "mirror-a.test",
        "mirror-b.test",
        "mirrored.test",
    ]


@pytest.mark.behavior("EP-001", "HOST-003")
def test_first_mirror_that_has_the_image_serves_it(case: Case) -> None:
    """A mirror holding the image answers the pull; later endpoints are not contacted."""
    image = case.image()
    case.push(image, "1", host="mirror-a.test")
    assert case.pull(case.ref("1", host="mirrored.test")) == image.config_digest
    assert _manifest_hosts(case) == ["mirror-a.test"]


@pytest.mark.behavior("HOST-007")
def test_mirror_requests_carry_ns_only_in_containerd_16(case: Case) -> None:
    """containerd 1.6 adds ``?ns=<registry>`` to mirror requests; the seed does not."""
    image = case.image()
    case.push(image, "1", host="mirror-a.test")
    case.pull(case.ref("1", host="mirrored.test"))
    mirror = [ex for ex in case.exchanges() if ex.host == "mirror-a.test"]
    assert mirror
    has_ns = all("ns=mirrored.test" in ex.query for ex in mirror)
    assert has_ns == case.since("containerd-1.6")


@pytest.mark.behavior("EP-004", "XPORT-001")
def test_loopback_registry_is_contacted_over_plain_http_without_proxy(
    case: Case,
) -> None:
    """``127.0.0.1:<port>`` defaults to http and is never sent through the proxy."""
    image = case.image()
    case.push(image, "1")
    case.pull(case.ref("1"))
    exchanges = case.exchanges()
    assert exchanges
    assert all(ex.scheme == "http" and ex.proxied_via is None for ex in exchanges)


@pytest.mark.behavior("EP-005", "REF-001", "XPORT-001", "HOST-007")
def test_docker_hub_names_are_fetched_from_registry_1_docker_io(case: Case) -> None:
    """``docker.io`` maps to ``registry-1.docker.io`` over https via the proxy."""
    name = case.repo.replace("/", "-")
    image = case.image()
    case.require(Capability.PROXY_ENVIRONMENT)
    case.world.sim.push(image, f"library/{name}:1", host="registry-1.docker.io")
    assert case.pull(f"{name}:1") == image.config_digest
    hub = [ex for ex in case.world.exchanges() if f"library/{name}" in ex.path]
    assert hub
    assert {ex.host for ex in hub} == {"registry-1.docker.io"}
    assert all(ex.scheme == "https" and ex.proxied_via for ex in hub)
    # Docker Hub's own API host is not a mirror of docker.io: no ?ns= (HOST-007).
    assert all("ns=" not in ex.query for ex in hub)
    case.pulled.append(f"docker.io/library/{name}:1")


@pytest.mark.behavior("HOST-001", "HOST-004", "TLS-002")
def test_mtls_mirror_gets_the_client_certificate_configured_for_its_host(
    case: Case,
) -> None:
    """``configs."<endpoint host>".tls`` supplies the client certificate (HOST-004)."""
    image = case.image()
    case.world.mtls.push(image, f"{case.repo}:1")
    assert case.pull(case.ref("1", host="mtls.test")) == image.config_digest
    seen = [ex for ex in case.exchanges() if ex.host.startswith("127.0.0.1")]
    assert seen
    assert all(ex.scheme == "https" for ex in seen)


@pytest.mark.behavior("RES-006")
def test_unreachable_first_mirror_follows_the_profile(case: Case) -> None:
    """A mirror refusing connections ends the seed's pull; 1.6 moves to the next."""
    image = case.image()
    case.push(image, "1", host="mirror-b.test")
    ref = case.ref("1", host="deadmirrored.test")
    if case.since("containerd-1.6"):
        assert case.pull(ref) == image.config_digest
        assert _manifest_hosts(case) == ["mirror-b.test"]
    else:
        case.pull_error(ref)
        assert _manifest_hosts(case) == []
