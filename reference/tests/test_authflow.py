"""RegistryAuth driven by hand, httpx style, without any server (CHAL-*, TOKEN-*, XPORT-005)."""

from __future__ import annotations

import base64
from collections.abc import Generator
from dataclasses import dataclass

import httpx
import pytest

from refpull.errors import AuthError, TokenError, TransportError, Unauthorized
from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.registry.authflow import FollowRedirects, RegistryAuth

PROFILES = pytest.mark.parametrize(
    "profile", [SEED, CONTAINERD_16], ids=["seed", "containerd-1.6"]
)
REG = "http://127.0.0.1:5000"
URL = f"{REG}/v2/test/a/manifests/v1"
BEARER = f'Bearer realm="{REG}/token",service="reg",scope="repository:test/a:pull"'
BASIC_PU = "Basic " + base64.b64encode(b"u:p").decode()


@dataclass(frozen=True)
class Creds:
    username: str
    secret: str


def _auth(
    profile: Profile, creds: Creds | None = None, scheme: str = "http"
) -> RegistryAuth:
    return RegistryAuth(
        scheme=scheme,
        host="127.0.0.1:5000",
        repository="test/a",
        profile=profile,
        credentials=(lambda host: creds) if creds is not None else None,
    )


def _start(
    auth: httpx.Auth, url: str = URL, method: str = "HEAD"
) -> tuple[Generator[httpx.Request, httpx.Response, None], httpx.Request]:
    flow = auth.sync_auth_flow(httpx.Request(method, url))
    return flow, next(flow)


def _send(
    flow: Generator[httpx.Request, httpx.Response, None], response: httpx.Response
) -> httpx.Request | None:
    try:
        return flow.send(response)
    except StopIteration:
        return None


def _challenge(value: str = BEARER) -> httpx.Response:
    return httpx.Response(401, headers={"WWW-Authenticate": value})


@PROFILES
@pytest.mark.behavior("CHAL-001", "AUTH-006")
def test_first_request_carries_no_authorization_even_with_credentials(
    profile: Profile,
) -> None:
    calls: list[str] = []

    def lookup(host: str) -> Creds:
        calls.append(host)
        return Creds("u", "p")

    auth = RegistryAuth(
        scheme="http",
        host="127.0.0.1:5000",
        repository="test/a",
        profile=profile,
        credentials=lookup,
    )
    flow, first = _start(auth)
    assert "authorization" not in first.headers
    assert _send(flow, httpx.Response(200)) is None
    assert calls == []  # credentials are only looked up after a challenge


@PROFILES
@pytest.mark.behavior("TOKEN-002", "CHAL-004")
def test_bearer_challenge_fetches_an_anonymous_token_once(profile: Profile) -> None:
    auth = _auth(profile)
    flow, _ = _start(auth)
    token_request = _send(flow, _challenge())
    assert token_request is not None
    assert token_request.method == "GET"
    assert token_request.url.path == "/token"
    assert "authorization" not in token_request.headers
    retry = _send(flow, httpx.Response(200, json={"token": "T1"}))
    assert retry is not None
    assert retry.headers["authorization"] == "Bearer T1"
    assert _send(flow, httpx.Response(200)) is None
    # A later request reuses the handler: Bearer at once, no token request.
    flow2, first2 = _start(auth, URL.replace("v1", "v2"))
    assert first2.headers["authorization"] == "Bearer T1"
    # Another 401 from the same host only retries with the cached token (CHAL-004).
    again = _send(flow2, _challenge())
    assert again is not None
    assert again.headers["authorization"] == "Bearer T1"


@PROFILES
@pytest.mark.behavior("TOKEN-003")
def test_credentials_go_to_the_realm_as_an_oauth_post(profile: Profile) -> None:
    flow, _ = _start(_auth(profile, Creds("u", "p")))
    post = _send(flow, _challenge())
    assert post is not None
    assert post.method == "POST"
    assert b"grant_type=password" in post.content
    assert b"password=p" in post.content
    retry = _send(flow, httpx.Response(200, json={"access_token": "AT"}))
    assert retry is not None
    assert retry.headers["authorization"] == "Bearer AT"


