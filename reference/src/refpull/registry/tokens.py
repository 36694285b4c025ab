"""Bearer token requests and responses: pure builders, parsers and a small cache.

Sources: containerd@383f4a77 ``remotes/docker/authorizer.go`` (``doBearerAuth``,
``fetchTokenWithOAuth``, ``fetchToken``) and ``scope.go``; 1.6.20
``remotes/docker/auth/fetch.go`` and ``authorizer.go``; the token spec
https://github.com/distribution/distribution/blob/v2.8.3/docs/spec/auth/token.md .
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from refpull.errors import TokenError
from refpull.profiles import Profile
from refpull.registry.challenge import BearerOptions

__all__ = [
    "CLIENT_ID",
    "READ_BODY",
    "TokenCache",
    "TokenResponse",
    "TokenSlot",
    "anonymous_prefix",
    "oauth_post_request",
    "parse_token_response",
    "post_falls_back_to_get",
    "repository_scope",
    "token_get_request",
    "token_scopes",
    "token_user_agent",
]

# behaviors.md TOKEN-003: "client_id=containerd-client" (a TODO upstream, never configurable).
CLIENT_ID = "containerd-client"
# Request extension asking RegistryAuth to read the body before the flow sees it.
READ_BODY = "refpull.read_body"
# Go's net/http default, sent by the seed's token requests (behaviors.md TOKEN-008).
_GO_USER_AGENT = "Go-http-client/1.1"
_NO_TOKEN = "authorization server did not include a token in the response"
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_INT64 = 2**63


def repository_scope(path: str) -> str:
    """The context scope of a pull: ``repository:<repo path>:pull`` (TOKEN-001)."""
    return f"repository:{path}:pull"


def token_scopes(context: Sequence[str], challenge: Sequence[str]) -> tuple[str, ...]:
    """Sorted, textually de-duplicated union of context and challenge scopes (TOKEN-001)."""
    return tuple(sorted(set(context) | set(challenge)))


def token_user_agent(profile: Profile) -> str:
    """User-Agent of token requests: Go's default (seed) or containerd's (TOKEN-008)."""
    return (
        profile.user_agent if profile.token_requests_send_user_agent else _GO_USER_AGENT
    )


def _join_query(realm: httpx.URL, extra: list[tuple[str, str]]) -> httpx.URL:
    # Go url.Values.Encode: keys sorted, values kept in order per key (TOKEN-002).
    pairs = list(realm.params.multi_items()) + extra
    ordered = sorted(pairs, key=lambda kv: kv[0])
    return realm.copy_with(query=urlencode(ordered).encode("ascii") or None)


def token_get_request(
    options: BearerOptions,
    scopes: Sequence[str],
    *,
    username: str,
    secret: str,
    profile: Profile,
) -> httpx.Request:
    """Build the GET token request (anonymous flow, or the POST fallback, TOKEN-002/004).

    Args:
        options: realm and service from the challenge.
        scopes: the final scope list (:func:`token_scopes`).
        username: may be empty.
        secret: Basic auth ``username:secret`` is added only when non-empty.
        profile: selects the User-Agent.

    Returns:
        ``GET <realm>?…&scope=…&service=…``, the realm's own query kept.
    """
    extra = [("scope", s) for s in scopes]
    if options.service:
        extra.append(("service", options.service))
    headers = {"User-Agent": token_user_agent(profile)}
    if secret:
        raw = f"{username}:{secret}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
    url = _join_query(httpx.URL(options.realm), extra)
    return httpx.Request("GET", url, headers=headers, extensions={READ_BODY: True})


def oauth_post_request(
    options: BearerOptions,
    scopes: Sequence[str],
    *,
    username: str,
    secret: str,
    profile: Profile,
) -> httpx.Request:
    """Build the OAuth2 POST token request of the credentialed flow (TOKEN-003).

    Args:
        options: realm and service from the challenge.
        scopes: the final scope list, sent space-joined.
        username: empty selects ``grant_type=refresh_token`` (AUTH-005).
        secret: the password or refresh/identity token; must be non-empty.
        profile: 1.6 omits an empty ``scope``; selects the User-Agent.

    Returns:
        ``POST <realm>`` with a form body whose keys are sorted like Go's ``Encode``.
    """
    form: dict[str, str] = {"client_id": CLIENT_ID, "service": options.service}
    if scopes or not profile.post_omits_empty_scope:
        form["scope"] = " ".join(scopes)
    if username:
        form.update(grant_type="password", username=username, password=secret)
    else:
        form.update(grant_type="refresh_token", refresh_token=secret)
    body = urlencode(sorted(form.items())).encode("ascii")
    headers = {
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "User-Agent": token_user_agent(profile),
    }
    return httpx.Request(
        "POST",
        options.realm,
        headers=headers,
        content=body,
        extensions={READ_BODY: True},
    )


def post_falls_back_to_get(status: int, *, username: str, profile: Profile) -> bool:
    """Whether a POST answer makes the client retry with GET + Basic (TOKEN-004).

    404 (GCR), 401 (Artifactory), 405 only with a username, and in 1.6 also 400 (ACR).
    """
    if status in (404, 401):
        return True
    if status == 405:
        return bool(username)
    return status == 400 and profile.post_400_falls_back_to_get


def anonymous_prefix(secret: str) -> str:
    """The error prefix of a token fetch: oauth with a secret, anonymous without."""
    return (
        "failed to fetch oauth token" if secret else "failed to fetch anonymous token"
    )


@dataclass(frozen=True)
class TokenResponse:
    """A decoded token answer; ``token`` may be empty only for a seed POST (TOKEN-005)."""

    token: str
    expires_in: int | None = None
    issued_at: str | None = None


def _decode_error(detail: str) -> TokenError:
    return TokenError(f"unable to decode token response: {detail}")


def _first_json_value(body: bytes) -> Any:
    text = body.decode("utf-8", errors="replace").lstrip(" \t\r\n")
    if not text:
        raise _decode_error("EOF")

    def no_constants(name: str) -> Any:
        raise ValueError(name)

    decoder = json.JSONDecoder(object_pairs_hook=list, parse_constant=no_constants)
    try:
        # Trailing bytes after the first value are ignored, like Go's json.Decoder.
        value, _ = decoder.raw_decode(text)
    except ValueError as exc:
        raise _decode_error(f"invalid JSON ({exc.args[0]})") from None
    return value


def _check_field(key: str, value: Any) -> None:
    if value is None:
        return  # JSON null leaves a Go field untouched.
    if key in ("token", "access_token", "refresh_token", "scope"):
        if not isinstance(value, str):
            raise _decode_error(f"json: cannot unmarshal {key} into Go string")
    elif key == "expires_in":
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or abs(value) >= _INT64
        ):
            raise _decode_error("json: cannot unmarshal expires_in into Go int")
    elif key == "issued_at" and not (
        isinstance(value, str) and _RFC3339.fullmatch(value)
    ):
        raise _decode_error("parsing time issued_at as RFC 3339 failed")


def parse_token_response(
    body: bytes, *, method: str, profile: Profile
) -> TokenResponse:
    """Decode a token server answer like containerd's strict Go structs (TOKEN-005).

    Args:
        body: the response body.
        method: ``POST`` reads ``access_token`` only; ``GET`` prefers a non-empty
            ``access_token`` and falls back to ``token``.
        profile: whether an empty POST ``access_token`` is an error (1.6) or yields an
            empty token (seed bug, sent as ``Bearer ``).

    Returns:
        The token and the optional expiry fields.

    Raises:
        TokenError: an empty body, invalid JSON, a field of the wrong type (``expires_in``
            must be an integer, ``issued_at`` RFC 3339), or no token.
    """
    value = _first_json_value(body)
    fields: dict[str, Any] = {}
    if isinstance(value, list):
        for raw_key, item in value:
            # Go matches JSON keys case-insensitively; the last occurrence wins.
            key = raw_key.lower()
            _check_field(key, item)
            if item is not None:
                fields[key] = item
    elif value is not None:
        raise _decode_error("json: cannot unmarshal non-object into Go value")
    access = str(fields.get("access_token", ""))
    token = access if method == "POST" else access or str(fields.get("token", ""))
    if not token and (method != "POST" or profile.empty_access_token_is_error):
        raise TokenError(_NO_TOKEN)
    expires = fields.get("expires_in")
    return TokenResponse(
        token=token,
        expires_in=expires if isinstance(expires, int) else None,
        issued_at=fields.get("issued_at"),
    )


class TokenSlot:
    """One cached token fetch: its outcome, or a pending fetch others wait for."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self.token: str | None = None
        self.error: Exception | None = None
        #: ``time.monotonic()`` after which the token is stale (None: never).
        self.expires_at: float | None = None

    def finish(
        self,
        *,
        token: str | None = None,
        error: Exception | None = None,
        expires_in: int | None = None,
    ) -> None:
        """Record the outcome and wake every waiter.

        *expires_in* (seconds, > 0) makes the token stale that long after now, as
        containerd 1.7's ``getExpirationTime`` does (TOKEN-006).
        """
        self.token, self.error = token, error
        if expires_in is not None and expires_in > 0:
            self.expires_at = time.monotonic() + expires_in
        self._done.set()

    def expired(self) -> bool:
        """A finished fetch whose token outlived its ``expires_in``."""
        return (
            self._done.is_set()
            and self.expires_at is not None
            and time.monotonic() >= self.expires_at
        )

    def wait(self) -> str:
        """Block until the fetch finished; return the token or raise its error."""
        self._done.wait()
        if self.error is not None:
            raise self.error
        return self.token or ""


class TokenCache:
    """Tokens of one host handler keyed by the joined scope string (TOKEN-006).

    Tokens live as long as the handler (one host in one phase of one pull) unless
    their slot was given an ``expires_in`` (containerd 1.7+ honours it; 1.6 does not);
    a failed fetch is cached as well; concurrent requests share one in-flight fetch.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, TokenSlot] = {}

    def claim(self, scopes: Sequence[str]) -> tuple[TokenSlot, bool]:
        """Return the slot for *scopes* and whether the caller must fill it."""
        key = " ".join(scopes)
        with self._lock:
            slot = self._slots.get(key)
            if slot is not None and not slot.expired():
                return slot, False
            slot = self._slots[key] = TokenSlot()
            return slot, True
