"""Which credential reaches which host: CRI AuthConfig, configured auth, challenges.

Catalog areas AUTH and CHAL (behaviors.md §5, §6); upstream findings F-01, F-02, F-03,
F-04, F-09, F-11. The registry journal records each request's credential as a
classification (``basic``/alice, ``bearer``/…), never the secret itself.
"""

from __future__ import annotations

import base64
import contextlib

import pytest

from cri_conformance.scenario import Case
from cri_conformance.targets.base import TargetError
from registry_sim.faults import Fault, Match, Redirect

ALICE = {"username": "alice", "password": "alice-secret"}


def _basic_users(case: Case, host: str) -> list[str | None]:
    """Per request to *host*: the Basic user presented, or None."""
    return [
        ex.auth[1] if ex.auth and ex.auth[0] == "basic" else None
        for ex in case.exchanges(host=host)
    ]


@pytest.mark.behavior("CHAL-001", "AUTH-006", "CHAL-006")
def test_credentials_are_sent_only_after_a_challenge(case: Case) -> None:
    """The first request carries no credentials; Basic follows the 401 (CHAL-001)."""
    image = case.image()
    case.push(image, "1", host="basic.test")
    assert (
        case.pull(case.ref("1", host="basic.test"), auth=ALICE) == image.config_digest
    )
    users = _basic_users(case, "basic.test")
    assert users[0] is None
    assert "alice" in users[1:]


@pytest.mark.behavior("AUTH-003")
def test_base64_auth_field_is_decoded_into_basic_credentials(case: Case) -> None:
    """``auth`` holds base64("user:password") and authenticates like the pair (AUTH-003)."""
    image = case.image()
    case.push(image, "1", host="basic.test")
    blob = base64.b64encode(b"alice:alice-secret").decode()
    assert case.pull(case.ref("1", host="basic.test"), auth={"auth": blob}) == (
        image.config_digest
    )
    assert "alice" in _basic_users(case, "basic.test")


@pytest.mark.behavior("AUTH-004", "CHAL-006")
def test_username_without_password_sends_no_basic_header(case: Case) -> None:
    """Basic needs both user and secret; a username alone is never sent (AUTH-004)."""
    case.push(case.image(), "1", host="basic.test")
    case.pull_error(case.ref("1", host="basic.test"), auth={"username": "alice"})
    assert set(_basic_users(case, "basic.test")) == {None}


@pytest.mark.behavior("AUTH-002")
@pytest.mark.parametrize(
    ("server_address", "matches"),
    [
        pytest.param("https://basic.test", True, id="url-with-scheme"),
        pytest.param("https://basic.test/v2/", True, id="url-with-path"),
        pytest.param("https://other.test", False, id="other-host"),
        pytest.param("basic.test", False, id="scheme-less-never-matches"),
    ],
)
def test_server_address_limits_credentials_to_its_host(
    case: Case, server_address: str, matches: bool
) -> None:
    """Credentials go only to the host named by ``server_address`` as a URL (AUTH-002)."""
    image = case.image()
    case.push(image, "1", host="basic.test")
    auth = {**ALICE, "server_address": server_address}
    if matches:
        assert case.pull(case.ref("1", host="basic.test"), auth=auth) == (
            image.config_digest
        )
        assert "alice" in _basic_users(case, "basic.test")
    else:
        case.pull_error(case.ref("1", host="basic.test"), auth=auth)
        assert set(_basic_users(case, "basic.test")) == {None}


@pytest.mark.behavior("AUTH-007", "HOST-004")
def test_configured_auth_is_used_when_the_request_has_none(case: Case) -> None:
    """``configs."<host>".auth`` authenticates pulls that carry no CRI auth."""
    image = case.image()
    case.push(image, "1", host="cfg-auth.test")
    assert case.pull(case.ref("1", host="cfg-auth.test")) == image.config_digest
    assert "cfg-user" in _basic_users(case, "cfg-auth.test")


@pytest.mark.behavior("AUTH-007")
def test_cri_auth_overrides_configured_auth(case: Case) -> None:
    """CRI-supplied credentials win over the configured ones for the endpoint."""
    image = case.image()
    case.push(image, "1", host="cfg-auth.test")
    case.pull(case.ref("1", host="cfg-auth.test"), auth=ALICE)
    users = set(_basic_users(case, "cfg-auth.test")) - {None}
    assert users == {"alice"}


