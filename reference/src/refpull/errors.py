"""refpull exceptions: one tree, every error carries data, none carries a secret.

* RefpullError                  (base; never raised directly)
  + InvalidReference            .reference, .reason           (REF-*)
  + InvalidAuth                 .reason                        (AUTH-003; the secret is never included)
  + ConfigError                 .key                           (CFG-*, TLS-001..003, HOST-005, EP-006/007)
  + PullError                   .reference                     (anything that fails a pull)
    + ResolveError                                             (RES-*)
      + NotFound                                               (RES-007: no host had the reference)
      + UnsupportedMediaType    .media_type                    (RES-004, PULL-008)
      + NoMatchingPlatform                                     (PULL-001)
      + ManifestTooLarge                                       (RES-008)
      + InvalidArgument                                        (RES-004: a root with no media type)
    + AuthError                                                (CHAL-*, TOKEN-*)
      + Unauthorized                                           (credentials rejected / missing)
      + TokenError                                             (token endpoint failures)
    + VerificationError                                        (FETCH-008, PULL-004/005)
      + DigestMismatch          .expected, .actual
      + SizeMismatch            .expected, .actual
      + DiffIDMismatch          .expected, .actual
    + RegistryError             .status, .errors[(code, message, detail)], .url
    + TransportError                                           (wraps httpx errors)
      + TLSError
    + Schema1Error                                             (S1-*)
    + UnpackError                                              (PULL-*; .path for unsafe entries)
      + UnsafePath              .path
  + StoreError                                                 (image metadata store)
    + AlreadyExists             .name
    + NotFoundInStore           .name

Foreign exceptions are wrapped at the boundary with ``raise X(...) from exc``. Messages keep
the seed's wording where the catalog records it, so a person comparing with containerd's
output recognises them, but no message ever contains a password, token or decoded auth blob.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "QUOTED_REFERENCE_MAX",
    "REDACTED",
    "AlreadyExists",
    "AuthError",
    "ConfigError",
    "DiffIDMismatch",
    "DigestMismatch",
    "InvalidArgument",
    "InvalidAuth",
    "InvalidReference",
    "ManifestTooLarge",
    "NoMatchingPlatform",
    "NotFound",
    "NotFoundInStore",
    "PullError",
    "RefpullError",
    "RegistryError",
    "ResolveError",
    "Schema1Error",
    "SizeMismatch",
    "StoreError",
    "TLSError",
    "TokenError",
    "TransportError",
    "Unauthorized",
    "UnpackError",
    "UnsafePath",
    "UnsupportedMediaType",
    "VerificationError",
    "clip_reference",
    "scrub_secrets",
]


#: Characters of a rejected reference an error quotes (the grammar's name limit + tag).
QUOTED_REFERENCE_MAX = 512


_AUTH_VALUE = re.compile(r"(?i)\b(basic|bearer)(\s+)[A-Za-z0-9+/=._~-]{4,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_SECRET_PARAM = re.compile(
    r"(?i)\b(access_token|refresh_token|id_token|token|password|client_secret"
    r"|signature|sig|x-amz-signature|x-amz-credential|x-amz-security-token"
    r"|x-goog-signature|x-goog-credential)=[^&\s\"']+"
)
REDACTED = "<redacted>"


def _auth_value(match: re.Match[str]) -> str:
    value = match.group(0)[len(match.group(1)) + len(match.group(2)) :]
    # A credential has digits, padding or mixed case; "basic authentication" has not.
    if not re.search(r"[0-9+/=]|[a-z][A-Z]|[A-Z][a-z]*[A-Z]", value):
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}{REDACTED}"


def scrub_secrets(
    text: str, secrets: Iterable[str] = (), *, patterns: bool = True
) -> str:
    """*text* with anything credential-shaped replaced by ``<redacted>`` (ERR-003).

    Server-supplied text (a reason phrase, an error body's message, a realm's answer)
    may reflect what the puller sent; it is scrubbed before refpull prints or returns
    it. Removed: ``Basic``/``Bearer`` values, JSON Web Tokens, secret-named query
    parameters, and every literal of *secrets* (credentials the caller knows).

    Args:
        text: the text to show.
        secrets: literal secrets to remove as well (those under 4 characters are
            left: they would redact ordinary words).
        patterns: also remove credential-shaped text (off for refpull's own
            messages, which quote no credential but may say "basic auth").

    Returns:
        The scrubbed text.
    """
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    if not patterns:
        return text
    text = _AUTH_VALUE.sub(_auth_value, text)
    text = _JWT.sub(REDACTED, text)
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}={REDACTED}", text)


def clip_reference(reference: str) -> str:
    """*reference* cut to :data:`QUOTED_REFERENCE_MAX` characters for an error message.

    Args:
        reference: what the caller asked for, possibly megabytes long (PULL-015).

    Returns:
        The reference, or its head followed by ``…(<n> characters)``.
    """
    if len(reference) <= QUOTED_REFERENCE_MAX:
        return reference
    return reference[:QUOTED_REFERENCE_MAX] + f"…({len(reference)} characters)"


class RefpullError(Exception):
    """Base of every refpull error."""


class InvalidReference(RefpullError):
    """An image reference is not valid under the docker reference grammar (REF-*)."""

    def __init__(self, reference: str, reason: str) -> None:
        self.reference = reference
        self.reason = reason
        # Deviation (PULL-015, security): containerd quotes the whole reference, so a
        # megabyte name makes a megabyte error (gRPC then fails with ResourceExhausted);
        # the reference quotes at most QUOTED_REFERENCE_MAX characters of it.
        shown = clip_reference(reference)
        super().__init__(f"failed to parse image reference {shown!r}: {reason}")


class InvalidAuth(RefpullError):
    """A CRI AuthConfig cannot be used (AUTH-003). The message never holds the secret."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ConfigError(RefpullError):
    """Invalid registry configuration; ``key`` names the offending setting when known."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        self.key = key
        super().__init__(message)


class PullError(RefpullError):
    """A pull failed. ``reference`` is the normalized reference when known."""

    def __init__(self, message: str, *, reference: str | None = None) -> None:
        self.reference = reference
        super().__init__(message)


class ResolveError(PullError):
    """A reference could not be resolved to a descriptor (RES-*)."""


class NotFound(ResolveError):
    """No host knew the reference (RES-007)."""


class UnsupportedMediaType(ResolveError):
    """A manifest or child has a media type the puller does not handle."""

    def __init__(self, message: str, *, media_type: str, reference: str | None = None):
        self.media_type = media_type
        super().__init__(message, reference=reference)


class NoMatchingPlatform(ResolveError):
    """No entry of an index matches the platform (PULL-001)."""


class ManifestTooLarge(ResolveError):
    """A manifest exceeds the resolver's size cap (RES-008)."""


