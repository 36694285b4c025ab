"""A token response is read within a bound, never whole into memory (TOKEN-010)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from refpull.errors import TokenError
from refpull.limits import Limits
from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.registry.authflow import RegistryAuth

REG = "https://registry.example"
BEARER = f'Bearer realm="{REG}/token",service="reg",scope="repository:a:pull"'


class Endless(httpx.SyncByteStream):
    """A body that would never end; counts what was read from it."""

    def __init__(self) -> None:
        self.read = 0

    def __iter__(self) -> Iterator[bytes]:
        while True:
            self.read += 65536
            yield b'{"token":"' + b"a" * 65526


@pytest.mark.behavior("TOKEN-010")
@pytest.mark.parametrize("profile", [SEED, CONTAINERD_16], ids=["seed", "1.6"])
def test_an_oversized_token_response_fails_the_token_request(profile: Profile) -> None:
    auth = RegistryAuth(
        scheme="https",
        host="registry.example",
        repository="a",
        profile=profile,
        limits=Limits(max_token_bytes=200_000),
    )
    flow = auth.sync_auth_flow(httpx.Request("HEAD", f"{REG}/v2/a/manifests/t"))
    next(flow)
    token_request = flow.send(httpx.Response(401, headers={"WWW-Authenticate": BEARER}))
    body = Endless()
    with pytest.raises(TokenError, match=r"--max-token-bytes"):
        flow.send(httpx.Response(200, stream=body, request=token_request))
    assert body.read <= 200_000 + 65536


@pytest.mark.behavior("TOKEN-010")
def test_a_token_response_within_the_bound_is_used() -> None:
    auth = RegistryAuth(
        scheme="https",
        host="registry.example",
        repository="a",
        profile=CONTAINERD_16,
        limits=Limits(max_token_bytes=64),
    )
    flow = auth.sync_auth_flow(httpx.Request("HEAD", f"{REG}/v2/a/manifests/t"))
    next(flow)
    token_request = flow.send(httpx.Response(401, headers={"WWW-Authenticate": BEARER}))
    retried = flow.send(httpx.Response(200, json={"token": "t0k"}))
    assert token_request.url.path == "/token"
    assert retried.headers["Authorization"] == "Bearer t0k"
