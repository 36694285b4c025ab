"""Operator headers, TLS files re-read per pull, challenge parsing, realm transport, redirects to https.

Catalog areas HOST, TLS, CHAL, TOKEN (behaviors.md §3, §4, §6, §7); upstream findings
F-15, F-16, F-21.
"""

from __future__ import annotations

import shutil
import time

import pytest

from cri_conformance.scenario import DEADLINE_CODES, Case
from cri_conformance.targets.base import TargetError
from cri_conformance.targets.cri import CRIClient
from cri_conformance.world import HEADER_NAME, HEADER_VALUE
from registry_sim.faults import Custom, Delay, Fault, Match, Redirect, SetHeader
from registry_sim.wire import Request, Response


@pytest.mark.behavior("HOST-008")
def test_operator_headers_reach_registry_requests_only_in_containerd_16(
    case: Case,
) -> None:
    """``registry.headers`` are sent to the registry in 1.6, never to token servers."""
    personality = case.world.tokens["standard"]
    case.push(case.image(), "1", host=personality.registry)
    case.pull(case.ref("1", host=personality.registry))
    registry = case.exchanges(host=personality.registry)
    assert registry
    sent = {ex.header(HEADER_NAME) for ex in registry}
    if case.since("containerd-1.6"):
        assert sent == {HEADER_VALUE}
    else:
        assert sent == {None}
    token_host = f"auth.{personality.registry}"
    token_exchanges = [ex for ex in case.world.exchanges() if ex.host == token_host]
    assert token_exchanges
    assert all(ex.header(HEADER_NAME) is None for ex in token_exchanges)


@pytest.mark.behavior("TLS-005", "TLS-003")
def test_ca_file_is_read_again_for_every_pull(case: Case) -> None:
    """A CA file fixed between two pulls takes effect without a restart (TLS-005)."""
    world = case.world
    image = case.image()
    world.reload_ca.push(image, f"{case.repo}:1")
    world.reload_ca_file.write_text("not a certificate\n")
    try:
        # Junk PEM is accepted silently (TLS-003) but trusts nothing: refused.
        case.pull_error(case.ref("1", host="reloadca.test"))
        assert world.reload_ca.ca_path is not None
        shutil.copyfile(world.reload_ca.ca_path, world.reload_ca_file)
        assert case.pull(case.ref("1", host="reloadca.test")) == image.config_digest
    finally:
        world.reload_ca_file.write_text("not a certificate\n")


def _challenge(case: Case, host: str, params: str) -> None:
    """Make *host* answer this case's repository with a hand-written challenge."""
    challenge = f'Bearer realm="https://auth.{host}/token",{params}'
    case.world.add_fault(
        Fault(Match(path=f"/{case.repo}/"), SetHeader("WWW-Authenticate", challenge)),
        host=host,
    )


@pytest.mark.behavior("CHAL-002")
def test_empty_quoted_param_ends_challenge_parsing_only_in_the_seed(case: Case) -> None:
    """``empty=""`` before ``scope`` drops the scope in the seed; 1.6 parses on (CHAL-002)."""
    host = case.world.tokens["standard"].registry
    image = case.image()
    case.push(image, "1", host=host)
    scope = f"repository:{case.repo}:pull"
    _challenge(case, host, f'empty="",service="{host}",scope="{scope}"')
    server = case.world.tokens["standard"].token_server
    if case.since("containerd-1.6"):
        assert case.pull(case.ref("1", host=host)) == image.config_digest
        assert {r.service for r in server.requests} == {host}
    else:
        case.pull_error(case.ref("1", host=host))
        assert server.requests == []


def _scopes_asked(case: Case, scope: str) -> set[tuple[str, tuple[str, ...]]]:
    """Pull from a registry whose challenge names *scope*: the token requests' scopes."""
    host = case.world.tokens["standard"].registry
    image = case.image()
    case.push(image, "1", host=host)
    _challenge(case, host, f'service="{host}",scope="{scope}"')
    assert case.pull(case.ref("1", host=host)) == image.config_digest
    requests = case.world.tokens["standard"].token_server.requests
    assert requests
    return {(r.method, r.scopes) for r in requests}