@pytest.mark.behavior("TOKEN-004")
@pytest.mark.parametrize(
    ("profile", "falls_back"),
    [
        pytest.param(SEED, False, id="seed"),
        pytest.param(CONTAINERD_16, True, id="containerd-1.6"),
    ],
)
def test_post_400_falls_back_to_get_only_in_16(
    profile: Profile, falls_back: bool
) -> None:
    flow, _ = _start(_auth(profile, Creds("u", "p")))
    _send(flow, _challenge())
    if not falls_back:
        with pytest.raises(
            TokenError,
            match=r"^failed to authorize: failed to fetch oauth token: unexpected status: 400 Bad Request$",
        ):
            _send(flow, httpx.Response(400))
        return
    get = _send(flow, httpx.Response(400))
    assert get is not None
    assert get.method == "GET"
    assert get.headers["authorization"] == BASIC_PU
    retry = _send(flow, httpx.Response(200, json={"token": "G"}))
    assert retry is not None
    assert retry.headers["authorization"] == "Bearer G"


@pytest.mark.behavior("TOKEN-005")
@pytest.mark.parametrize(
    ("profile", "header"),
    [
        # Go's "Bearer " less the trailing whitespace h11 refuses and servers strip.
        pytest.param(SEED, "Bearer", id="seed"),
        pytest.param(CONTAINERD_16, None, id="containerd-1.6"),
    ],
)
def test_post_answer_with_only_token_sends_empty_bearer_in_seed(
    profile: Profile, header: str | None
) -> None:
    flow, _ = _start(_auth(profile, Creds("u", "p")))
    _send(flow, _challenge())
    if header is None:
        with pytest.raises(TokenError, match=r"did not include a token"):
            _send(flow, httpx.Response(200, json={"token": "x"}))
        return
    retry = _send(flow, httpx.Response(200, json={"token": "x"}))
    assert retry is not None
    assert retry.headers["authorization"] == header


@PROFILES
@pytest.mark.behavior("TOKEN-006")
def test_failed_token_fetch_is_cached_for_the_handler(profile: Profile) -> None:
    auth = _auth(profile)
    flow, _ = _start(auth)
    _send(flow, _challenge())
    with pytest.raises(
        TokenError, match=r"failed to fetch anonymous token: unexpected status: 503"
    ):
        _send(flow, httpx.Response(503))
    # The next request of this phase fails before it is sent, with the same error.
    with pytest.raises(
        TokenError, match=r"failed to fetch anonymous token: unexpected status: 503"
    ):
        _start(auth)


@PROFILES
@pytest.mark.behavior("TOKEN-009")
def test_relative_realm_fails_at_token_time(profile: Profile) -> None:
    flow, _ = _start(_auth(profile))
    with pytest.raises(
        TokenError,
        match=r'failed to authorize: failed to fetch anonymous token: Get "?/token\?scope=\S+: unsupported protocol scheme ""',
    ):
        _send(flow, _challenge('Bearer realm="/token",scope="s"'))


@pytest.mark.behavior("CHAL-003")
@pytest.mark.parametrize(
    ("profile", "fails"),
    [
        pytest.param(SEED, True, id="seed"),
        pytest.param(CONTAINERD_16, False, id="containerd-1.6"),
    ],
)
def test_challenge_without_scope_aborts_only_in_the_seed(
    profile: Profile, fails: bool
) -> None:
    flow, _ = _start(_auth(profile))
    challenge = _challenge(f'Bearer realm="{REG}/token"')
    if fails:
        with pytest.raises(
            AuthError, match=r"^no scope specified for token auth challenge$"
        ):
            _send(flow, challenge)
    else:
        token_request = _send(flow, challenge)
        assert token_request is not None
        assert token_request.url.params.get_list("scope") == ["repository:test/a:pull"]


@PROFILES
@pytest.mark.behavior("CHAL-005")
def test_second_error_challenge_for_the_same_request_is_access_denied(
    profile: Profile,
) -> None:
    flow, _ = _start(_auth(profile))
    _send(flow, _challenge())
    _send(flow, httpx.Response(200, json={"token": "T"}))
    with pytest.raises(
        Unauthorized,
        match=r"pull access denied.*server message: insufficient_scope: authorization failed",
    ):
        _send(flow, _challenge(BEARER + ',error="insufficient_scope"'))


