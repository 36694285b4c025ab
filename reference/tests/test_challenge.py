"""WWW-Authenticate parsing and the authorizer's pure decisions (CHAL-*)."""

from __future__ import annotations

import httpx
import pytest

from refpull.errors import AuthError
from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.registry.challenge import (
    MAX_ATTEMPTS,
    BearerOptions,
    Challenge,
    Retry,
    bearer_options,
    host_key,
    parse_www_authenticate,
    rejected_credentials,
    retry_decision,
)

BOTH = [SEED, CONTAINERD_16]


@pytest.mark.behavior("CHAL-002")
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(
            ['Bearer realm="https://t/token",service="reg",scope="repository:a:pull"'],
            [
                (
                    "bearer",
                    {
                        "realm": "https://t/token",
                        "service": "reg",
                        "scope": "repository:a:pull",
                    },
                )
            ],
            id="bearer-quoted",
        ),
        pytest.param(
            ["BASIC Realm=x"],
            [("basic", {"realm": "x"})],
            id="scheme-and-names-lower-cased",
        ),
        pytest.param(
            ['Bearer Service = reg,realm="x"'],
            [("bearer", {})],
            id="space-before-equals-ends",
        ),
        pytest.param(
            ["Bearer realm=https://t/token"],
            [("bearer", {"realm": "https"})],
            id="unquoted-cut-at-colon",
        ),
        pytest.param(
            ['Bearer realm="a\\"b\\\\c"'],
            [("bearer", {"realm": 'a"b\\c'})],
            id="escapes",
        ),
        pytest.param(
            ['Bearer realm="x", Basic realm="y"'],
            [("bearer", {"realm": "x"})],
            id="second-in-one-value-ignored",
        ),
        pytest.param(
            ["Negotiate abc", 'Basic realm="b"', 'Bearer realm="a"'],
            [("bearer", {"realm": "a"}), ("basic", {"realm": "b"})],
            id="several-headers-sorted-unknown-dropped",
        ),
        pytest.param(
            ['Basic realm="b"', 'Digest realm="d"'],
            [("digest", {"realm": "d"}), ("basic", {"realm": "b"})],
            id="digest-before-basic",
        ),
        pytest.param([" Bearer realm=x"], [], id="leading-space-no-scheme"),
    ],
)
@pytest.mark.parametrize("profile", BOTH, ids=["seed", "containerd-1.6"])
def test_www_authenticate_grammar_is_the_same_in_both_profiles(
    values: list[str], expected: list[tuple[str, dict[str, str]]], profile: Profile
) -> None:
    got = parse_www_authenticate(values, profile)
    assert [(c.scheme, dict(c.params)) for c in got] == expected


@pytest.mark.behavior("CHAL-002")
@pytest.mark.parametrize(
    ("value", "seed", "containerd16"),
    [
        pytest.param(
            'Bearer realm="r",empty="",service="svc",scope="s"',
            {"realm": "r"},
            {"realm": "r", "empty": "", "service": "svc", "scope": "s"},
            id="empty-quoted-truncates-in-seed",
        ),
        pytest.param(
            'Bearer realm="r",scope="unterminated',
            {"realm": "r"},
            {"realm": "r", "scope": ""},
            id="unterminated-quote",
        ),
    ],
)
def test_empty_quoted_param_truncates_only_the_seed(
    value: str, seed: dict[str, str], containerd16: dict[str, str]
) -> None:
    assert dict(parse_www_authenticate([value], SEED)[0].params) == seed
    assert (
        dict(parse_www_authenticate([value], CONTAINERD_16)[0].params) == containerd16
    )


def _bearer(**params: str) -> Challenge:
    return Challenge("bearer", params)


@pytest.mark.behavior("CHAL-003")
def test_bearer_without_realm_is_rejected_in_both_profiles() -> None:
    for profile in BOTH:
        with pytest.raises(
            AuthError, match=r"^no realm specified for token auth challenge$"
        ):
            bearer_options(_bearer(scope="s"), profile)


@pytest.mark.behavior("CHAL-003", "TOKEN-001")
@pytest.mark.parametrize(
    ("params", "seed", "containerd16"),
    [
        pytest.param({"realm": "r"}, None, (), id="no-scope"),
        pytest.param(
            {"realm": "r", "scope": "a b"},
            ("a b",),
            ("a", "b"),
            id="space-separated-scope",
        ),
    ],
)
def test_scope_is_required_by_the_seed_and_split_by_16(
    params: dict[str, str], seed: tuple[str, ...] | None, containerd16: tuple[str, ...]
) -> None:
    if seed is None:
        with pytest.raises(
            AuthError, match=r"^no scope specified for token auth challenge$"
        ):
            bearer_options(_bearer(**params), SEED)
    else:
        assert bearer_options(_bearer(**params), SEED).scopes == seed
    assert bearer_options(_bearer(**params), CONTAINERD_16) == BearerOptions(
        "r", "", containerd16
    )