@pytest.mark.behavior("AUTH-009")
def test_mirror_credential_is_never_sent_to_the_upstream_registry(case: Case) -> None:
    """A credential configured for a mirror stays with that mirror (AUTH-009, F-01).

    The image exists only upstream; the mirror answers 404 after authenticating. A
    runtime with the seed's shared-closure bug then offers the mirror's credential
    to the upstream registry when it challenges.
    """
    case.push(case.image(), "1", host="creds-mirrored.test")
    # The upstream rejects the anonymous pull; only the traffic matters here.
    with contextlib.suppress(TargetError):
        case.pull(case.ref("1", host="creds-mirrored.test"))
    assert "alice" in _basic_users(case, "creds-mirror.test")
    upstream = _basic_users(case, "creds-mirrored.test")
    assert "alice" not in upstream, case.journal_text()


@pytest.mark.behavior("AUTH-008")
def test_cri_credentials_without_server_address_stay_off_mirrors(case: Case) -> None:
    """Pull-secret credentials reach the image's registry, never its mirrors (AUTH-008, F-02).

    kubelet passes the secret of the image's own registry with no ``server_address``;
    a mirror that challenges must not be offered it.
    """
    image = case.image()
    case.push(image, "1", host="creds-mirrored.test")
    auth = {"username": "bob", "password": "bob-secret"}
    assert case.pull(case.ref("1", host="creds-mirrored.test"), auth=auth) == (
        image.config_digest
    )
    assert "bob" in _basic_users(case, "creds-mirrored.test")
    assert "bob" not in _basic_users(case, "creds-mirror.test"), case.journal_text()


@pytest.mark.behavior("CHAL-007", "CHAL-006")
def test_wrong_password_fails_after_a_bounded_number_of_attempts(case: Case) -> None:
    """Rejected Basic credentials end in an error after at most six attempts (CHAL-007)."""
    case.push(case.image(), "1", host="basic.test")
    auth = {"username": "alice", "password": "wrong"}
    case.pull_error(case.ref("1", host="basic.test"), auth=auth)
    manifest_requests = [
        ex for ex in case.exchanges(host="basic.test") if "/manifests/" in ex.path
    ]
    assert 1 < len(manifest_requests) <= 6


@pytest.mark.behavior("CFG-003")
@pytest.mark.parametrize(
    ("host", "user"),
    [("auths-a.test", "alice"), ("auths-b.test", "bob")],
    ids=["first-entry", "second-entry"],
)
def test_deprecated_auths_follow_the_profile(case: Case, host: str, user: str) -> None:
    """URL-keyed ``registry.auths``: 1.6 uses each entry for its host, the seed none."""
    image = case.image()
    case.push(image, "1", host=host)
    if case.since("containerd-1.6"):
        assert case.pull(case.ref("1", host=host)) == image.config_digest
        assert set(_basic_users(case, host)) - {None} == {user}
    else:
        case.pull_error(case.ref("1", host=host))
        assert set(_basic_users(case, host)) == {None}


@pytest.mark.behavior("AUTH-008", "CHAL-008")
def test_a_redirect_target_that_challenges_gets_no_credentials(case: Case) -> None:
    """A blob redirect to another registry that asks for Basic gets nothing (F-03)."""
    image = case.image()
    case.push(image, "1", host="basic.test")
    layer = str(image.layer_descriptors[0]["digest"])
    # cfg-auth.test challenges with Basic and knows alice: a leaked credential works.
    case.world.add_fault(
        Fault(
            Match(method="GET", path=layer + "$"),
            Redirect("https://cfg-auth.test{path}"),
        ),
        host="basic.test",
    )
    with contextlib.suppress(TargetError):
        case.pull(case.ref("1", host="basic.test"), auth=ALICE)
    to_target = case.exchanges(host="cfg-auth.test")
    assert to_target, "the redirect was not followed"
    assert [ex.auth for ex in to_target if ex.auth is not None] == []


@pytest.mark.behavior("CHAL-008")
def test_authorization_is_not_replayed_to_another_port_of_the_same_host(
    case: Case,
) -> None:
    """A blob redirect to another port on the registry's host carries no Authorization."""
    registry, other = case.world.any_basic, case.world.extra_http
    image = case.image()
    registry.push(image, f"{case.repo}:1")
    layer = str(image.layer_descriptors[0]["digest"])
    registry.faults.add(
        Fault(Match(method="GET", path=layer + "$"), Redirect(other.url + "{path}"))
    )
    with contextlib.suppress(TargetError):
        case.pull(case.ref("1", host=registry.host_port), auth=ALICE)
    to_other = case.exchanges(host=other.host_port)
    assert to_other, "the redirect was not followed"
    assert [ex.auth for ex in to_other if ex.auth is not None] == []
