"""Auth policies, the token server, its personalities and JWT validation (no sockets)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from registry_sim.access import Scope
from registry_sim.auth import AnyBasicAuth, BasicAuth, NoAuth, TokenAuth
from registry_sim.tls import SigningKey, SimCA
from registry_sim.token_server import TokenServer
from registry_sim.tokens import (
    describe_bearer,
    parse_scope,
    personalities,
)
from registry_sim.wire import Headers, Request, Response

REALM = "http://127.0.0.1:5000/token"
PULL = Scope.pull("library/busybox")
# The exact body containerd 1.6.20 POSTs (behaviors.md TOKEN-003, ✔ctr).
CONTAINERD_FORM = (
    "client_id=containerd-client&grant_type=password&password=p+w%26"
    "&scope=repository%3Alibrary%2Fbusybox%3Apull&service=registry.test&username=u"
)
FORM_TYPE = "application/x-www-form-urlencoded; charset=utf-8"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def ca() -> Iterator[SimCA]:
    with SimCA() as sim_ca:
        yield sim_ca


@pytest.fixture(scope="module")
def signing(ca: SimCA) -> SigningKey:
    return ca.signing_key("ES256")


def _server(signing: SigningKey, **kwargs: Any) -> TokenServer:
    kwargs.setdefault("users", {"u": "p w&", "alice": "secret"})
    kwargs.setdefault("clock", Clock())
    return TokenServer(signing=signing, **kwargs)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _get(
    query: dict[str, Any] | list[tuple[str, str]], auth: str | None = None
) -> Request:
    headers = Headers([("Authorization", auth)] if auth else [])
    return Request("GET", "/token", urlencode(query, doseq=True), headers)


def _post(body: str, content_type: str = FORM_TYPE) -> Request:
    headers = Headers([("Content-Type", content_type)])
    return Request("POST", "/token", "", headers, body.encode())


def _registry_request(token: str | None = None, basic: str | None = None) -> Request:
    headers = Headers()
    if token is not None:
        headers.add("Authorization", f"Bearer {token}")
    if basic is not None:
        headers.add("Authorization", basic)
    return Request("GET", "/v2/library/busybox/manifests/latest", headers=headers)


def _body(response: Response) -> dict[str, Any]:
    assert isinstance(response.body, bytes)
    data = json.loads(response.body)
    assert isinstance(data, dict)
    return data


def _token(response: Response) -> str:
    body = _body(response)
    return str(body.get("access_token") or body["token"])


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    data = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    assert isinstance(data, dict)
    return data


def _challenges(response: Response | None) -> list[str]:
    assert response is not None
    assert response.status == 401
    return response.headers.get_all("WWW-Authenticate")


# -- NoAuth and Basic ---------------------------------------------------------------


def test_no_auth_lets_every_request_through() -> None:
    assert NoAuth().authorize(_registry_request(), PULL) is None
    assert NoAuth().authorize(_registry_request(), None) is None


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="none"),
        pytest.param(_basic("u", "wrong"), id="wrong-password"),
        pytest.param(_basic("nobody", "p"), id="unknown-user"),
        pytest.param("Basic !!!", id="malformed"),
        pytest.param("Bearer abc", id="bearer"),
    ],
)
def test_basic_auth_challenges_without_valid_credentials(
    authorization: str | None,
) -> None:
    policy = BasicAuth({"u": "p"}, realm='my "realm"')
    response = policy.authorize(_registry_request(basic=authorization), PULL)
    assert _challenges(response) == ['Basic realm="my \\"realm\\""']
    assert response is not None
    error = _body(response)["errors"][0]
    assert error["code"] == "UNAUTHORIZED"
    assert error["detail"][0]["Name"] == "library/busybox"


def test_basic_auth_accepts_the_right_password() -> None:
    policy = BasicAuth({"u": "p:with:colons"})
    request = _registry_request(basic=_basic("u", "p:with:colons"))
    assert policy.authorize(request, PULL) is None
    assert policy.authorize(request, None) is None


# -- challenges ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        pytest.param(
            PULL,
            f'Bearer realm="{REALM}",service="registry.test",'
            'scope="repository:library/busybox:pull"',
            id="pull",
        ),
        pytest.param(
            Scope.push("a/b"),
            f'Bearer realm="{REALM}",service="registry.test",'
            'scope="repository:a/b:pull,push"',
            id="push",
        ),
        pytest.param(
            None, f'Bearer realm="{REALM}",service="registry.test"', id="ping"
        ),
    ],
)
def test_token_auth_challenge_names_realm_service_and_scope(
    signing: SigningKey, scope: Scope | None, expected: str
) -> None:
    policy = TokenAuth(_server(signing), realm=REALM)
    assert _challenges(policy.authorize(_registry_request(), scope)) == [expected]


def test_realm_other_host_personality_moves_the_realm_host(signing: SigningKey) -> None:
    server = _server(signing, personality="realm-other-host")
    policy = TokenAuth(server, realm=REALM)
    (challenge,) = _challenges(policy.authorize(_registry_request(), PULL))
    assert challenge.startswith('Bearer realm="http://auth.registry.test:5000/token"')


def test_multiple_challenges_come_in_separate_headers_basic_first(
    signing: SigningKey,
) -> None:
    policy = TokenAuth(_server(signing, personality="multiple-challenges"), realm=REALM)
    basic, bearer = _challenges(policy.authorize(_registry_request(), PULL))
    assert basic == 'Basic realm="registry-sim"'
    assert bearer.startswith(f'Bearer realm="{REALM}"')


def test_one_header_personality_puts_both_challenges_in_one_value(
    signing: SigningKey,
) -> None:
    server = _server(signing, personality="multiple-challenges-one-header")
    policy = TokenAuth(server, realm=REALM)
    (value,) = _challenges(policy.authorize(_registry_request(), PULL))
    assert value.startswith(f'Bearer realm="{REALM}",')
    assert value.endswith(', Basic realm="registry-sim"')


def test_basic_credentials_count_only_where_basic_is_offered(
    signing: SigningKey,
) -> None:
    creds = _basic("alice", "secret")
    multi = TokenAuth(_server(signing, personality="multiple-challenges"), realm=REALM)
    standard = TokenAuth(_server(signing), realm=REALM)
    assert multi.authorize(_registry_request(basic=creds), PULL) is None
    wrong = multi.authorize(_registry_request(basic=_basic("alice", "x")), PULL)
    assert len(_challenges(wrong)) == 2
    assert _challenges(standard.authorize(_registry_request(basic=creds), PULL))


# -- token GET ----------------------------------------------------------------------


def test_anonymous_get_issues_a_pull_token(signing: SigningKey) -> None:
    server = _server(signing)
    query = {"scope": "repository:library/busybox:pull", "service": "registry.test"}
    response = server.handle(_get(query))
    assert response.status == 200
    assert response.headers.get("Content-Type") == "application/json"
    body = _body(response)
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert body["issued_at"] == "2023-11-14T22:13:20Z"
    claims = server.verify(body["token"])
    assert claims["sub"] == ""
    assert claims["aud"] == "registry.test"
    assert claims["iss"] == "registry-sim-token"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["access"] == [
        {"type": "repository", "name": "library/busybox", "actions": ["pull"]}
    ]
    (record,) = server.requests
    assert (record.method, record.user, record.authenticated) == ("GET", None, False)
    assert record.scopes == ("repository:library/busybox:pull",)
    assert record.fields == ("scope", "service")


def test_anonymous_push_is_never_granted(signing: SigningKey) -> None:
    server = _server(signing)
    response = server.handle(_get({"scope": "repository:a/b:pull,push"}))
    assert _claims(_token(response))["access"][0]["actions"] == ["pull"]


def test_get_with_basic_authenticates_the_user(signing: SigningKey) -> None:
    server = _server(signing)
    query = {"scope": "repository:a/b:pull,push", "account": "u"}
    response = server.handle(_get(query, _basic("u", "p w&")))
    claims = _claims(_token(response))
    assert claims["sub"] == "u"
    assert claims["access"][0]["actions"] == ["pull", "push"]
    record = server.requests[0]
    assert (record.user, record.authenticated, record.account) == ("u", True, "u")


def test_get_with_a_wrong_password_is_401(signing: SigningKey) -> None:
    server = _server(signing)
    response = server.handle(_get({"scope": "repository:a:pull"}, _basic("u", "x")))
    assert response.status == 401
    record = server.requests[0]
    assert (record.status, record.user, record.authenticated) == (401, "u", False)


def test_get_for_another_service_is_refused(signing: SigningKey) -> None:
    server = _server(signing)
    assert server.handle(_get({"service": "elsewhere"})).status == 400


def test_several_scopes_and_space_separated_scopes_are_all_granted(
    signing: SigningKey,
) -> None:
    server = _server(signing)
    query = [
        ("scope", "repository:a:pull"),
        ("scope", "repository:b:pull repository:c:pull"),  # seed style, TOKEN-001
    ]
    claims = _claims(_token(server.handle(_get(query))))
    assert [a["name"] for a in claims["access"]] == ["a", "b", "c"]
    assert server.requests[0].scopes == (
        "repository:a:pull",
        "repository:b:pull repository:c:pull",
    )


def test_forbidden_anonymous_pull_gets_a_token_without_access(
    signing: SigningKey,
) -> None:
    server = _server(signing, anonymous={})
    token = _token(server.handle(_get({"scope": "repository:a:pull"})))
    assert _claims(token)["access"] == []
    response = TokenAuth(server, realm=REALM).authorize(
        _registry_request(token), Scope.pull("a")
    )
    assert 'error="insufficient_scope"' in _challenges(response)[0]


@pytest.mark.parametrize(
    ("repo", "actions"),
    [
        pytest.param("team/app", ["pull"], id="granted-pull-only"),
        pytest.param("secret/app", [], id="not-granted"),
        pytest.param("public", ["pull", "push"], id="star-action"),
    ],
)
def test_per_repository_grants_limit_access(
    signing: SigningKey, repo: str, actions: list[str]
) -> None:
    grants = {"alice": {"team/*": ["pull"], "public": ["*"]}}
    server = _server(signing, grants=grants, anonymous={})
    query = {"scope": f"repository:{repo}:pull,push"}
    claims = _claims(_token(server.handle(_get(query, _basic("alice", "secret")))))
    assert [a["actions"] for a in claims["access"]] == ([actions] if actions else [])


# -- OAuth2 POST --------------------------------------------------------------------


def test_containerd_style_password_post_gets_an_access_token(
    signing: SigningKey,
) -> None:
    server = _server(signing)
    response = server.handle(_post(CONTAINERD_FORM))
    assert response.status == 200
    body = _body(response)
    assert set(body) == {"access_token", "expires_in", "issued_at", "scope"}
    assert body["scope"] == "repository:library/busybox:pull"
    assert server.verify(body["access_token"])["sub"] == "u"
    (record,) = server.requests
    assert (record.method, record.grant_type, record.client_id) == (
        "POST",
        "password",
        "containerd-client",
    )
    assert record.fields == (
        "client_id",
        "grant_type",
        "password",
        "scope",
        "service",
        "username",
    )
    assert record.content_type == FORM_TYPE
    assert "p w&" not in repr(record)


def test_offline_access_returns_a_refresh_token_that_works(signing: SigningKey) -> None:
    server = _server(signing)
    first = server.handle(
        _post(CONTAINERD_FORM + "&access_type=offline"),
    )
    refresh = _body(first)["refresh_token"]
    form = urlencode(
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "client_id": "c",
            "scope": "repository:x:pull",
        }
    )
    second = server.handle(_post(form))
    assert second.status == 200
    assert _claims(_token(second))["sub"] == "u"
    assert refresh not in repr(server.requests)


def test_configured_identity_token_is_accepted_as_refresh_token(
    signing: SigningKey,
) -> None:
    server = _server(signing, identity_tokens={"id-tok": "alice"})
    form = urlencode(
        {"grant_type": "refresh_token", "refresh_token": "id-tok", "client_id": "c"}
    )
    assert _claims(_token(server.handle(_post(form))))["sub"] == "alice"


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        pytest.param(CONTAINERD_FORM.replace("p+w", "x"), FORM_TYPE, 401, id="bad-pw"),
        pytest.param(
            CONTAINERD_FORM.replace("client_id=containerd-client&", ""),
            FORM_TYPE,
            400,
            id="no-client-id",
        ),
        pytest.param(CONTAINERD_FORM, "application/json", 400, id="not-a-form"),
        pytest.param(
            "grant_type=refresh_token&refresh_token=nope&client_id=c",
            FORM_TYPE,
            400,
            id="unknown-refresh-token",
        ),
        pytest.param(
            "grant_type=client_credentials&client_id=c",
            FORM_TYPE,
            400,
            id="unsupported-grant",
        ),
    ],
)
def test_bad_posts_are_refused(
    signing: SigningKey, body: str, content_type: str, status: int
) -> None:
    server = _server(signing)
    response = server.handle(_post(body, content_type))
    assert response.status == status
    assert server.requests[0].status == status


def test_other_paths_and_methods_are_refused(signing: SigningKey) -> None:
    server = _server(signing)
    assert server.handle(Request("GET", "/elsewhere")).status == 404
    response = server.handle(Request("PUT", "/token"))
    assert response.status == 405
    assert response.headers.get("Allow") == "GET, POST"


# -- personalities ------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 405, 401, 400])
def test_post_personalities_answer_post_with_their_status(
    signing: SigningKey, status: int
) -> None:
    server = _server(signing, personality=f"post-{status}")
    assert server.handle(_post(CONTAINERD_FORM)).status == status
    anonymous = server.handle(_get({"scope": "repository:a:pull"}))
    assert anonymous.status == 200
    with_basic = server.handle(
        _get({"scope": "repository:a:pull"}, _basic("u", "p w&"))
    )
    assert _claims(_token(with_basic))["sub"] == "u"
    assert [r.status for r in server.requests] == [status, 200, 200]


@pytest.mark.parametrize(
    ("name", "get_body", "post_body"),
    [
        pytest.param(
            "standard",
            {"token": "T", "access_token": "T", "expires_in": 300, "issued_at": "I"},
            {"access_token": "T", "expires_in": 300, "issued_at": "I"},
            id="standard",
        ),
        pytest.param(
            "access-token-only",
            {"access_token": "T", "expires_in": 300, "issued_at": "I"},
            {"access_token": "T", "expires_in": 300, "issued_at": "I"},
            id="access-token-only",
        ),
        pytest.param(
            "token-only",
            {"token": "T", "expires_in": 300, "issued_at": "I"},
            {"token": "T", "expires_in": 300, "issued_at": "I"},
            id="token-only",
        ),
        pytest.param(
            "empty-access-token",
            {"token": "T", "access_token": "", "expires_in": 300, "issued_at": "I"},
            {"token": "T", "access_token": "", "expires_in": 300, "issued_at": "I"},
            id="empty-access-token",
        ),
        pytest.param(
            "no-expires",
            {"token": "T", "access_token": "T"},
            {"access_token": "T"},
            id="no-expires",
        ),
        pytest.param(
            "string-expires-in",
            {"token": "T", "access_token": "T", "expires_in": "300", "issued_at": "I"},
            {"access_token": "T", "expires_in": "300", "issued_at": "I"},
            id="string-expires-in",
        ),
    ],
)
def test_personality_shapes_the_token_response(
    signing: SigningKey,
    name: str,
    get_body: dict[str, Any],
    post_body: dict[str, Any],
) -> None:
    server = _server(signing, personality=name)

    def shape(response: Response) -> dict[str, Any]:
        assert response.status == 200
        body = _body(response)
        body.pop("scope", None)
        for key in ("token", "access_token"):
            if body.get(key):
                server.verify(body[key])
                body[key] = "T"
        if "issued_at" in body:
            body["issued_at"] = "I"
        return body

    assert shape(server.handle(_get({"scope": "repository:a:pull"}))) == get_body
    assert shape(server.handle(_post(CONTAINERD_FORM))) == post_body


def test_every_named_personality_is_built_in() -> None:
    assert set(personalities) >= {
        "standard",
        "post-404",
        "post-405",
        "post-401",
        "post-400",
        "access-token-only",
        "token-only",
        "empty-access-token",
        "no-expires",
        "string-expires-in",
        "realm-other-host",
        "multiple-challenges",
    }
    assert all(name == p.name for name, p in personalities.items())


# -- JWT validation -----------------------------------------------------------------


def test_a_valid_token_passes_and_covers_the_ping(signing: SigningKey) -> None:
    server = _server(signing)
    policy = TokenAuth(server, realm=REALM)
    token = _token(server.handle(_get({"scope": "repository:library/busybox:pull"})))
    assert policy.authorize(_registry_request(token), PULL) is None
    assert policy.authorize(_registry_request(token), None) is None
    push = policy.authorize(_registry_request(token), Scope.push("library/busybox"))
    assert 'error="insufficient_scope"' in _challenges(push)[0]
    other = policy.authorize(_registry_request(token), Scope.pull("other"))
    assert 'scope="repository:other:pull"' in _challenges(other)[0]


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_tokens_carry_the_ca_issued_x5c_chain(ca: SimCA, algorithm: Any) -> None:
    server = TokenServer(signing=ca.signing_key(algorithm))
    token = _token(server.handle(_get({"scope": "repository:a:pull"})))
    head = token.split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    assert header["alg"] == algorithm
    assert header["typ"] == "JWT"
    assert header["x5c"] == ca.signing_key(algorithm).x5c
    assert server.verify(token)["access"][0]["name"] == "a"


def _mutations(server: TokenServer, ca_other: SimCA) -> dict[str, str]:
    good = _token(server.handle(_get({"scope": "repository:library/busybox:pull"})))
    head, body, sig = good.split(".")
    claims = _claims(good)
    claims["access"][0]["actions"] = ["pull", "push"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    foreign = TokenServer(signing=ca_other.signing_key(), clock=server.clock)
    other_aud = TokenServer(signing=server.signing, service="other", clock=server.clock)
    other_iss = TokenServer(signing=server.signing, issuer="evil", clock=server.clock)
    query = {"scope": "repository:library/busybox:pull"}
    return {
        "tampered-claims": f"{head}.{forged}.{sig}",
        "foreign-key": _token(foreign.handle(_get(query))),
        "wrong-audience": _token(other_aud.handle(_get(query))),
        "wrong-issuer": _token(other_iss.handle(_get(query))),
        "not-a-jwt": "abc",
        "empty": "",
        "bad-signature-b64": f"{head}.{body}.!!!",
    }


@pytest.mark.parametrize(
    "mutation",
    [
        "tampered-claims",
        "foreign-key",
        "wrong-audience",
        "wrong-issuer",
        "not-a-jwt",
        "empty",
        "bad-signature-b64",
    ],
)
def test_invalid_tokens_are_answered_with_invalid_token(
    signing: SigningKey, mutation: str
) -> None:
    server = _server(signing)
    with SimCA() as other_ca:
        token = _mutations(server, other_ca)[mutation]
    response = TokenAuth(server, realm=REALM).authorize(_registry_request(token), PULL)
    (challenge,) = _challenges(response)
    assert challenge.endswith('error="invalid_token"')


@pytest.mark.parametrize(
    ("elapsed", "leeway", "valid"),
    [
        pytest.param(1, 0, True, id="at-expiry"),
        pytest.param(2, 0, False, id="after-expiry"),
        pytest.param(2, 60, True, id="within-leeway"),
        pytest.param(-5, 0, False, id="not-yet-valid"),
    ],
)
def test_token_expiry_is_enforced(
    signing: SigningKey, elapsed: float, leeway: float, valid: bool
) -> None:
    clock = Clock()
    server = _server(signing, clock=clock, expires_in=1)
    token = _token(server.handle(_get({"scope": "repository:library/busybox:pull"})))
    clock.now += elapsed
    policy = TokenAuth(server, realm=REALM, leeway=leeway)
    response = policy.authorize(_registry_request(token), PULL)
    assert (response is None) is valid


# -- helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "repository:a/b:pull",
            ("repository", "a/b", frozenset({"pull"})),
            id="plain",
        ),
        pytest.param(
            "repository:127.0.0.1:5000/x:pull,push",
            ("repository", "127.0.0.1:5000/x", frozenset({"pull", "push"})),
            id="name-with-colon",
        ),
        pytest.param(
            "repository(plugin):p:pull",
            ("repository", "p", frozenset({"pull"})),
            id="class",
        ),
        pytest.param(
            "registry:catalog:*",
            ("registry", "catalog", frozenset({"*"})),
            id="catalog",
        ),
        pytest.param("repository:a", None, id="no-actions"),
        pytest.param("nonsense", None, id="nonsense"),
    ],
)
def test_parse_scope(
    text: str, expected: tuple[str, str, frozenset[str]] | None
) -> None:
    assert parse_scope(text) == expected


def test_describe_bearer_names_subject_and_scope_never_the_token(
    signing: SigningKey,
) -> None:
    server = _server(signing)
    user_token = _token(
        server.handle(_get({"scope": "repository:x:pull"}, _basic("alice", "secret")))
    )
    anon_token = _token(server.handle(_get({})))
    assert describe_bearer(user_token) == "sub=alice scope=repository:x:pull"
    assert describe_bearer(anon_token) == "sub=- scope=-"
    assert describe_bearer("opaque-secret") == "opaque len=13"
    assert describe_bearer("") == "empty"
    for token in (user_token, anon_token, "opaque-secret"):
        assert token not in describe_bearer(token)


def test_token_flow_through_the_registry_app(
    signing: SigningKey, tmp_path: Path
) -> None:
    """End to end without sockets: 401 → token GET → retry with the token → 200."""
    from registry_sim.app import RegistryApp
    from registry_sim.storage import Storage

    server = _server(signing)
    with Storage(tmp_path) as storage:
        digest = storage.put_blob("library/busybox", b"layer bytes")
        app = RegistryApp(storage, auth=TokenAuth(server, realm=REALM))
        path = f"/v2/library/busybox/blobs/{digest}"
        first = app.handle(Request("GET", path))
        assert first.status == 401
        challenge = first.headers.get("WWW-Authenticate") or ""
        assert 'scope="repository:library/busybox:pull"' in challenge
        token = _token(
            server.handle(_get({"scope": "repository:library/busybox:pull"}))
        )
        headers = Headers([("Authorization", f"Bearer {token}")])
        second = app.handle(Request("GET", path, headers=headers))
        assert second.status == 200
        app.check()


def test_any_basic_auth_challenges_then_accepts_any_basic_credential() -> None:
    policy = AnyBasicAuth(realm="r")
    bare = Request(method="GET", path="/v2/")
    challenge = policy.authorize(bare, None)
    assert challenge is not None
    assert challenge.status == 401
    assert challenge.headers.get("WWW-Authenticate") == 'Basic realm="r"'
    basic = Request(
        method="GET", path="/v2/", headers=Headers([("Authorization", "Basic eDp5")])
    )
    assert policy.authorize(basic, None) is None
    bearer = Request(
        method="GET", path="/v2/", headers=Headers([("Authorization", "Bearer t")])
    )
    assert policy.authorize(bearer, None) is not None
