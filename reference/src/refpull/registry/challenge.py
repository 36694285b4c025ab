"""401 challenges: ``WWW-Authenticate`` parsing and the authorizer's pure decisions.

Everything here is a pure function of header values, a profile and the attempt history;
:mod:`refpull.registry.authflow` drives it. Sources: containerd@383f4a77
``remotes/docker/auth.go`` (``parseAuthHeader``, ``parseValueAndParams``) and
``authorizer.go`` (``AddResponses``, ``invalidAuthorization``), ``resolver.go``
(``retryRequest``); 1.6.20 ``remotes/docker/auth/parse.go`` and ``auth/fetch.go``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

import httpx

from refpull.errors import AuthError, Unauthorized
from refpull.profiles import Profile

__all__ = [
    "LAST_HOST",
    "MAX_ATTEMPTS",
    "BearerOptions",
    "Challenge",
    "Retry",
    "bearer_options",
    "host_key",
    "parse_www_authenticate",
    "rejected_credentials",
    "retry_decision",
]

# behaviors.md CHAL-007; containerd resolver.go retryRequest: "if len(responses) > 5".
MAX_ATTEMPTS = 6

#: Request extension: True when the request goes to the last host tried (containerd's
#: ``doWithRetries(ctx, lastHost)``); server errors are retried only there (CHAL-007 2.3).
LAST_HOST = "refpull.last_host"

# v2.3.4 core/remotes/docker/resolver.go:844 retryRequest.
_SERVER_ERRORS = frozenset({500, 503, 504})

# RFC 2616 section 2.2: token = 1*<any CHAR except CTLs or separators>.
_SEPARATORS = frozenset('()<>@,;:\\"/[]?={} \t')
_TOKEN_CHARS = frozenset(chr(c) for c in range(33, 127)) - _SEPARATORS
_SPACE = " \t\r\n"

# behaviors.md CHAL-002: "only basic, digest, bearer are kept ... Bearer > Digest > Basic".
_SCHEME_RANK = {"bearer": 0, "digest": 1, "basic": 2}


@dataclass(frozen=True)
class Challenge:
    """One authentication challenge: a lower-case scheme and lower-case parameter names."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        """Return the parameter *name* (already lower-case), or None when absent."""
        return self.params.get(name)


def _token(s: str) -> tuple[str, str]:
    i = 0
    while i < len(s) and s[i] in _TOKEN_CHARS:
        i += 1
    return s[:i], s[i:]


def _quoted(s: str) -> tuple[str, str] | None:
    """Parse a quoted-string after its opening quote; None when it never ends."""
    out: list[str] = []
    escape = False
    for i, ch in enumerate(s):
        if escape:
            out.append(ch)
            escape = False
        elif ch == "\\":
            escape = True
        elif ch == '"':
            return "".join(out), s[i + 1 :]
        else:
            out.append(ch)
    return None


def _parse_one(value: str, profile: Profile) -> Challenge | None:
    scheme, rest = _token(value)
    if not scheme:
        return None
    params: dict[str, str] = {}
    while True:
        key, rest = _token(rest.lstrip(_SPACE))
        # behaviors.md CHAL-002: "Service = reg" (space before "=") ends parsing.
        if not key or not rest.startswith("="):
            break
        rest = rest[1:]
        if rest.startswith('"'):
            quoted = _quoted(rest[1:])
            # An unterminated quote: the seed drops the param, 1.6 keeps it as "".
            pvalue, rest = quoted if quoted is not None else ("", "")
        else:
            # Unquoted values are tokens, so "realm=https://t/token" is cut at ":".
            pvalue, rest = _token(rest)
        # behaviors.md CHAL-002 (seed bug, fixed by containerd PR #7131 in 1.6.7):
        # an empty value stops parsing and drops every later parameter.
        if not pvalue and profile.empty_quoted_param_truncates_challenge:
            break
        params[key.lower()] = pvalue
        rest = rest.lstrip(_SPACE)
        # A second challenge inside one header value is never reached (CHAL-002).
        if not rest.startswith(","):
            break
        rest = rest[1:]
    return Challenge(scheme=scheme.lower(), params=params)


def parse_www_authenticate(values: Sequence[str], profile: Profile) -> list[Challenge]:
    """Parse every ``WWW-Authenticate`` header value the way containerd does.

    Args:
        values: all ``WWW-Authenticate`` header values of one response, in order.
        profile: decides how an empty quoted parameter is treated (CHAL-002).

    Returns:
        The ``basic``, ``digest`` and ``bearer`` challenges, stably sorted Bearer first,
        then Digest, then Basic; other schemes (``Negotiate`` …) are dropped.
    """
    found = [c for v in values if (c := _parse_one(v, profile)) is not None]
    kept = [c for c in found if c.scheme in _SCHEME_RANK]
    return sorted(kept, key=lambda c: _SCHEME_RANK[c.scheme])


@dataclass(frozen=True)
class BearerOptions:
    """What a Bearer challenge contributes to token requests (containerd tokenOptions)."""

    realm: str
    service: str
    scopes: tuple[str, ...]


def _realm_problem(realm: str) -> str | None:
    """Mirror the few inputs Go's ``url.Parse`` rejects."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in realm):
        return "net/url: invalid control character in URL"
    if realm.startswith(":"):
        return "missing protocol scheme"
    for i, ch in enumerate(realm):
        if ch == "%":
            hexpart = realm[i + 1 : i + 3]
            if len(hexpart) != 2 or any(
                c not in "0123456789abcdefABCDEF" for c in hexpart
            ):
                return f"invalid URL escape {realm[i : i + 3]!r}"
    return None


