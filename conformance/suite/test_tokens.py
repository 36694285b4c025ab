"""Bearer token acquisition against token servers with the quirks of real ones.

Catalog areas TOKEN and CHAL (behaviors.md §6, §7); upstream findings F-13, F-14, F-15.
Each personality lives on its own registry name ``<personality>.token.test`` whose
challenge names the realm ``https://auth.<personality>.token.test/token``.
"""

from __future__ import annotations

import pytest

from cri_conformance.scenario import Case
from registry_sim.token_server import TokenRequest

ALICE = {"username": "alice", "password": "alice-secret"}


def _registry(case: Case, personality: str) -> str:
    return case.world.tokens[personality].registry


def _token_requests(case: Case, personality: str) -> list[TokenRequest]:
    return case.world.tokens[personality].token_server.requests


def _bearer_requests(case: Case, host: str) -> list[str]:
    return [
        ex.path
        for ex in case.exchanges(host=host)
        if ex.auth and ex.auth[0] == "bearer"
    ]


@pytest.mark.behavior("TOKEN-002", "TOKEN-001")
def test_anonymous_pull_gets_a_token_with_get_and_the_repository_scope(
    case: Case,
) -> None:
    """Without credentials the token is fetched with GET, scoped to the repository."""
    host = _registry(case, "standard")
    image = case.image()
    case.push(image, "1", host=host)
    assert case.pull(case.ref("1", host=host)) == image.config_digest
    requests = _token_requests(case, "standard")
    assert requests
    assert {r.method for r in requests} == {"GET"}
    assert all(r.user is None for r in requests)
    assert all(f"repository:{case.repo}:pull" in r.scopes for r in requests)
    assert _bearer_requests(case, host)


@pytest.mark.behavior("TOKEN-003")
def test_credentials_are_exchanged_with_an_oauth_password_post(case: Case) -> None:
    """With credentials the token comes from an OAuth2 POST (grant_type=password)."""
    host = _registry(case, "standard")
    image = case.image()
    case.push(image, "1", host=host)
    case.pull(case.ref("1", host=host), auth=ALICE)
    posts = [r for r in _token_requests(case, "standard") if r.method == "POST"]
    assert posts
    assert {(r.grant_type, r.user, r.client_id) for r in posts} == {
        ("password", "alice", "containerd-client")
    }


@pytest.mark.behavior("TOKEN-003", "AUTH-005")
def test_identity_token_is_exchanged_with_a_refresh_token_post(case: Case) -> None:
    """An identity token alone uses grant_type=refresh_token (AUTH-005)."""
    host = _registry(case, "standard")
    server = case.world.tokens["standard"].token_server
    refresh = server._new_refresh("alice")  # a refresh token the server will accept
    image = case.image()
    case.push(image, "1", host=host)
    case.pull(case.ref("1", host=host), auth={"identity_token": refresh})
    posts = [r for r in _token_requests(case, "standard") if r.method == "POST"]
    assert posts
    assert {r.grant_type for r in posts} == {"refresh_token"}


@pytest.mark.behavior("TOKEN-004")
@pytest.mark.parametrize("personality", ["post-404", "post-401", "post-405"])
def test_unsupported_oauth_post_falls_back_to_get_with_basic(
    case: Case, personality: str
) -> None:
    """POST answered 404/401/405 (with a username) falls back to GET with Basic."""
    host = _registry(case, personality)
    image = case.image()
    case.push(image, "1", host=host)
    assert case.pull(case.ref("1", host=host), auth=ALICE) == image.config_digest
    methods = [(r.method, r.user) for r in _token_requests(case, personality)]
    assert methods[:2] == [("POST", "alice"), ("GET", "alice")]


@pytest.mark.behavior("TOKEN-004")
def test_oauth_post_answered_400_falls_back_only_in_containerd_16(case: Case) -> None:
    """A 400 on POST is a fallback in containerd 1.6 and an error in the seed."""
    host = _registry(case, "post-400")
    image = case.image()
    case.push(image, "1", host=host)
    if case.since("containerd-1.6"):
        assert case.pull(case.ref("1", host=host), auth=ALICE) == image.config_digest
        assert "GET" in {r.method for r in _token_requests(case, "post-400")}
    else:
        case.pull_error(case.ref("1", host=host), auth=ALICE)
        assert {r.method for r in _token_requests(case, "post-400")} == {"POST"}


@pytest.mark.behavior("TOKEN-005")
@pytest.mark.parametrize(
    "personality", ["access-token-only", "token-only", "no-expires"]
)
def test_token_responses_of_common_shapes_are_accepted(
    case: Case, personality: str
) -> None:
    """GET answers with ``token`` or ``access_token`` only, or no expiry, work."""
    host = _registry(case, personality)
    image = case.image()
    case.push(image, "1", host=host)
    assert case.pull(case.ref("1", host=host)) == image.config_digest


@pytest.mark.behavior("TOKEN-005")
def test_post_answer_without_access_token_fails_in_containerd_16(case: Case) -> None:
    """A POST answer with only ``token`` fails in 1.6 before the registry is asked
    again; the seed takes it as an empty token and sends ``Bearer `` (F-13)."""
    host = _registry(case, "token-only")
    case.push(case.image(), "1", host=host)
    error = case.pull_error(case.ref("1", host=host), auth=ALICE)
    assert error.code == "UNKNOWN"
    posts = [(r.method, r.status) for r in _token_requests(case, "token-only")]
    manifest = f"/v2/{case.repo}/manifests/1"
    seen = [(ex.method, ex.path, ex.auth) for ex in case.exchanges(host=host)]
    assert posts == [("POST", 200)]
    expected = [("HEAD", manifest, None)]
    if not case.since("containerd-1.6"):
        # The registry refuses the empty token with error="invalid_token"; the same
        # request refused twice is final (CHAL-005).
        expected.append(("HEAD", manifest, ("bearer", "empty")))
    assert seen == expected, case.journal_text()


@pytest.mark.behavior("TOKEN-008")
def test_token_requests_identify_the_runtime_in_containerd_16(case: Case) -> None:
    """containerd 1.6 sends its own User-Agent to token servers; the seed Go's default."""
    host = _registry(case, "standard")
    case.push(case.image(), "1", host=host)
    case.pull(case.ref("1", host=host))
    agents = {r.user_agent or "" for r in _token_requests(case, "standard")}
    assert agents
    if case.since("containerd-1.6"):
        assert all(agent.startswith("containerd/") for agent in agents)
    else:
        assert agents == {"Go-http-client/1.1"}


@pytest.mark.behavior("CHAL-004", "TOKEN-006")
def test_one_token_serves_every_request_of_a_pull_phase(case: Case) -> None:
    """A token is fetched once per host and phase, not once per request (CHAL-004)."""
    host = _registry(case, "standard")
    case.push(case.image(layers=3), "1", host=host)
    case.pull(case.ref("1", host=host))
    # One token for resolution and one for fetching (a fresh authorizer per phase,
    # HOST-006); never one per blob.
    assert 1 <= len(_token_requests(case, "standard")) <= 2
    assert len(_bearer_requests(case, host)) >= 5
