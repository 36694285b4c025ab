"""Auth policies for :class:`RegistryApp`: none, Basic, and bearer tokens.

Each policy answers ``authorize(request, scope)`` with ``None`` (go ahead) or the
401 to send, as distribution's access controllers do:
https://distribution.github.io/distribution/spec/auth/token/#how-to-authenticate
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from registry_sim.access import Scope
from registry_sim.token_server import TokenServer, basic_credentials
from registry_sim.tokens import TokenInvalid
from registry_sim.wire import Request, Response
from registry_sim.wire_errors import ErrorCode, error_response

__all__ = ["AnyBasicAuth", "BasicAuth", "NoAuth", "TokenAuth", "bearer_token"]


def bearer_token(request: Request) -> str | None:
    """The credential of an ``Authorization: Bearer`` header (may be ``""``)."""
    value = request.headers.get("Authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _quote(value: str) -> str:
    # RFC 7235 quoted-string: escape backslash and double quote
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unauthorized(
    scope: Scope | None, code: ErrorCode = ErrorCode.UNAUTHORIZED
) -> Response:
    detail = None
    if scope is not None:
        detail = [
            {
                "Type": scope.resource_type,
                "Class": "",
                "Name": scope.repository,
                "Action": a,
            }
            for a in scope.sorted_actions()
        ]
    return error_response(401, code, code.message, detail)


class AnyBasicAuth:
    """Challenge with Basic and accept whatever Basic credential comes back.

    For recording what a client sends (the journal classifies the user), not for
    checking passwords: replays of credential vectors use it.
    """

    def __init__(self, *, realm: str = "registry-sim") -> None:
        self.realm = realm

    def authorize(self, request: Request, scope: Scope | None) -> Response | None:
        """None for any ``Authorization: Basic …``, else a Basic 401 challenge."""
        value = request.headers.get("Authorization") or ""
        if value[:6].lower() == "basic ":
            return None
        response = _unauthorized(scope)
        response.headers.set("WWW-Authenticate", f"Basic realm={_quote(self.realm)}")
        return response


class NoAuth:
    """Everything is allowed."""

    def authorize(self, request: Request, scope: Scope | None) -> Response | None:
        """Always None."""
        return None


class BasicAuth:
    """HTTP Basic against a user table (distribution's ``htpasswd`` controller).

    Args:
        users: username → password.
        realm: the challenge's realm.
    """

    def __init__(
        self, users: Mapping[str, str], *, realm: str = "registry-sim"
    ) -> None:
        self.users = dict(users)
        self.realm = realm

    def check(self, request: Request) -> str | None:
        """The authenticated user of ``request``, or None."""
        creds = basic_credentials(request)
        if creds is None or creds[0] not in self.users:
            return None
        return creds[0] if hmac.compare_digest(self.users[creds[0]], creds[1]) else None

    def authorize(self, request: Request, scope: Scope | None) -> Response | None:
        """None for a valid Basic header, else 401 with a Basic challenge.

        Args:
            request: the request.
            scope: ignored (every user may do everything).

        Returns:
            None or the 401 response.
        """
        if self.check(request) is not None:
            return None
        response = _unauthorized(scope)
        response.headers.add("WWW-Authenticate", f"Basic realm={_quote(self.realm)}")
        return response


class TokenAuth:
    """Bearer-token auth (distribution's ``token`` access controller).

    Challenges carry ``realm``, ``service`` and the request's ``scope``; a presented
    token must be signed by ``token_server``, unexpired, for this service, and its
    ``access`` must cover the scope — else 401 with ``error="invalid_token"`` or
    ``error="insufficient_scope"``. The personality decides the challenge shape.

    Args:
        token_server: the issuer whose tokens are accepted.
        realm: the token endpoint URL put in challenges.
        service: the service name; default the token server's.
        basic_realm: realm of the extra Basic challenge (multiple-challenges).
        leeway: clock-skew allowance for ``exp``/``nbf`` (0: strict, so a
            1-second token really expires, behaviors.md TOKEN-006). Time is the
            token server's clock.
    """

    def __init__(
        self,
        token_server: TokenServer,
        *,
        realm: str,
        service: str | None = None,
        basic_realm: str = "registry-sim",
        leeway: float = 0.0,
    ) -> None:
        self.token_server = token_server
        self.realm = realm
        self.service = service or token_server.service
        self.basic_realm = basic_realm
        self.leeway = leeway

    @property
    def challenge_realm(self) -> str:
        """The realm as challenges state it (personality ``realm_host`` applied)."""
        host = self.token_server.personality.realm_host
        if host is None:
            return self.realm
        parts = urlsplit(self.realm)
        netloc = host if parts.port is None else f"{host}:{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def _bearer_challenge(self, scope: Scope | None, error: str | None) -> str:
        params = [
            f"realm={_quote(self.challenge_realm)}",
            f"service={_quote(self.service)}",
        ]
        if scope is not None:
            params.append(f"scope={_quote(str(scope))}")
        if error is not None:
            params.append(f"error={_quote(error)}")
        return "Bearer " + ",".join(params)

    def challenge(self, scope: Scope | None, error: str | None = None) -> Response:
        """The 401 for ``scope`` with the personality's WWW-Authenticate layout.

        Args:
            scope: what the request needs (None for the ping).
            error: the Bearer ``error`` parameter, if any.

        Returns:
            The 401 response.
        """
        response = _unauthorized(scope)
        bearer = self._bearer_challenge(scope, error)
        basic = f"Basic realm={_quote(self.basic_realm)}"
        layout = self.token_server.personality.challenges
        if layout == "basic-and-bearer":
            response.headers.add("WWW-Authenticate", basic)
            response.headers.add("WWW-Authenticate", bearer)
        elif layout == "bearer-basic-one-header":
            response.headers.add("WWW-Authenticate", f"{bearer}, {basic}")
        else:
            response.headers.add("WWW-Authenticate", bearer)
        return response

    def _covers(self, claims: Mapping[str, Any], scope: Scope) -> bool:
        granted: set[str] = set()
        for entry in claims.get("access") or []:
            if (
                isinstance(entry, dict)
                and entry.get("type") == scope.resource_type
                and entry.get("name") == scope.repository
            ):
                granted |= set(entry.get("actions") or [])
        return "*" in granted or scope.actions <= granted

    def _basic(self, creds: tuple[str, str], scope: Scope | None) -> Response | None:
        """The answer to Basic credentials where the personality offers Basic."""
        server = self.token_server
        if not server.check_password(*creds):
            return self.challenge(scope)
        if scope is None:
            return None
        claims = {"access": server.access_for(creds[0], [str(scope)])}
        return (
            None
            if self._covers(claims, scope)
            else self.challenge(scope, "insufficient_scope")
        )

    def authorize(self, request: Request, scope: Scope | None) -> Response | None:
        """None when the bearer token (or offered Basic) covers ``scope``, else a 401.

        Args:
            request: the request.
            scope: what it needs; None (the ping) needs only a valid token.

        Returns:
            None or the challenge.
        """
        offers_basic = self.token_server.personality.challenges != "bearer"
        creds = basic_credentials(request)
        if offers_basic and creds is not None:
            return self._basic(creds, scope)
        token = bearer_token(request)
        if token is None:
            return self.challenge(scope)
        try:
            claims = self.token_server.verify(token, leeway=self.leeway)
        except TokenInvalid:
            return self.challenge(scope, "invalid_token")
        if scope is not None and not self._covers(claims, scope):
            return self.challenge(scope, "insufficient_scope")
        return None
