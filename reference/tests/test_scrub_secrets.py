"""Server-supplied text never carries a secret into refpull's errors (ERR-003)."""

from __future__ import annotations

import base64

import httpx
import pytest

from refpull.errors import REDACTED, TokenError, scrub_secrets
from refpull.profiles import CONTAINERD_16
from refpull.registry.authflow import RegistryAuth
from refpull.registry.fetch import render_registry_errors
from refpull.registry.resolve import Reply, status_line

BASIC = base64.b64encode(b"alice:alice-secret").decode()
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl"


@pytest.mark.behavior("ERR-003")
@pytest.mark.parametrize(
    "reflected",
    [f"Basic {BASIC}", f"Bearer {JWT}", JWT, "https://x/b?X-Amz-Signature=0ff1ce"],
    ids=["basic", "bearer", "bare-jwt", "signed-url"],
)
def test_a_reason_phrase_reflecting_a_credential_is_scrubbed(reflected: str) -> None:
    line = status_line(Reply(403, f"Forbidden: you sent {reflected}"))
    assert line.startswith("403 Forbidden: you sent")
    assert REDACTED in line
    for part in (BASIC, JWT, "0ff1ce"):
        assert part not in line


@pytest.mark.behavior("ERR-003")
def test_ordinary_words_survive_the_scrub() -> None:
    text = "no basic auth credentials; bearer token required"
    assert scrub_secrets(text) == text


@pytest.mark.behavior("ERR-003")
def test_literal_secrets_are_removed_wherever_they_appear() -> None:
    text = "denied: user alice with password alice-secret"
    assert scrub_secrets(text, ["alice-secret"], patterns=False) == (
        f"denied: user alice with password {REDACTED}"
    )


@pytest.mark.behavior("ERR-003")
def test_a_token_realm_reflecting_the_header_in_its_reason_is_scrubbed() -> None:
    realm = (
        'Bearer realm="https://r.example/token",service="r",scope="repository:a:pull"'
    )
    auth = RegistryAuth(
        scheme="https", host="r.example", repository="a", profile=CONTAINERD_16
    )
    flow = auth.sync_auth_flow(
        httpx.Request("HEAD", "https://r.example/v2/a/manifests/t")
    )
    next(flow)
    flow.send(httpx.Response(401, headers={"WWW-Authenticate": realm}))
    reflected = httpx.Response(
        500, extensions={"reason_phrase": f"oops Bearer {JWT}".encode()}
    )
    with pytest.raises(TokenError) as info:
        flow.send(reflected)
    assert JWT not in str(info.value)


@pytest.mark.behavior("ERR-003")
def test_registry_error_bodies_are_rendered_then_scrubbed() -> None:
    body = (
        b'{"errors":[{"code":"DENIED","message":"got Basic ' + BASIC.encode() + b'"}]}'
    )
    rendered = render_registry_errors(body)
    assert rendered is not None
    assert BASIC not in scrub_secrets(rendered)