@PROFILES
@pytest.mark.behavior("CHAL-006", "AUTH-004")
@pytest.mark.parametrize(
    ("creds", "retried"),
    [
        pytest.param(Creds("u", "p"), True, id="both"),
        pytest.param(Creds("u", ""), False, id="no-secret"),
        pytest.param(Creds("", "p"), False, id="no-user"),
    ],
)
def test_basic_needs_both_username_and_secret(
    profile: Profile, creds: Creds, retried: bool
) -> None:
    flow, _ = _start(_auth(profile, creds))
    retry = _send(flow, _challenge('Basic realm="r"'))
    assert (retry is not None) is retried
    if retry is not None:
        assert (
            retry.headers["authorization"]
            == "Basic "
            + base64.b64encode(f"{creds.username}:{creds.secret}".encode()).decode()
        )


@PROFILES
@pytest.mark.behavior("CHAL-006", "CHAL-007")
def test_rejected_basic_credentials_give_six_attempts(profile: Profile) -> None:
    flow, _ = _start(_auth(profile, Creds("u", "wrong")))
    attempts = 1
    while _send(flow, _challenge('Basic realm="r"')) is not None:
        attempts += 1
    assert attempts == 6


@PROFILES
@pytest.mark.behavior("CHAL-007")
def test_429_is_retried_immediately_up_to_six_attempts(profile: Profile) -> None:
    flow, _ = _start(_auth(profile))
    attempts = 1
    while _send(flow, httpx.Response(429, headers={"Retry-After": "60"})) is not None:
        attempts += 1
    assert attempts == 6


@PROFILES
@pytest.mark.behavior("RES-009")
def test_405_on_head_manifest_is_retried_as_get(profile: Profile) -> None:
    flow, _ = _start(_auth(profile))
    retry = _send(flow, httpx.Response(405))
    assert retry is not None
    assert retry.method == "GET"
    assert str(retry.url) == URL


@PROFILES
@pytest.mark.behavior("CHAL-008", "XPORT-005", "RES-011")
def test_token_is_not_sent_to_a_redirect_on_another_host(profile: Profile) -> None:
    auth = _auth(profile)
    flow, _ = _start(auth, f"{REG}/v2/test/a/blobs/sha256:x", "GET")
    _send(flow, _challenge())
    retry = _send(flow, httpx.Response(200, json={"token": "T"}))
    assert retry is not None
    assert retry.headers["authorization"] == "Bearer T"
    same_host = _send(
        flow, httpx.Response(307, headers={"Location": f"{REG}/storage/x"})
    )
    assert same_host is not None
    assert same_host.headers["authorization"] == "Bearer T"
    other = _send(
        flow,
        httpx.Response(307, headers={"Location": "http://127.0.0.1:6000/blob?sig=1"}),
    )
    assert other is not None
    assert "authorization" not in other.headers
    assert other.method == "GET"


@PROFILES
@pytest.mark.behavior("CHAL-008")
def test_redirect_target_challenge_never_receives_the_registry_credentials(
    profile: Profile,
) -> None:
    calls: list[str] = []

    def lookup(host: str) -> Creds:
        calls.append(host)
        return Creds("u", "p")

    auth = RegistryAuth(
        scheme="http",
        host="127.0.0.1:5000",
        repository="test/a",
        profile=profile,
        credentials=lookup,
    )
    flow, _ = _start(auth, f"{REG}/v2/test/a/blobs/sha256:x", "GET")
    hop = _send(
        flow, httpx.Response(307, headers={"Location": "http://127.0.0.2:7000/b"})
    )
    assert hop is not None
    # upstream-issues F-03: containerd 1.6 answers this with the pull secret.
    assert _send(flow, _challenge('Basic realm="x"')) is None
    assert calls == []


def _redirect(i: int) -> httpx.Response:
    return httpx.Response(302, headers={"Location": f"/r{i}"})


