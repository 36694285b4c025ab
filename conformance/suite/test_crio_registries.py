"""CRI-O's own pull behaviours (catalog area CRIO, scope ``crio``).

containers/image, not containerd's resolver, does CRI-O's pulls: registries.conf
mirrors and ``insecure`` flags, one GET per tag, challenges learnt from the ping. These
cases run only for CRI-O-family targets (the plugin deselects them elsewhere); expected
values come from the simulator's construction (the images a case pushes, the journal).
"""

from __future__ import annotations

import contextlib

import pytest

from cri_conformance.scenario import Case
from cri_conformance.targets.base import TargetError
from registry_sim.faults import BearerChallenge, Fault, Match

ALICE = {"username": "alice", "password": "alice-secret"}


@pytest.mark.behavior("CRIO-001")
def test_image_id_is_the_bare_hex_of_the_config_digest(case: Case) -> None:
    """The raw PullImage answer and ImageStatus ID: the config digest's hex only."""
    image = case.image()
    case.push(image, "1")
    client = getattr(case.target, "client", None)
    if client is None:
        pytest.skip("unsupported: the target exposes no raw CRI client")
    raw = client.pull(case.ref("1"), None)
    case.pulled.append(f"sha256:{raw}")
    algorithm, _, hex_digest = image.config_digest.partition(":")
    assert algorithm == "sha256"
    assert raw == hex_digest
    info = client.status(case.ref("1"))
    assert info is not None
    assert info.id == hex_digest


@pytest.mark.behavior("CRIO-002")
def test_insecure_loopback_registry_is_tried_over_https_first(case: Case) -> None:
    """The plain-http simulator sees a TLS hello (a malformed request) before /v2/."""
    image = case.image()
    case.push(image, "1")
    case.pull(case.ref("1"))
    seen = list(case.world.sim.journal.exchanges)
    pings = [i for i, ex in enumerate(seen) if ex.method == "GET" and ex.path == "/v2/"]
    hellos = [i for i, ex in enumerate(seen) if ex.fault == "malformed-request"]
    assert pings, case.journal_text()
    assert hellos, case.journal_text()
    assert hellos[0] < pings[0], [ex.line() for ex in seen[:6]]


@pytest.mark.behavior("CRIO-003")
def test_mirrors_in_order_then_the_registry_itself(case: Case) -> None:
    """Only mirrored.test holds the image: mirror-a, mirror-b, then mirrored.test."""
    image = case.image()
    case.push(image, "1", host="mirrored.test")
    assert case.pull(case.ref("1", host="mirrored.test")) == image.config_digest
    tag_gets = [
        ex.host.split(":")[0]
        for ex in case.exchanges()
        if ex.method == "GET" and ex.path.endswith("/manifests/1")
    ]
    assert tag_gets == ["mirror-a.test", "mirror-b.test", "mirrored.test"], tag_gets


@pytest.mark.behavior("CRIO-003")
def test_first_mirror_holding_the_tag_serves_the_whole_pull(case: Case) -> None:
    """mirror-b holds the image: the registry itself is never asked."""
    image = case.image()
    case.push(image, "1", host="mirror-b.test")
    assert case.pull(case.ref("1", host="mirrored.test")) == image.config_digest
    hosts = {ex.host.split(":")[0] for ex in case.exchanges()}
    assert "mirrored.test" not in hosts, case.journal_text()
    blob_hosts = {ex.host.split(":")[0] for ex in case.blob_gets()}
    assert blob_hosts == {"mirror-b.test"}, case.journal_text()


@pytest.mark.behavior("CRIO-004")
def test_tag_is_resolved_by_one_get_without_head(case: Case) -> None:
    """No HEAD of the manifest; one GET of manifests/<tag>; that image is pulled."""
    image = case.image()
    case.push(image, "1")
    assert case.pull(case.ref("1")) == image.config_digest
    manifest = [ex for ex in case.exchanges() if "/manifests/" in ex.path]
    assert [ex.method for ex in manifest] == ["GET"], case.journal_text()
    assert manifest[0].path.endswith("/manifests/1")


@pytest.mark.behavior("CRIO-005")
def test_challenge_only_on_the_repository_gets_no_token_request(case: Case) -> None:
    """An open /v2/ ping, then 401 on the repository: the pull fails, no token asked."""
    host = case.world.tokens["standard"]  # its token server is the realm named
    realm = f"https://auth.{host.registry}/token"
    host.token_server.clear()
    case.world.add_fault(
        Fault(
            Match(path=f"/v2/{case.repo}/"),
            BearerChallenge(realm, host.registry, case.repo),
        )
    )
    case.push(case.image(), "1")
    with contextlib.suppress(TargetError):
        case.pull(case.ref("1"), auth=ALICE)
    assert not case.pulled, "the pull succeeded without a token"
    assert host.token_server.requests == [], host.token_server.requests
