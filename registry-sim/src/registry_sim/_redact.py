"""Credential redaction for the journal: no password or token is ever recorded."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode

__all__ = [
    "DROPPED_HEADERS",
    "SECRET_HEADERS",
    "Auth",
    "BearerDescriber",
    "classify_authorization",
    "redact_query",
]

BearerDescriber = Callable[[str], str]
Auth = tuple[str, str] | None

SECRET_HEADERS = frozenset({"authorization", "proxy-authorization"})
DROPPED_HEADERS = frozenset({"cookie", "x-registry-auth", "x-registry-token"})
_SECRET_QUERY = re.compile(r"pass|secret|token|auth|code|key", re.IGNORECASE)


def classify_authorization(
    value: str, bearer_describer: BearerDescriber | None = None
) -> tuple[str, Auth]:
    """Replace an ``Authorization`` value by a description that holds no secret.

    Args:
        value: the header value.
        bearer_describer: turns a bearer token into a description (``sub=u
            scope=repository:x:pull``); it must not return the token.

    Returns:
        ``(redacted header value, auth)`` with ``auth`` one of ``("basic", user)``,
        ``("bearer", description)``, ``(scheme, "<redacted>")``.
    """
    scheme, _, credentials = value.strip().partition(" ")
    kind = scheme.lower()
    if kind == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return "Basic <malformed>", ("basic", "<malformed>")
        user = decoded.split(":", 1)[0]
        return f"Basic user={user}", ("basic", user)
    if kind == "bearer":
        description = "<token>"
        if bearer_describer is not None:
            try:
                description = bearer_describer(credentials.strip())
            except Exception:
                description = "<undescribable token>"
            if credentials.strip() and credentials.strip() in description:
                description = "<token>"  # a describer must never echo the token
        return f"Bearer {description}", ("bearer", description)
    return f"{scheme} <redacted>", (kind, "<redacted>")


def redact_query(query: str) -> str:
    """The query string with credential-like parameter values replaced."""
    if not query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(_SECRET_QUERY.search(k) for k, _ in pairs):
        return query
    cleaned = [(k, "<redacted>" if _SECRET_QUERY.search(k) else v) for k, v in pairs]
    return urlencode(cleaned, safe="/:,")