@PROFILES
@pytest.mark.behavior("XPORT-005", "RES-011")
@pytest.mark.parametrize(
    "redirects", [pytest.param(9, id="nine"), pytest.param(10, id="ten")]
)
@pytest.mark.parametrize("client", ["registry", "foreign"])
def test_at_most_ten_requests_are_made(
    profile: Profile, redirects: int, client: str
) -> None:
    """Go's CheckRedirect refuses the 10th redirect: nine are followed, never more."""
    auth: httpx.Auth = (
        _auth(profile) if client == "registry" else FollowRedirects(profile=profile)
    )
    method = "HEAD" if client == "registry" else "GET"
    flow, request = _start(auth, method=method)
    sent = [request]
    for i in range(redirects):
        if i == 9:
            with pytest.raises(TransportError) as info:
                _send(flow, _redirect(i))
            quoted = '"/r9"' if profile.quoted_urls_in_errors else "/r9"
            assert str(info.value) == (
                f"failed to do request: {method.title()} {quoted}: "
                "stopped after 10 redirects"
            )
            break
        nxt = _send(flow, _redirect(i))
        assert nxt is not None
        assert nxt.method == method
        sent.append(nxt)
    else:
        assert _send(flow, httpx.Response(200)) is None
    assert len(sent) == min(redirects + 1, 10)


@PROFILES
@pytest.mark.behavior("XPORT-005", "TOKEN-007")
def test_token_request_makes_at_most_ten_requests(profile: Profile) -> None:
    flow, _ = _start(_auth(profile))
    token_request = _send(flow, _challenge())
    assert token_request is not None
    for i in range(9):
        hop = _send(flow, _redirect(i))
        assert hop is not None
        assert hop.url.path == f"/r{i}"
    with pytest.raises(TokenError, match=r"stopped after 10 redirects"):
        _send(flow, _redirect(9))


@pytest.mark.behavior("AUTH-010")
@pytest.mark.parametrize(
    ("endpoint", "realm", "credentialed"),
    [
        pytest.param(
            "http", "http://r.example:9000/token", True, id="http-realm-same-host"
        ),
        pytest.param(
            "http", "http://127.0.0.1:9000/token", False, id="http-realm-other-host"
        ),
        pytest.param(
            "http", "https://auth.example/token", True, id="http-registry-https-realm"
        ),
        pytest.param(
            "https", "https://auth.example/token", True, id="https-realm-other-host"
        ),
        pytest.param(
            "https", "http://auth.example/token", False, id="no-downgrade-to-http-realm"
        ),
    ],
)
def test_realm_gets_credentials_only_over_https_or_on_the_registry_host(
    endpoint: str, realm: str, credentialed: bool
) -> None:
    for profile in (SEED, CONTAINERD_16):
        auth = RegistryAuth(
            scheme=endpoint,
            host="r.example",
            repository="a",
            profile=profile,
            credentials=lambda h: Creds("u", "p"),
        )
        flow, _ = _start(auth, f"{endpoint}://r.example/v2/a/manifests/t")
        token_request = _send(flow, _challenge(f'Bearer realm="{realm}",scope="s"'))
        assert token_request is not None
        assert (token_request.method == "POST") is credentialed
        assert (b"password=p" in token_request.content) is credentialed


@PROFILES
@pytest.mark.behavior("TOKEN-007")
def test_token_post_is_not_resent_to_another_host_on_redirect(profile: Profile) -> None:
    flow, _ = _start(_auth(profile, Creds("u", "p")))
    _send(flow, _challenge())
    with pytest.raises(TokenError, match=r"refusing to resend credentials"):
        _send(
            flow, httpx.Response(307, headers={"Location": "http://127.0.0.9:1/steal"})
        )


@PROFILES
@pytest.mark.behavior("FETCH-004")
def test_foreign_url_redirects_carry_no_credentials(profile: Profile) -> None:
    flow, first = _start(
        FollowRedirects(profile=profile), "http://127.0.0.2:8000/layer", "GET"
    )
    assert "authorization" not in first.headers
    hop = _send(flow, httpx.Response(302, headers={"Location": "http://127.0.0.3/x"}))
    assert hop is not None
    assert "authorization" not in hop.headers
    assert (
        _send(
            flow, httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="x"'})
        )
        is None
    )
