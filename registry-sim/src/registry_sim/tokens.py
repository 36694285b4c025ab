"""Registry bearer tokens: JWT minting/checking, scopes, and token-server personalities.

The token format is the one distribution's ``registry/auth/token`` verifies: a JWS
compact serialization, ``alg`` ES256 or RS256, an ``x5c`` chain issued by the run's
CA, and claims ``iss``, ``sub``, ``aud``, ``exp``, ``nbf``, ``iat``, ``jti`` and
``access`` ([{type, name, actions}]).
https://distribution.github.io/distribution/spec/auth/jwt/
"""

from __future__ import annotations

import fnmatch
import json
import secrets
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from registry_sim import _jose
from registry_sim.tls import SigningKey

__all__ = [
    "Grants",
    "Personality",
    "TokenInvalid",
    "decode_unverified",
    "describe_bearer",
    "grant",
    "mint_token",
    "parse_scope",
    "personalities",
    "verify_token",
]

#: repository glob → actions (``*`` = every action).
Grants = Mapping[str, Collection[str]]
Access = list[dict[str, Any]]


@dataclass(frozen=True)
class Personality:
    """How a token server (and the registry's challenge) behaves.

    Args:
        name: the personality's name.
        post_status: answer every OAuth POST with this status (POST unsupported).
        get_fields: token fields in GET answers (``token``, ``access_token``).
        post_fields: token fields in POST answers.
        empty_access_token: ``access_token`` is present but ``""``.
        expires_in: ``"int"``, ``"string"`` (``"300"``) or ``"absent"``.
        issued_at: include ``issued_at``.
        realm_host: the challenge's realm host is replaced by this name (port kept).
        challenges: ``bearer``; ``basic-and-bearer`` (two headers, Basic first);
            ``bearer-basic-one-header`` (both challenges in one header value).
    """

    name: str
    post_status: int | None = None
    get_fields: frozenset[str] = frozenset({"token", "access_token"})
    post_fields: frozenset[str] = frozenset({"access_token"})
    empty_access_token: bool = False
    expires_in: Literal["int", "string", "absent"] = "int"
    issued_at: bool = True
    realm_host: str | None = None
    challenges: Literal["bearer", "basic-and-bearer", "bearer-basic-one-header"] = (
        "bearer"
    )


_BOTH = frozenset({"token", "access_token"})
_ACCESS = frozenset({"access_token"})
_TOKEN = frozenset({"token"})


def _personalities(*items: Personality) -> dict[str, Personality]:
    return {p.name: p for p in items}


#: Built-in personalities copying real token servers (behaviors.md TOKEN-004/005).
personalities: dict[str, Personality] = _personalities(
    # distribution / Docker Hub: GET answers token and access_token, POST access_token
    Personality("standard"),
    # servers without the OAuth2 POST endpoint (TOKEN-004 fallback statuses)
    Personality("post-404", post_status=404),
    Personality("post-405", post_status=405),
    Personality("post-401", post_status=401),
    Personality("post-400", post_status=400),  # ACR-like, containerd PR #6481
    Personality("access-token-only", get_fields=_ACCESS, post_fields=_ACCESS),
    Personality("token-only", get_fields=_TOKEN, post_fields=_TOKEN),
    Personality(
        "empty-access-token",
        get_fields=_BOTH,
        post_fields=_BOTH,
        empty_access_token=True,
    ),
    Personality("no-expires", expires_in="absent", issued_at=False),
    Personality("string-expires-in", expires_in="string"),
    Personality("realm-other-host", realm_host="auth.registry.test"),
    Personality("multiple-challenges", challenges="basic-and-bearer"),
    Personality("multiple-challenges-one-header", challenges="bearer-basic-one-header"),
)