@pytest.mark.behavior("CHAL-003")
def test_unparseable_realm_is_rejected() -> None:
    with pytest.raises(AuthError, match=r"^invalid token auth challenge realm: "):
        bearer_options(_bearer(realm="http://t/%zz", scope="s"), CONTAINERD_16)


@pytest.mark.behavior("CHAL-005")
@pytest.mark.parametrize(
    ("attempts", "rejected"),
    [
        pytest.param([("GET", "u")], False, id="first-error-is-not-a-rejection"),
        pytest.param([("GET", "u"), ("GET", "u")], True, id="same-request-twice"),
        pytest.param([("HEAD", "u"), ("GET", "u")], False, id="method-changed"),
        pytest.param([("GET", "u"), ("GET", "v")], False, id="url-changed"),
    ],
)
def test_error_param_on_a_repeated_request_means_rejected_credentials(
    attempts: list[tuple[str, str]], rejected: bool
) -> None:
    error = rejected_credentials(
        _bearer(realm="r", error="insufficient_scope"), attempts
    )
    assert (error is not None) is rejected
    if error is not None:
        assert str(error) == (
            "pull access denied, repository does not exist or may require authorization: "
            "server message: insufficient_scope: authorization failed"
        )
    assert (
        rejected_credentials(_bearer(realm="r"), [("GET", "u"), ("GET", "u")]) is None
    )


@pytest.mark.behavior("CHAL-007", "RES-009")
@pytest.mark.parametrize(
    ("status", "method", "path", "attempts", "decision"),
    [
        pytest.param(401, "GET", "/v2/a/blobs/x", 1, Retry.AUTHENTICATE, id="401"),
        pytest.param(
            405, "HEAD", "/v2/a/manifests/t", 1, Retry.AS_GET, id="405-head-manifest"
        ),
        pytest.param(405, "HEAD", "/v2/a/blobs/x", 1, Retry.STOP, id="405-head-blob"),
        pytest.param(405, "GET", "/v2/a/manifests/t", 1, Retry.STOP, id="405-get"),
        pytest.param(429, "GET", "/x", 5, Retry.AGAIN, id="429-within-budget"),
        pytest.param(408, "GET", "/x", 1, Retry.AGAIN, id="408"),
        pytest.param(429, "GET", "/x", MAX_ATTEMPTS, Retry.STOP, id="budget-spent"),
        pytest.param(500, "GET", "/x", 1, Retry.STOP, id="5xx-not-retried"),
        pytest.param(503, "GET", "/x", 1, Retry.STOP, id="503-not-retried"),
    ],
)
def test_retry_triggers_and_budget(
    status: int, method: str, path: str, attempts: int, decision: Retry
) -> None:
    assert retry_decision(status, method, path, attempts) is decision


@pytest.mark.behavior("CHAL-007")
@pytest.mark.parametrize(
    ("status", "previous", "last_host", "decision"),
    [
        pytest.param(503, None, True, Retry.AGAIN, id="first-503-on-the-last-host"),
        pytest.param(500, 503, True, Retry.AGAIN, id="another-server-error"),
        pytest.param(503, 503, True, Retry.STOP, id="same-status-twice"),
        pytest.param(504, None, False, Retry.STOP, id="not-the-last-host"),
        pytest.param(502, None, True, Retry.STOP, id="502-is-final"),
    ],
)
def test_server_errors_are_retried_once_on_the_last_host_in_2_3(
    status: int, previous: int | None, last_host: bool, decision: Retry
) -> None:
    got = retry_decision(
        status,
        "GET",
        "/v2/a/blobs/x",
        1,
        5,
        previous=previous,
        server_errors_on_last_host=last_host,
    )
    assert got is decision


@pytest.mark.behavior("CHAL-008")
@pytest.mark.parametrize(
    ("url", "key"),
    [
        pytest.param("http://127.0.0.1:5000/v2/", "127.0.0.1:5000", id="port-kept"),
        pytest.param("https://r:443/v2/", "r", id="default-port-folded"),
        pytest.param("https://R.example/v2/", "r.example", id="host-lower-cased"),
        pytest.param(
            "http://127.0.0.1:5001/v2/", "127.0.0.1:5001", id="other-port-other-key"
        ),
    ],
)
def test_handlers_are_keyed_by_host_and_port(url: str, key: str) -> None:
    assert host_key(httpx.URL(url)) == key