class InvalidArgument(ResolveError):
    """Content containerd's image store refuses to record (gRPC InvalidArgument)."""


class AuthError(PullError):
    """Authentication with a registry or token server failed."""


class Unauthorized(AuthError):
    """The registry kept answering 401 (credentials missing or rejected)."""


class TokenError(AuthError):
    """The token server failed or answered something unusable."""


class VerificationError(PullError):
    """Content did not match what its descriptor promised."""

    def __init__(
        self, message: str, *, expected: str, actual: str, reference: str | None = None
    ) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(message, reference=reference)


class DigestMismatch(VerificationError):
    """The digest of fetched content differs from its descriptor's."""


class SizeMismatch(VerificationError):
    """The size of fetched content differs from its descriptor's."""


class DiffIDMismatch(VerificationError):
    """The uncompressed digest of a layer differs from the config's diff_id (PULL-005)."""


class RegistryError(PullError):
    """A registry answered with an unexpected status; ``errors`` holds its error body."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        url: str,
        errors: tuple[tuple[str, str, str], ...] = (),
        reference: str | None = None,
    ) -> None:
        self.status = status
        self.url = url
        self.errors = errors
        super().__init__(message, reference=reference)


class TransportError(PullError):
    """A connection-level failure (refused, reset, timeout)."""


class TLSError(TransportError):
    """A TLS handshake or verification failure."""


class Schema1Error(PullError):
    """A schema1 manifest could not be converted (S1-*)."""


class UnpackError(PullError):
    """A layer could not be applied to its snapshot."""


class UnsafePath(UnpackError):
    """A layer entry would write outside the snapshot root."""

    def __init__(self, message: str, *, path: str, reference: str | None = None):
        self.path = path
        super().__init__(message, reference=reference)


class StoreError(RefpullError):
    """Image metadata store errors."""

    def __init__(self, message: str, *, name: str) -> None:
        self.name = name
        super().__init__(message)


class AlreadyExists(StoreError):
    """``create`` of a name that exists."""


class NotFoundInStore(StoreError):
    """``get``/``update``/``delete`` of a name that does not exist."""