class TokenInvalid(Exception):
    """A bearer token failed a check; ``reason`` says which (never the token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_scope(text: str) -> tuple[str, str, frozenset[str]] | None:
    """Split ``type:name:actions`` (the name may itself contain ``:``).

    https://distribution.github.io/distribution/spec/auth/scope/

    Args:
        text: one scope, e.g. ``repository:library/busybox:pull,push``.

    Returns:
        ``(type, name, actions)`` or None when malformed.
    """
    first, _, rest = text.partition(":")
    name, sep, actions = rest.rpartition(":")
    if not first or not sep or not name:
        return None
    resource_type = first.split("(", 1)[0]  # "repository(plugin)" carries a class
    return resource_type, name, frozenset(a for a in actions.split(",") if a)


def grant(
    requested: Iterable[str], grants: Grants | None, *, everything: bool = False
) -> Access:
    """The ``access`` claim for ``requested`` scopes under ``grants``.

    Each scope value may hold several space-separated scopes (behaviors.md
    TOKEN-001: the seed sends a challenge scope with spaces as one value).

    Args:
        requested: raw scope values.
        grants: repository glob → allowed actions; None = nothing.
        everything: allow every repository action (grants ignored).

    Returns:
        One entry per repository with a non-empty granted action list (sorted).
    """
    merged: dict[str, set[str]] = {}
    for value in requested:
        for item in value.split():
            parsed = parse_scope(item)
            if parsed is None or parsed[0] != "repository":
                continue
            _, name, actions = parsed
            allowed: set[str] = set(actions) if everything else set()
            for pattern, acts in (grants or {}).items():
                if not everything and fnmatch.fnmatchcase(name, pattern):
                    allowed |= set(actions) if "*" in acts else set(acts) & actions
            merged.setdefault(name, set()).update(allowed)
    return [
        {"type": "repository", "name": name, "actions": sorted(acts)}
        for name, acts in sorted(merged.items())
        if acts
    ]


def mint_token(
    signing: SigningKey,
    *,
    issuer: str,
    subject: str,
    audience: str,
    access: Access,
    now: float,
    expires_in: int,
) -> str:
    """Sign a registry JWT.

    Args:
        signing: the key and its x5c chain.
        issuer: ``iss``.
        subject: ``sub`` (``""`` for anonymous, as distribution does).
        audience: ``aud`` (the registry's service name).
        access: the ``access`` claim.
        now: the issue time (seconds since the epoch).
        expires_in: lifetime in seconds.

    Returns:
        The compact JWS.
    """
    header = {"typ": "JWT", "alg": signing.algorithm, "x5c": signing.x5c}
    issued = int(now)
    claims = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "exp": issued + expires_in,
        "nbf": issued,
        "iat": issued,
        "jti": secrets.token_hex(12),
        "access": access,
    }
    head = _jose.b64url_encode(json.dumps(header, separators=(",", ":")).encode())
    body = _jose.b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
    signature = _jose.sign(signing.key, f"{head}.{body}".encode(), signing.algorithm)
    return f"{head}.{body}.{_jose.b64url_encode(signature)}"


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a JWT, without checking anything.

    Raises:
        TokenInvalid: not three base64url JSON parts.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenInvalid("malformed token")
    try:
        header = json.loads(_jose.b64url_decode(parts[0]))
        claims = json.loads(_jose.b64url_decode(parts[1]))
    except (ValueError, UnicodeDecodeError):
        raise TokenInvalid("malformed token") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenInvalid("malformed token")
    return header, claims


def verify_token(
    token: str,
    signing: SigningKey,
    *,
    issuer: str,
    audience: str,
    now: float,
    leeway: float = 0.0,
) -> dict[str, Any]:
    """Check a bearer token the way distribution's token access controller does.

    Args:
        token: the compact JWS.
        signing: the token server's key (its public half verifies).
        issuer: the trusted ``iss``.
        audience: the accepted ``aud`` (the registry's service).
        now: the current time.
        leeway: clock-skew allowance in seconds for ``exp``/``nbf``.

    Returns:
        The claims.

    Raises:
        TokenInvalid: with the failed check as ``reason``.
    """
    header, claims = decode_unverified(token)
    if claims.get("iss") != issuer:
        raise TokenInvalid("untrusted issuer")
    aud = claims.get("aud")
    if aud != audience and not (isinstance(aud, list) and audience in aud):
        raise TokenInvalid("wrong audience")
    exp, nbf = claims.get("exp"), claims.get("nbf", 0)
    if not isinstance(exp, int) or now > exp + leeway:
        raise TokenInvalid("expired")
    if isinstance(nbf, int) and now < nbf - leeway:
        raise TokenInvalid("not yet valid")
    head, body, sig = token.split(".")
    try:
        raw_sig = _jose.b64url_decode(sig)
    except ValueError:
        raise TokenInvalid("malformed signature") from None
    public = signing.key.public_key()
    alg = str(header.get("alg", ""))
    if not _jose.verify(public, f"{head}.{body}".encode(), raw_sig, alg):
        raise TokenInvalid("bad signature")
    return claims


def describe_bearer(token: str) -> str:
    """A journal-safe description of a bearer token: who and what, never the token.

    Args:
        token: the bearer credential as sent.

    Returns:
        ``sub=u scope=repository:x:pull`` for our JWTs (``sub=-`` when anonymous,
        ``scope=-`` without access), ``empty`` or ``opaque len=N`` otherwise.
    """
    if not token:
        return "empty"
    try:
        _, claims = decode_unverified(token)
    except TokenInvalid:
        return f"opaque len={len(token)}"
    scopes = [
        f"{a.get('type')}:{a.get('name')}:{','.join(a.get('actions') or [])}"
        for a in claims.get("access") or []
        if isinstance(a, dict)
    ]
    return f"sub={claims.get('sub') or '-'} scope={' '.join(scopes) or '-'}"
