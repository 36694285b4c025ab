"""Token request builders, response parsing and the token cache (TOKEN-*)."""

from __future__ import annotations

import base64
import threading

import pytest

from refpull.errors import TokenError
from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.registry.challenge import BearerOptions
from refpull.registry.tokens import (
    TokenCache,
    oauth_post_request,
    parse_token_response,
    post_falls_back_to_get,
    repository_scope,
    token_get_request,
    token_scopes,
    token_user_agent,
)

PROFILES = pytest.mark.parametrize(
    "profile", [SEED, CONTAINERD_16], ids=["seed", "containerd-1.6"]
)
OPTIONS = BearerOptions(realm="http://t/token", service="reg", scopes=())


@pytest.mark.behavior("TOKEN-001")
def test_scopes_are_the_sorted_union_of_context_and_challenge() -> None:
    context = [repository_scope("test/a")]
    assert token_scopes(
        context, ["repository:test/b:pull", "repository:test/a:pull"]
    ) == (
        "repository:test/a:pull",
        "repository:test/b:pull",
    )
    # Dedup is textual only.
    assert (
        len(token_scopes(["repository:a:pull,push"], ["repository:a:push,pull"])) == 2
    )


@PROFILES
@pytest.mark.behavior("TOKEN-002")
def test_anonymous_get_keeps_realm_query_and_sends_no_authorization(
    profile: Profile,
) -> None:
    options = BearerOptions(
        realm="https://t/token?foo=bar&scope=x", service="reg", scopes=()
    )
    request = token_get_request(
        options, ["repository:a:pull"], username="", secret="", profile=profile
    )
    assert request.method == "GET"
    assert (
        request.url.query == b"foo=bar&scope=x&scope=repository%3Aa%3Apull&service=reg"
    )
    assert "authorization" not in request.headers


@pytest.mark.behavior("TOKEN-002")
def test_get_omits_an_empty_service() -> None:
    request = token_get_request(
        BearerOptions("http://t/token", "", ()),
        ["s"],
        username="",
        secret="",
        profile=SEED,
    )
    assert request.url.query == b"scope=s"


@pytest.mark.behavior("TOKEN-003")
@pytest.mark.parametrize(
    ("username", "secret", "body"),
    [
        pytest.param(
            "u",
            "p w&",
            b"client_id=containerd-client&grant_type=password&password=p+w%26"
            b"&scope=repository%3Atest%2Fa%3Apull&service=reg&username=u",
            id="password-grant",
        ),
        pytest.param(
            "",
            "s3cret",
            b"client_id=containerd-client&grant_type=refresh_token&refresh_token=s3cret"
            b"&scope=repository%3Atest%2Fa%3Apull&service=reg",
            id="refresh-token-grant",
        ),
    ],
)
def test_oauth_post_form_is_exact(username: str, secret: str, body: bytes) -> None:
    request = oauth_post_request(
        OPTIONS,
        ["repository:test/a:pull"],
        username=username,
        secret=secret,
        profile=CONTAINERD_16,
    )
    assert request.method == "POST"
    assert request.content == body
    assert (
        request.headers["content-type"]
        == "application/x-www-form-urlencoded; charset=utf-8"
    )


@pytest.mark.behavior("TOKEN-003")
@pytest.mark.parametrize(
    ("profile", "has_scope"),
    [
        pytest.param(SEED, True, id="seed"),
        pytest.param(CONTAINERD_16, False, id="containerd-1.6"),
    ],
)
def test_empty_scope_is_sent_only_by_the_seed(
    profile: Profile, has_scope: bool
) -> None:
    request = oauth_post_request(OPTIONS, [], username="u", secret="p", profile=profile)
    assert (b"scope=" in request.content) is has_scope


@pytest.mark.behavior("TOKEN-004")
@pytest.mark.parametrize(
    ("status", "username", "seed", "containerd16"),
    [
        pytest.param(404, "", True, True, id="404"),
        pytest.param(401, "", True, True, id="401"),
        pytest.param(405, "u", True, True, id="405-with-username"),
        pytest.param(405, "", False, False, id="405-without-username"),
        pytest.param(400, "u", False, True, id="400-only-16"),
        pytest.param(403, "u", False, False, id="403-never"),
        pytest.param(500, "u", False, False, id="500-never"),
    ],
)
def test_post_to_get_fallback_statuses(
    status: int, username: str, seed: bool, containerd16: bool
) -> None:
    assert post_falls_back_to_get(status, username=username, profile=SEED) is seed
    assert (
        post_falls_back_to_get(status, username=username, profile=CONTAINERD_16)
        is containerd16
    )


