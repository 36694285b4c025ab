"""CRI AuthConfig parsing and the seed's ParseAuth (behaviors.md §5, AUTH-001..005).

The tables are ``fixtures/vectors/auth.json``; each vector also says what a
registry sees (``wire``), which the conformance suite replays against a runtime.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from refpull.errors import InvalidAuth
from refpull.profiles import CONTAINERD_16, PROFILES, SEED, Profile
from refpull.settings.credentials import AuthConfig, Credentials, parse_auth

VECTORS = Path(__file__).resolve().parents[2] / "fixtures" / "vectors"
_AUTH: list[dict[str, Any]] = json.loads(
    (VECTORS / "auth.json").read_text(encoding="utf-8")
)
_BEHAVIORS = [f"AUTH-{n:03d}" for n in range(1, 6)]
_ERROR_KINDS = {
    "parse-server-address": "parse server address: ",
    "base64": "illegal base64 data at input byte ",
    "invalid-decoded-auth": "invalid decoded auth: ",
}


def _vectors(behavior: str) -> list[Any]:
    """One param per vector and profile; a ``profile`` key pins a single profile."""
    params = []
    for vector in _AUTH:
        if vector["behavior"] != behavior:
            continue
        names = [vector["profile"]] if "profile" in vector else list(PROFILES)
        for name in names:
            suffix = "" if "profile" in vector else f"-{name}"
            params.append(
                pytest.param(vector, PROFILES[name], id=vector["id"] + suffix)
            )
    return params


def _wire(creds: Credentials) -> str:
    """What a registry sees (AUTH-004/005): Basic needs both, a lone secret is a
    refresh token, anything else is anonymous."""
    if creds.username and creds.secret:
        return "basic"
    if creds.secret:
        return "bearer-secret"
    return "none"


def _check(vector: dict[str, Any], profile: Profile) -> None:
    data = vector["input"]
    auth = None if data["auth"] is None else AuthConfig.from_mapping(data["auth"])
    expect = vector["expect"]
    if "error" in expect:
        with pytest.raises(InvalidAuth) as info:
            parse_auth(auth, data["host"], profile=profile)
        assert info.value.reason == expect["reason"]
        assert info.value.reason.startswith(_ERROR_KINDS[expect["error"]])
        assert expect["wire"] == "none"
        return
    creds = parse_auth(auth, data["host"], profile=profile)
    assert (creds.username, creds.secret, _wire(creds)) == (
        expect["username"],
        expect["secret"],
        expect["wire"],
    )


def test_vectors_are_well_formed() -> None:
    ids = [vector["id"] for vector in _AUTH]
    assert len(ids) == len(set(ids))
    for vector in _AUTH:
        assert vector["behavior"] in _BEHAVIORS, vector["id"]
        assert vector["id"].startswith(vector["behavior"] + "-")
        assert 0 < len(vector["description"]) < 100
        assert vector["expect"]["wire"] in ("basic", "bearer-secret", "none")
        assert vector.get("profile", "seed") in PROFILES


@pytest.mark.behavior("AUTH-001")
@pytest.mark.parametrize(("vector", "profile"), _vectors("AUTH-001"))
def test_username_beats_identity_token_beats_auth_blob(
    vector: Any, profile: Profile
) -> None:
    _check(vector, profile)


@pytest.mark.behavior("AUTH-002")
@pytest.mark.parametrize(("vector", "profile"), _vectors("AUTH-002"))
def test_server_address_host_must_equal_challenging_host(
    vector: Any, profile: Profile
) -> None:
    _check(vector, profile)


@pytest.mark.behavior("AUTH-003")
@pytest.mark.parametrize(("vector", "profile"), _vectors("AUTH-003"))
def test_auth_blob_is_decoded_with_go_base64_quirks(
    vector: Any, profile: Profile
) -> None:
    _check(vector, profile)


@pytest.mark.behavior("AUTH-004")
@pytest.mark.parametrize(("vector", "profile"), _vectors("AUTH-004"))
def test_username_without_password_is_returned_as_is(
    vector: Any, profile: Profile
) -> None:
    _check(vector, profile)


@pytest.mark.behavior("AUTH-005")
@pytest.mark.parametrize(("vector", "profile"), _vectors("AUTH-005"))
def test_empty_username_with_secret_is_a_refresh_token(
    vector: Any, profile: Profile
) -> None:
    _check(vector, profile)


@pytest.mark.behavior("AUTH-003")
def test_invalid_decoded_auth_error_does_not_echo_the_secret() -> None:
    blob = base64.b64encode(b"TOPSECRETnocolon").decode()
    with pytest.raises(InvalidAuth) as info:
        parse_auth(AuthConfig(auth=blob), "h")
    for text in (str(info.value), info.value.reason, repr(info.value)):
        assert "TOPSECRET" not in text
        assert blob not in text


@pytest.mark.behavior("AUTH-003")
def test_decoded_bytes_that_are_not_utf8_survive_as_surrogate_escapes() -> None:
    blob = base64.b64encode(b"\xffu:p\xfe").decode()
    creds = parse_auth(AuthConfig(auth=blob), "h")
    assert creds.username.encode("utf-8", "surrogateescape") == b"\xffu"
    assert creds.secret.encode("utf-8", "surrogateescape") == b"p\xfe"


@pytest.mark.behavior("AUTH-003")
def test_non_ascii_blob_reports_the_byte_offset() -> None:
    # "é" is two bytes in Go's string; the offset counts bytes, not characters.
    with pytest.raises(InvalidAuth) as info:
        parse_auth(AuthConfig(auth="ab\u00e9cd"), "h")
    assert info.value.reason == "illegal base64 data at input byte 2"


# --- AuthConfig and Credentials values ------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            {
                "username": "u",
                "password": "p",
                "auth": "a",
                "server_address": "s",
                "identity_token": "i",
                "registry_token": "r",
            },
            AuthConfig(
                username="u",
                password="p",
                auth="a",
                server_address="s",
                identity_token="i",
                registry_token="r",
            ),
            id="proto-field-names",
        ),
        pytest.param(
            {"serverAddress": "s", "identityToken": "i", "registryToken": "r"},
            AuthConfig(server_address="s", identity_token="i", registry_token="r"),
            id="json-camel-case",
        ),
        pytest.param({"username": None}, AuthConfig(), id="null-is-unset"),
        pytest.param(
            {"serverAddress": "s", "server_address": "s"},
            AuthConfig(server_address="s"),
            id="both-spellings-agree",
        ),
        pytest.param({}, AuthConfig(), id="empty"),
    ],
)
def test_auth_config_from_mapping_accepts_cri_json(
    data: dict[str, object], expected: AuthConfig
) -> None:
    assert AuthConfig.from_mapping(data) == expected


@pytest.mark.parametrize(
    ("data", "error"),
    [
        pytest.param({"email": "e"}, ValueError, id="unknown-key"),
        pytest.param(
            {"serverAddress": "a", "server_address": "b"},
            ValueError,
            id="conflicting-spellings",
        ),
        pytest.param({"password": 1234}, TypeError, id="not-a-string"),
    ],
)
def test_auth_config_from_mapping_rejects_bad_json(
    data: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error) as info:
        AuthConfig.from_mapping(data)
    assert "1234" not in str(info.value)


def test_auth_config_repr_masks_secrets() -> None:
    config = AuthConfig(
        username="alice",
        password="pw-secret",
        auth="YXV0aC1zZWNyZXQ=",
        server_address="https://r",
        identity_token="id-secret",
        registry_token="rt-secret",
    )
    text = repr(config)
    assert "alice" in text
    assert "https://r" in text
    for secret in ("pw-secret", "YXV0aC1zZWNyZXQ=", "id-secret", "rt-secret"):
        assert secret not in text


def test_credentials_repr_masks_secret_and_bool_means_any_part() -> None:
    assert "s3cret" not in repr(Credentials("u", "s3cret"))
    assert not Credentials()
    assert Credentials("u", "")
    assert Credentials("", "t")


# --- properties ---------------------------------------------------------------

_profiles = st.sampled_from([SEED, CONTAINERD_16])


@pytest.mark.behavior("AUTH-001", "AUTH-004", "AUTH-005")
@given(
    username=st.text(),
    password=st.text(),
    identity_token=st.text(),
    registry_token=st.text(),
    profile=_profiles,
)
def test_parse_auth_never_raises_for_plain_fields(
    username: str,
    password: str,
    identity_token: str,
    registry_token: str,
    profile: Profile,
) -> None:
    config = AuthConfig(
        username=username,
        password=password,
        identity_token=identity_token,
        registry_token=registry_token,
    )
    creds = parse_auth(config, "registry.test:5000", profile=profile)
    if username:
        assert creds == Credentials(username, password)
    elif identity_token:
        assert creds == Credentials("", identity_token)
    else:
        assert not creds


@pytest.mark.behavior("AUTH-002")
@given(
    host=st.from_regex(r"[a-z0-9.-]{1,20}(?::[0-9]{1,5})?", fullmatch=True),
    scheme=st.sampled_from(["http", "https", "HTTPS", "dummy"]),
    path=st.from_regex(r"(?:/[a-z0-9]{0,5}){0,3}", fullmatch=True),
)
def test_server_address_with_scheme_matches_its_own_host(
    host: str, scheme: str, path: str
) -> None:
    config = AuthConfig(
        username="u", password="p", server_address=scheme + "://" + host + path
    )
    assert parse_auth(config, host) == Credentials("u", "p")
    assert not parse_auth(config, host + "0")


@pytest.mark.behavior("AUTH-003")
@given(user=st.binary(), password=st.binary())
def test_auth_blob_round_trips_with_nuls_trimmed_from_password(
    user: bytes, password: bytes
) -> None:
    assume(b":" not in user)
    blob = base64.b64encode(user + b":" + password).decode()
    creds = parse_auth(AuthConfig(auth=blob), "h")
    assert creds.username.encode("utf-8", "surrogateescape") == user
    assert creds.secret.encode("utf-8", "surrogateescape") == password.strip(b"\0")


@pytest.mark.behavior("AUTH-003")
@given(blob=st.text(min_size=1))
def test_auth_blob_errors_are_only_invalid_auth(blob: str) -> None:
    try:
        parse_auth(AuthConfig(auth=blob), "h")
    except InvalidAuth as exc:
        reason = exc.reason
    else:
        return
    assert reason.startswith(
        ("illegal base64 data at input byte ", "invalid decoded auth: ")
    )