@pytest.mark.behavior("TOKEN-001")
def test_token_scopes_add_the_repository_pull_scope_to_the_challenges(
    case: Case,
) -> None:
    """A challenge naming another scope gets both: its own and the pull scope of the
    reference's repository, sorted (TOKEN-001)."""
    pull = f"repository:{case.repo}:pull"
    assert _scopes_asked(case, "registry:catalog:*") == {
        ("GET", ("registry:catalog:*", pull))
    }


@pytest.mark.behavior("TOKEN-001")
def test_a_space_separated_challenge_scope_is_split_from_containerd_16(
    case: Case,
) -> None:
    """1.6 splits ``scope="a b"`` into two scopes (containerd PR #6165); the seed sends
    the whole string as one ``scope`` value beside the repository's (TOKEN-001)."""
    pull = f"repository:{case.repo}:pull"
    asked = _scopes_asked(case, f"registry:catalog:* {pull}")
    if case.since("containerd-1.6"):
        assert asked == {("GET", ("registry:catalog:*", pull))}
    else:
        assert asked == {("GET", (f"registry:catalog:* {pull}", pull))}


@pytest.mark.behavior("CHAL-002")
@pytest.mark.parametrize(
    "first",
    [
        pytest.param('Basic realm="registry-sim"', id="basic-first"),
        pytest.param("Negotiate", id="unknown-scheme-first"),
    ],
)
def test_a_bearer_challenge_in_a_later_header_is_answered(
    case: Case, first: str
) -> None:
    """Bearer ranks above Basic, and every WWW-Authenticate header counts (CHAL-002)."""
    host = case.world.tokens["standard"].registry
    image = case.image()
    case.push(image, "1", host=host)

    def two_challenges(request: Request, response: Response) -> Response:
        bearer = response.headers.get("WWW-Authenticate")
        if response.status == 401 and bearer:
            response.headers.remove("WWW-Authenticate")
            response.headers.add("WWW-Authenticate", first)
            response.headers.add("WWW-Authenticate", bearer)
        return response

    case.world.add_fault(
        Fault(Match(path=f"/{case.repo}/"), Custom(two_challenges)), host=host
    )
    alice = {"username": "alice", "password": "alice-secret"}
    assert case.pull(case.ref("1", host=host), auth=alice) == image.config_digest
    assert case.world.tokens["standard"].token_server.requests
    sent = {ex.auth[0] for ex in case.exchanges(host=host) if ex.auth is not None}
    assert sent == {"bearer"}


@pytest.mark.behavior("CHAL-005")
def test_a_first_challenge_carrying_error_is_not_a_rejection(case: Case) -> None:
    """``error=`` on the first 401 (before any token was sent) is answered, not fatal."""
    host = case.world.tokens["standard"].registry
    image = case.image()
    case.push(image, "1", host=host)
    scope = f"repository:{case.repo}:pull"
    _challenge(case, host, f'service="{host}",scope="{scope}",error="invalid_token"')
    assert case.pull(case.ref("1", host=host)) == image.config_digest
    assert case.world.tokens["standard"].token_server.requests


@pytest.mark.behavior("CHAL-003")
def test_bearer_challenge_without_realm_fails_the_pull(case: Case) -> None:
    """A Bearer challenge with no realm cannot be answered: the pull fails."""
    host = case.world.tokens["standard"].registry
    case.push(case.image(), "1", host=host)
    challenge = f'Bearer service="{host}",scope="repository:{case.repo}:pull"'
    case.world.add_fault(
        Fault(Match(path=f"/{case.repo}/"), SetHeader("WWW-Authenticate", challenge)),
        host=host,
    )
    case.pull_error(case.ref("1", host=host))
    assert case.world.tokens["standard"].token_server.requests == []