@pytest.mark.behavior("TOKEN-004")
def test_get_fallback_carries_basic_even_for_an_empty_username() -> None:
    request = token_get_request(OPTIONS, ["s"], username="", secret="tok", profile=SEED)
    assert (
        request.headers["authorization"]
        == "Basic " + base64.b64encode(b":tok").decode()
    )


@pytest.mark.behavior("TOKEN-005")
@pytest.mark.parametrize(
    ("body", "method", "token"),
    [
        pytest.param(b'{"token":"a"}', "GET", "a", id="get-token"),
        pytest.param(
            b'{"access_token":"b","token":"a"}',
            "GET",
            "b",
            id="get-prefers-access-token",
        ),
        pytest.param(
            b'{"access_token":"","token":"a"}', "GET", "a", id="get-empty-access-token"
        ),
        pytest.param(b'{"TOKEN":"c"}', "GET", "c", id="keys-case-insensitive"),
        pytest.param(
            b'{"token":"d"} trailing junk', "GET", "d", id="trailing-bytes-ignored"
        ),
        pytest.param(
            b'{"access_token":"e","expires_in":3600,"issued_at":"2020-01-01T00:00:00Z"}',
            "POST",
            "e",
            id="post",
        ),
        pytest.param(
            b'{"token":"f","issued_at":null}', "GET", "f", id="null-issued-at"
        ),
    ],
)
def test_token_responses_that_decode(body: bytes, method: str, token: str) -> None:
    assert (
        parse_token_response(body, method=method, profile=CONTAINERD_16).token == token
    )


@pytest.mark.behavior("TOKEN-005")
@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"", "unable to decode token response: EOF", id="empty-body"),
        pytest.param(
            b'{"token":"a","expires_in":"3600"}',
            "unable to decode token response: json",
            id="string-expiry",
        ),
        pytest.param(
            b'{"token":"a","expires_in":3600.0}',
            "unable to decode token response: json",
            id="float-expiry",
        ),
        pytest.param(
            b'{"token":"a","issued_at":""}',
            "unable to decode token response",
            id="empty-issued-at",
        ),
        pytest.param(
            b'{"token":"a","issued_at":"2020-01-01 00:00:00"}',
            "unable to decode token response",
            id="not-rfc3339",
        ),
        pytest.param(b"<html>", "unable to decode token response", id="html"),
        pytest.param(
            b'{"token":""}',
            "authorization server did not include a token in the response",
            id="no-token",
        ),
    ],
)
def test_token_responses_that_fail(body: bytes, message: str) -> None:
    with pytest.raises(TokenError) as info:
        parse_token_response(body, method="GET", profile=SEED)
    assert str(info.value).startswith(message)


@pytest.mark.behavior("TOKEN-005")
def test_post_without_access_token_is_an_empty_token_in_the_seed_only() -> None:
    assert (
        parse_token_response(b'{"token":"x"}', method="POST", profile=SEED).token == ""
    )
    with pytest.raises(TokenError, match=r"did not include a token"):
        parse_token_response(b'{"token":"x"}', method="POST", profile=CONTAINERD_16)


@pytest.mark.behavior("TOKEN-008")
def test_token_user_agent_per_profile() -> None:
    assert token_user_agent(SEED) == "Go-http-client/1.1"
    assert token_user_agent(CONTAINERD_16) == "containerd/1.6.20~ds1"
    request = token_get_request(
        OPTIONS, ["s"], username="", secret="", profile=CONTAINERD_16
    )
    assert request.headers["user-agent"] == "containerd/1.6.20~ds1"


@pytest.mark.behavior("TOKEN-006")
def test_cache_shares_one_fetch_and_caches_failures() -> None:
    cache = TokenCache()
    slot, mine = cache.claim(["a", "b"])
    again, theirs = cache.claim(["a", "b"])
    assert mine
    assert not theirs
    assert again is slot
    got: list[str] = []
    waiter = threading.Thread(target=lambda: got.append(again.wait()))
    waiter.start()
    slot.finish(token="t")
    waiter.join(timeout=5)
    assert got == ["t"]
    failed, _ = cache.claim(["c"])
    failed.finish(error=TokenError("boom"))
    with pytest.raises(TokenError, match=r"boom"):
        cache.claim(["c"])[0].wait()
