"""The AuthConfig vectors of ``fixtures/vectors/auth.json``, replayed over CRI.

Each vector states what a registry sees for a CRI AuthConfig (``wire``: Basic with a
user, or nothing). Here the AuthConfig goes to the target in a real PullImage against a
loopback registry that challenges with Basic and records what comes back; the vector's
registry host ``127.0.0.1:5000`` is replaced by that registry's address, in the host
and in ``server_address`` alike. Vectors for other hosts stay unit-level.

A Basic registry cannot tell every vector apart: user ``u:pa`` with password ``ss``
and user ``u`` with password ``pa:ss`` are the same header, and a user-less secret
never answers a Basic challenge. So the vectors are replayed a second time against a
Bearer registry whose token server records every token request's form (grant,
username, the field names; never a password or refresh token) and knows exactly the
vector's credential: its user table holds the vector's username and secret, its
refresh tokens the vector's user-less secret, so "authenticated" proves the secret
too. What a containerd runtime sends follows TOKEN-003 (``remotes/docker/auth/fetch.go``
``FetchTokenWithOAuth``): with a username a ``password`` grant, with only a secret a
``refresh_token`` grant, without a secret an anonymous GET. Other families are graded
on the vector's credential only (who the token server authenticated).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cri_conformance.catalog import family_of, fixtures_dir
from cri_conformance.scenario import Case
from cri_conformance.targets.base import TargetError
from registry_sim.auth import BasicAuth, TokenAuth
from registry_sim.sim import RegistrySim
from registry_sim.token_server import TokenRequest, TokenServer

VECTOR_HOST = "127.0.0.1:5000"
SERVICE = "vectors.token.test"
#: The user a vector's user-less secret (a refresh token) authenticates as.
REFRESH_USER = "refresh-holder"
#: OAuth form fields (https://distribution.github.io/distribution/spec/auth/oauth/)
#: containerd sends per grant (TOKEN-003: client_id, the grant, scope, service).
FORM_FIELDS = {
    "password": {"scope", "service", "client_id", "grant_type", "username", "password"},
    "refresh_token": {"scope", "service", "client_id", "grant_type", "refresh_token"},
}


def _vectors() -> list[Any]:
    path = Path(fixtures_dir()) / "vectors" / "auth.json"
    vectors = json.loads(path.read_text(encoding="utf-8"))
    return [
        pytest.param(v, id=v["id"], marks=pytest.mark.behavior(v["behavior"]))
        for v in vectors
        if v["input"]["host"] == VECTOR_HOST
    ]


def _substitute(value: Any, address: str) -> Any:
    if isinstance(value, str):
        return value.replace(VECTOR_HOST, address)
    if isinstance(value, dict):
        return {k: _substitute(v, address) for k, v in value.items()}
    return value


@pytest.mark.behavior("AUTH-001")
@pytest.mark.parametrize("vector", _vectors())
def test_auth_config_vector_reaches_the_registry_as_stated(
    case: Case, vector: dict[str, Any]
) -> None:
    """What the registry receives for an AuthConfig is what the vector says."""
    if vector.get("profile") not in (None, case.profile):
        pytest.skip(f"not applicable: a vector of the {vector['profile']} profile")
    registry = case.world.any_basic
    image = case.image()
    registry.push(image, f"{case.repo}:1")
    auth = _substitute(vector["input"]["auth"], registry.host_port)
    expect = vector["expect"]
    ref = case.ref("1", host=registry.host_port)
    try:
        case.pull(ref, auth=auth)
        pulled = True
    except TargetError:
        pulled = False
    users = [
        ex.auth[1] if ex.auth and ex.auth[0] == "basic" else None
        for ex in case.exchanges(host=registry.host_port)
    ]
    if expect["wire"] == "basic":
        assert pulled
        assert {u for u in users if u is not None} == {expect["username"]}
        _assert_secret_accepted(case, vector, expect["username"], expect["secret"])
    else:
        assert not pulled
        assert set(users) <= {None}


def _assert_secret_accepted(
    case: Case, vector: dict[str, Any], username: str, secret: str
) -> None:
    """The password on the wire is the vector's: a registry knowing only it admits the pull.

    The journal records who, never the password, so a second registry whose user
    table holds exactly the vector's credential decides. Secrets that are not plain
    printable ASCII (raw bytes from a decoded ``auth``) are left to the unit tests.
    """
    if not (secret.isascii() and secret.isprintable()):
        return
    strict = RegistrySim(auth=BasicAuth(users={username: secret}))
    strict.start()
    try:
        strict.push(case.image(salt="strict"), f"{case.repo}:1")
        auth = _substitute(vector["input"]["auth"], strict.host_port)
        case.pull(case.ref("1", host=strict.host_port), auth=auth)
    finally:
        strict.close()


# -- the same vectors against a token realm --------------------------------------
@contextlib.contextmanager
def _token_registry(
    case: Case, expect: dict[str, Any]
) -> Iterator[tuple[RegistrySim, TokenServer]]:
    """A loopback Bearer registry whose token server knows only the vector's credential.

    The token server has its own loopback port (a plain-http realm on loopback, as
    ``http://127.0.0.1:<port>/token``); anonymous clients get pull tokens.
    """
    ca = case.world.sim.ca
    assert ca is not None
    wire = expect.get("wire")
    users = {expect["username"]: expect["secret"]} if wire == "basic" else {}
    refresh = {expect["secret"]: REFRESH_USER} if wire == "bearer-secret" else {}
    server = TokenServer(
        signing=ca.signing_key(),
        users=users,
        identity_tokens=refresh,
        service=SERVICE,
    )
    realm = RegistrySim()
    realm.add_host("127.0.0.1", server)
    registry = RegistrySim(auth=TokenAuth(server, realm=f"{realm.url}/token"))
    try:
        realm.start()
        registry.start()
        yield registry, server
    finally:
        registry.close()
        realm.close()


def _form(requests: list[TokenRequest]) -> list[tuple[Any, ...]]:
    return [
        (r.method, r.grant_type, r.user, r.authenticated, r.status, sorted(r.fields))
        for r in requests
    ]


@pytest.mark.behavior("TOKEN-003")
@pytest.mark.parametrize("vector", _vectors())
def test_auth_config_vector_reaches_a_token_realm_as_stated(
    case: Case, vector: dict[str, Any]
) -> None:
    """The token server sees the vector's credential, split and granted as stated."""
    if vector.get("profile") not in (None, case.profile):
        pytest.skip(f"not applicable: a vector of the {vector['profile']} profile")
    expect = vector["expect"]
    error: TargetError | None = None
    with _token_registry(case, expect) as (registry, server):
        image = case.image()
        registry.push(image, f"{case.repo}:1")
        auth = _substitute(vector["input"]["auth"], registry.host_port)
        ref = case.ref("1", host=registry.host_port)
        try:
            pulled: str | None = case.pull(ref, auth=auth)
        except TargetError as exc:
            pulled, error = None, exc
        requests = server.requests
    form = _form(requests)
    if "error" in expect:
        # The malformed auth fails the pull before any token is asked for.
        assert pulled is None, f"pulled {pulled} with a malformed auth"
        assert form == []
        return
    assert pulled == image.config_digest, f"pull failed: {error}\n{form}"
    credentialed = [r for r in requests if r.user is not None or r.grant_type]
    if expect["wire"] == "none":
        assert credentialed == [], form
        assert {(r.method, r.user, r.authenticated) for r in requests} == {
            ("GET", None, False)
        }
        return
    user = expect["username"] if expect["wire"] == "basic" else None
    who = {(r.user, r.authenticated, r.status) for r in credentialed}
    assert who == {(user, True, 200)}, form
    if family_of(case.profile) != "containerd":
        return
    grant = "password" if expect["wire"] == "basic" else "refresh_token"
    assert {(r.method, r.grant_type) for r in requests} == {("POST", grant)}, form
    for r in requests:
        assert set(r.fields) == FORM_FIELDS[grant], form
        assert (r.client_id, r.service) == ("containerd-client", SERVICE)
        assert r.scopes == (f"repository:{case.repo}:pull",)