@pytest.mark.behavior("CHAL-003", "RES-006")
def test_a_realmless_challenge_is_refused_again_on_each_path_of_a_digest_pull(
    case: Case,
) -> None:
    """Refused, a realm-less challenge leaves no authorizer behind: pulled by digest,
    1.6 goes on to ``/blobs/`` (RES-006) and asks it unauthenticated, refused again;
    the seed stops at the first refusal."""
    host = case.world.tokens["standard"].registry
    digest = case.push(case.image(), "1", host=host)
    challenge = f'Bearer service="{host}",scope="repository:{case.repo}:pull"'
    case.world.add_fault(
        Fault(Match(path=f"/{case.repo}/"), SetHeader("WWW-Authenticate", challenge)),
        host=host,
    )
    case.pull_error(case.ref(None, host=host, digest=digest))
    assert case.world.tokens["standard"].token_server.requests == []
    paths = ["manifests", "blobs"] if case.since("containerd-1.6") else ["manifests"]
    expected = [("HEAD", f"/v2/{case.repo}/{p}/{digest}", 401, None) for p in paths]
    seen = [
        (ex.method, ex.path, ex.status, ex.auth) for ex in case.exchanges(host=host)
    ]
    assert seen == expected, case.journal_text()


@pytest.mark.behavior("TOKEN-007", "XPORT-001")
def test_token_requests_use_the_endpoint_transport_and_proxy(case: Case) -> None:
    """Token requests to a named realm go through the proxy over TLS (TOKEN-007)."""
    personality = case.world.tokens["standard"]
    case.push(case.image(), "1", host=personality.registry)
    case.pull(case.ref("1", host=personality.registry))
    token_host = f"auth.{personality.registry}"
    token_exchanges = [ex for ex in case.world.exchanges() if ex.host == token_host]
    assert token_exchanges
    assert all(ex.proxied_via and ex.scheme == "https" for ex in token_exchanges)


@pytest.mark.behavior("HOST-009")
def test_redirect_from_plain_http_to_https_is_verified(case: Case) -> None:
    """A loopback http registry redirecting blobs to an untrusted https host fails.

    containerd 1.6 turns verification off for plain-http loopback endpoints, which
    bites exactly here: the redirected TLS connection is not verified (HOST-009).
    """
    origin, storage = case.world.extra_http, case.world.untrusted
    image = case.image()
    origin.push(image, f"{case.repo}:1")
    storage.push(image, f"{case.repo}:1")
    origin.faults.add(
        Fault(Match(method="GET", path="/blobs/"), Redirect(f"{storage.url}{{path}}"))
    )
    case.pull_error(case.ref("1", host=origin.host_port))
    blob_gets = [
        ex
        for ex in case.exchanges(host=storage.host_port)
        if ex.method == "GET" and "/blobs/" in ex.path
    ]
    assert blob_gets == []


@pytest.mark.behavior("XPORT-002")
def test_a_silent_registry_stalls_the_pull_until_the_callers_deadline(
    case: Case,
) -> None:
    """No response timeout: a registry that answers nothing holds the pull until the
    CRI caller's deadline expires (DEADLINE_EXCEEDED, or CANCELLED when the runtime
    notices first), not a runtime error (F-24)."""
    client = getattr(case.target, "client", None)
    if not isinstance(client, CRIClient):
        pytest.skip("unsupported: a call deadline needs a CRI endpoint")
    image = case.image()
    case.push(image, "1")
    case.world.add_fault(Fault(Match(method="HEAD", path="/manifests/1$"), Delay(3)))
    impatient = CRIClient(client.endpoint, api=client.api, timeout=1.0)
    try:
        with pytest.raises(TargetError) as raised:
            impatient.pull(case.ref("1"))
        assert raised.value.code in DEADLINE_CODES, raised.value
    finally:
        impatient.close()
        time.sleep(3)  # let the abandoned pull finish before cleaning up
        case.pulled.append(case.ref("1"))