def bearer_options(challenge: Challenge, profile: Profile) -> BearerOptions:
    """Check a Bearer challenge and extract realm, service and scopes (CHAL-003).

    Args:
        challenge: a challenge whose scheme is ``bearer``.
        profile: the seed requires ``scope``; 1.6 makes it optional and splits it on
            spaces (containerd PRs #3889 and #6165).

    Returns:
        The token options; ``scopes`` holds the challenge's own scopes only.

    Raises:
        AuthError: no realm, an unparseable realm, or (seed) no scope.
    """
    realm = challenge.get("realm")
    if realm is None:
        # behaviors.md CHAL-003; containerd authorizer.go generateTokenOptions.
        raise AuthError("no realm specified for token auth challenge")
    problem = _realm_problem(realm)
    if problem is not None:
        raise AuthError(f"invalid token auth challenge realm: {problem}")
    service = challenge.get("service") or ""
    scope = challenge.get("scope")
    if scope is None:
        if not profile.challenge_scope_optional:
            raise AuthError("no scope specified for token auth challenge")
        return BearerOptions(realm=realm, service=service, scopes=())
    if profile.challenge_scope_optional:
        # behaviors.md TOKEN-001 (1.6): Go's strings.Split(scope, " "), empties included.
        return BearerOptions(
            realm=realm, service=service, scopes=tuple(scope.split(" "))
        )
    # Seed: a space-separated scope stays one element (TOKEN-001).
    return BearerOptions(realm=realm, service=service, scopes=(scope,))


def rejected_credentials(
    challenge: Challenge, attempts: Sequence[tuple[str, str]]
) -> Unauthorized | None:
    """Detect a registry that rejected the credentials it was just given (CHAL-005).

    Args:
        challenge: the Bearer challenge of the latest 401.
        attempts: ``(method, url)`` of every attempt of this logical request, oldest
            first, the latest included.

    Returns:
        An :class:`Unauthorized` carrying containerd's message when the challenge has an
        ``error`` parameter and the latest attempt repeated the one before it exactly;
        otherwise None (a first ``error=`` challenge is not a rejection).
    """
    message = challenge.get("error")
    if not message or len(attempts) < 2 or attempts[-1] != attempts[-2]:
        return None
    # containerd resolver.go: "pull access denied, ..." wraps ErrInvalidAuthorization.
    return Unauthorized(
        "pull access denied, repository does not exist or may require authorization: "
        f"server message: {message}: authorization failed"
    )


class Retry(Enum):
    """What the retry loop does with a response (CHAL-007, RES-009)."""

    STOP = "stop"
    AUTHENTICATE = "authenticate"
    AS_GET = "as-get"
    AGAIN = "again"


def retry_decision(
    status: int,
    method: str,
    path: str,
    attempts: int,
    budget: int = MAX_ATTEMPTS,
    *,
    previous: int | None = None,
    server_errors_on_last_host: bool = False,
) -> Retry:
    """Decide whether one logical request is attempted again.

    Args:
        status: the latest response status.
        method: the latest request method.
        path: the latest request path.
        attempts: how many attempts were made so far, the latest included.
        budget: attempts allowed in all (6; containerd 2.3: 5).
        previous: the status of the attempt before the latest one, if any.
        server_errors_on_last_host: the request goes to the last host and the profile
            retries server errors there (``server_errors_retried_on_last_host``).

    Returns:
        ``STOP`` when the budget of :data:`MAX_ATTEMPTS` is spent or the status is not
        retried (5xx included); ``AUTHENTICATE`` on 401 (retried only if a challenge is
        accepted); ``AS_GET`` on 405 for ``HEAD …/manifests/…``; ``AGAIN`` on 408/429,
        immediately and without honouring ``Retry-After`` (containerd behaviour).
    """
    if attempts >= budget:
        return Retry.STOP
    if status == 401:
        return Retry.AUTHENTICATE
    if status == 405 and method == "HEAD" and "/manifests/" in path:
        return Retry.AS_GET  # behaviors.md RES-009
    if status in (408, 429):
        return Retry.AGAIN
    if server_errors_on_last_host and status in _SERVER_ERRORS and previous != status:
        # CHAL-007 Δ2.3: "Do not retry if the same error was seen in the last request",
        # "Only retry if this is the last host that will be attempted" (resolver.go).
        return Retry.AGAIN
    return Retry.STOP


def host_key(url: httpx.URL) -> str:
    """The ``host[:port]`` a token or Basic handler is bound to (CHAL-008).

    httpx drops a port equal to the scheme's default, so ``https://r:443`` and
    ``https://r`` share one key.
    """
    return url.host if url.port is None else f"{url.host}:{url.port}"
