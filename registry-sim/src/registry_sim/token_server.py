"""A token server (``/token``) speaking the Docker token protocol and OAuth2 POST.

GET (anonymous or Basic): https://distribution.github.io/distribution/spec/auth/token/
POST (``grant_type=password`` / ``refresh_token``):
https://distribution.github.io/distribution/spec/auth/oauth/

It is a plain ``handle(Request) -> Response`` (no socket); ``server.py`` routes the
realm host to it. Every request is recorded as a :class:`TokenRequest` — without
passwords or refresh tokens — for tests to assert on.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, parse_qsl

from registry_sim.tls import SigningKey
from registry_sim.tokens import (
    Access,
    Grants,
    Personality,
    grant,
    mint_token,
    personalities,
    verify_token,
)
from registry_sim.wire import Headers, Request, Response

__all__ = ["TokenRequest", "TokenServer", "basic_credentials"]

_FORM = "application/x-www-form-urlencoded"
_SECRET_FIELDS = ("password", "refresh_token")


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """``(user, password)`` from an ``Authorization: Basic`` header, else None."""
    value = request.headers.get("Authorization") or ""
    scheme, _, blob = value.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = (
            base64.b64decode(blob.strip(), validate=True).decode("utf-8").partition(":")
        )
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


@dataclass(frozen=True)
class TokenRequest:
    """One request the token server saw (secrets left out).

    ``scopes`` are the raw ``scope`` values in order (POST: the one form value);
    ``fields`` the query or form keys in the order received; ``user`` the Basic or
    form username (even when wrong); ``authenticated`` whether it checked out.
    """

    method: str
    path: str
    status: int
    grant_type: str | None
    user: str | None
    authenticated: bool
    scopes: tuple[str, ...]
    service: str | None
    client_id: str | None
    account: str | None
    offline: bool
    fields: tuple[str, ...]
    content_type: str | None
    user_agent: str | None


def _json_response(status: int, body: Mapping[str, Any]) -> Response:
    headers = Headers([("Content-Type", "application/json")])
    return Response(status, headers, json.dumps(body).encode())


class TokenServer:
    """Issues registry JWTs; see :data:`registry_sim.tokens.personalities`.

    Args:
        signing: key and x5c chain (``SimCA.signing_key()``).
        users: username → password.
        issuer: the ``iss`` claim (docker-registry's ``auth.token.issuer``).
        service: the registry's service name (``aud``; ``auth.token.service``).
        personality: a :class:`Personality` or the name of a built-in one.
        expires_in: token lifetime in seconds.
        grants: user → {repository glob: actions}; None = every user may pull and
            push everything.
        anonymous: repository glob → actions granted without credentials; ``{}``
            forbids anonymous pulls (the token is then issued with no access).
        identity_tokens: refresh/identity token → user, accepted by the
            ``refresh_token`` grant (besides the ones this server issued).
        path: the token endpoint path.
        clock: seconds since the epoch (injectable for expiry tests).
    """

    def __init__(
        self,
        *,
        signing: SigningKey,
        users: Mapping[str, str] | None = None,
        issuer: str = "registry-sim-token",
        service: str = "registry.test",
        personality: Personality | str = "standard",
        expires_in: int = 300,
        grants: Mapping[str, Grants] | None = None,
        anonymous: Grants | None = None,
        identity_tokens: Mapping[str, str] | None = None,
        path: str = "/token",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signing = signing
        self.users = dict(users or {})
        self.issuer, self.service, self.path = issuer, service, path
        self.personality = (
            personalities[personality] if isinstance(personality, str) else personality
        )
        self.expires_in = expires_in
        self.grants = grants
        self.anonymous: Grants = {"*": ("pull",)} if anonymous is None else anonymous
        self.clock = clock
        self._refresh: dict[str, str] = dict(identity_tokens or {})
        self._lock = threading.Lock()
        self._requests: list[TokenRequest] = []

    # -- the recorder ------------------------------------------------------------------

    @property
    def requests(self) -> list[TokenRequest]:
        """A snapshot of the recorded token requests, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forget recorded requests (issued refresh tokens stay valid)."""
        with self._lock:
            self._requests.clear()

    # -- policy ------------------------------------------------------------------------

    def check_password(self, user: str, password: str) -> bool:
        """Whether ``user`` exists with this password (constant-time compare)."""
        known = self.users.get(user)
        return known is not None and hmac.compare_digest(known, password)

    def access_for(self, user: str | None, scopes: list[str]) -> Access:
        """The ``access`` claim ``user`` (None = anonymous) gets for ``scopes``."""
        if user is None:
            return grant(scopes, self.anonymous)
        if self.grants is None:
            return grant(scopes, None, everything=True)
        return grant(scopes, self.grants.get(user, {}))

    def mint(self, user: str | None, access: Access) -> str:
        """Sign a token for ``user`` with ``access`` (also usable by tests)."""
        return mint_token(
            self.signing,
            issuer=self.issuer,
            subject=user or "",
            audience=self.service,
            access=access,
            now=self.clock(),
            expires_in=self.expires_in,
        )

    def verify(self, token: str, *, leeway: float = 0.0) -> dict[str, Any]:
        """Check a token this server issued (see :func:`tokens.verify_token`)."""
        return verify_token(
            token,
            self.signing,
            issuer=self.issuer,
            audience=self.service,
            now=self.clock(),
            leeway=leeway,
        )

    # -- the endpoint -----------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Answer one token request.

        Args:
            request: the HTTP request (body already de-chunked by the server).

        Returns:
            The token JSON, or a 4xx answer.
        """
        if request.path != self.path:
            return _json_response(404, {"error": "not_found"})
        if request.method == "GET":
            return self._get(request)
        if request.method == "POST":
            return self._post(request)
        response = _json_response(405, {"error": "method_not_allowed"})
        response.headers.add("Allow", "GET, POST")
        return response

    def _record(self, request: Request, status: int, **info: Any) -> None:
        entry = TokenRequest(
            method=request.method,
            path=request.path,
            status=status,
            grant_type=info.get("grant_type"),
            user=info.get("user"),
            authenticated=bool(info.get("authenticated")),
            scopes=tuple(info.get("scopes", ())),
            service=info.get("service"),
            client_id=info.get("client_id"),
            account=info.get("account"),
            offline=bool(info.get("offline")),
            fields=tuple(info.get("fields", ())),
            content_type=request.headers.get("Content-Type"),
            user_agent=request.headers.get("User-Agent"),
        )
        with self._lock:
            self._requests.append(entry)

    def _token_body(self, token: str, fields: frozenset[str]) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if "token" in fields:
            body["token"] = token
        if "access_token" in fields:
            body["access_token"] = "" if self.personality.empty_access_token else token
        if self.personality.expires_in == "int":
            body["expires_in"] = self.expires_in
        elif self.personality.expires_in == "string":
            body["expires_in"] = str(self.expires_in)  # a quirky server's string
        if self.personality.issued_at:
            issued = datetime.fromtimestamp(self.clock(), UTC)
            body["issued_at"] = issued.isoformat().replace("+00:00", "Z")
        return body

    def _get(self, request: Request) -> Response:
        query = request.query
        scopes = query.get("scope", [])
        service = request.query_value("service")
        info: dict[str, Any] = {
            "scopes": scopes,
            "service": service,
            "client_id": request.query_value("client_id"),
            "account": request.query_value("account"),
            "offline": request.query_value("offline_token") == "true",
            "fields": [k for k, _ in _pairs(request.query_string)],
        }
        creds = basic_credentials(request)
        user: str | None = None
        if creds is not None:
            info["user"] = creds[0]
            if not self.check_password(*creds):
                self._record(request, 401, **info)
                return _json_response(
                    401, {"details": "incorrect username or password"}
                )
            user = creds[0]
            info["authenticated"] = True
        if service and service != self.service:
            self._record(request, 400, **info)
            return _json_response(
                400, {"error": "invalid_request", "details": "service"}
            )
        token = self.mint(user, self.access_for(user, scopes))
        body = self._token_body(token, self.personality.get_fields)
        if info["offline"] and user is not None:
            body["refresh_token"] = self._new_refresh(user)
        self._record(request, 200, **info)
        return _json_response(200, body)

    def _new_refresh(self, user: str) -> str:
        value = secrets.token_urlsafe(24)
        with self._lock:
            self._refresh[value] = user
        return value

    def _post(self, request: Request) -> Response:
        form = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        first = {k: v[0] for k, v in form.items()}
        info: dict[str, Any] = {
            "grant_type": first.get("grant_type"),
            "user": first.get("username"),
            "scopes": form.get("scope", []),
            "service": first.get("service"),
            "client_id": first.get("client_id"),
            "offline": first.get("access_type") == "offline",
            "fields": [k for k, _ in _pairs(request.body.decode("utf-8", "replace"))],
        }
        status = self.personality.post_status
        if status is not None:  # this server has no OAuth2 endpoint (TOKEN-004)
            self._record(request, status, **info)
            return _json_response(status, {"error": "unsupported", "status": status})
        content_type = (request.headers.get("Content-Type") or "").lower()
        if not content_type.startswith(_FORM) or not first.get("client_id"):
            self._record(request, 400, **info)
            return _json_response(400, {"error": "invalid_request"})
        user = self._post_user(first)
        if user is None:
            self._record(
                request, 401 if info["grant_type"] == "password" else 400, **info
            )
            if info["grant_type"] == "password":
                return _json_response(401, {"error": "invalid_grant"})
            return _json_response(400, {"error": "invalid_grant"})
        info["authenticated"] = True
        scopes = first.get("scope", "").split()
        token = self.mint(user, self.access_for(user, scopes))
        body = self._token_body(token, self.personality.post_fields)
        body["scope"] = " ".join(scopes)
        if info["offline"]:
            body["refresh_token"] = (
                first["refresh_token"]
                if info["grant_type"] == "refresh_token"
                else self._new_refresh(user)
            )
        self._record(request, 200, **info)
        return _json_response(200, body)

    def _post_user(self, form: Mapping[str, str]) -> str | None:
        """The user a POST authenticates as, or None."""
        grant_type = form.get("grant_type")
        if grant_type == "password":
            user, password = form.get("username", ""), form.get("password", "")
            return user if self.check_password(user, password) else None
        if grant_type == "refresh_token":
            with self._lock:
                return self._refresh.get(form.get("refresh_token", ""))
        return None


def _pairs(text: str) -> list[tuple[str, str]]:
    """Key/value pairs in received order (parse_qs loses the order)."""
    return parse_qsl(text, keep_blank_values=True)
