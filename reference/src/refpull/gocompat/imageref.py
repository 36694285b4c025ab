"""Image references: ``ParseDockerRef`` normalization and the resolver's host split.

``parse_docker_ref`` reproduces docker/distribution@0d3efadf ``ParseDockerRef``
(containerd 1.6.20 ``reference/docker`` runs the same algorithm with the same
messages; 1.7+ vendor github.com/distribution/reference v0.6.0, whose two
differences are keyword switches), step by step:

1. a bare 64-hex string is refused (REF-006);
2. ``splitDockerDomain`` picks the domain by the heuristic of REF-002 (from 1.7 an
   upper-case first component is a domain too), maps
   ``index.docker.io`` to ``docker.io`` and adds ``library/`` (REF-001);
3. the remote name up to its first ``:`` must be lower case (REF-005);
4. ``Parse`` matches the grammar of :mod:`refpull.gocompat._grammar` (REF-007, REF-008,
   REF-011), limits the name to 255 characters (REF-009) and validates the digest
   as go-digest does (REF-010);
5. a tag next to a digest is dropped (REF-004), ``latest`` added when neither is
   present (REF-003).

``split_registry_host`` is containerd's ``reference.Parse`` plus the resolver's
``base``: the host the endpoints are chosen for and the repository path used in
request URLs and token scopes (REF-013).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from refpull.errors import InvalidReference
from refpull.gocompat import _grammar, gourl
from refpull.profiles import Profile

__all__ = [
    "ImageRef",
    "RepoLocation",
    "parse_docker_ref",
    "parse_for_profile",
    "parse_normalized_named",
    "split_registry_host",
]

# distribution/reference normalize.go constants.
_DEFAULT_DOMAIN = "docker.io"
_LEGACY_DEFAULT_DOMAIN = "index.docker.io"
_OFFICIAL_REPO_NAME = "library"
_DEFAULT_TAG = "latest"

# distribution/reference errors.go texts (behaviors.md §1).
_ERR_FORMAT = "invalid reference format"
_ERR_UPPERCASE = "invalid reference format: repository name must be lowercase"
# distribution/reference v0.6.0 normalize.go ParseNormalizedNamed (containerd 1.7+).
_ERR_UPPERCASE_QUOTED = (
    "invalid reference format: repository name ({}) must be lowercase"
)
_ERR_NAME_EMPTY = "repository name must have at least one component"
_ERR_NAME_TOO_LONG = (
    f"repository name must not be more than {_grammar.NAME_TOTAL_LENGTH_MAX} characters"
)
# go-digest errors.
_ERR_DIGEST_FORMAT = "invalid checksum digest format"
_ERR_DIGEST_UNSUPPORTED = "unsupported digest algorithm"
_ERR_DIGEST_LENGTH = "invalid checksum digest length"

# go-digest algorithms that are registered *and* linked into containerd, with the
# length of their hex encoding (behaviors.md REF-010).
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}

_REFERENCE_RE = re.compile(_grammar.REFERENCE)
_ANCHORED_NAME_RE = re.compile(_grammar.ANCHORED_NAME)
_IDENTIFIER_RE = re.compile(_grammar.IDENTIFIER)
_GO_DIGEST_RE = re.compile(_grammar.GO_DIGEST)
_LOWER_HEX_RE = re.compile(r"[a-f0-9]*")
_OBJECT_START_RE = re.compile(r"[:@]")


@dataclass(frozen=True)
class ImageRef:
    """A parsed docker reference. ``str(ref)`` is the normalized reference.

    Build one with :func:`parse_docker_ref`; the constructor does not validate.

    Attributes:
        domain: the registry domain as written (``docker.io``, ``localhost:5000``,
            ``FOO.io:5000``), or ``""`` when the first component only *looked* like
            a domain (``foo_bar.com/x``, REF-011).
        path: the repository path (``library/busybox``).
        tag: the tag, ``None`` for digest references.
        digest: ``algorithm:hex``, or ``None``.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``domain/path``, or just ``path`` when there is no domain."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def familiar(self) -> str:
        """The short form docker prints (``busybox:latest`` for Docker Hub library)."""
        name = self.name
        if self.domain == _DEFAULT_DOMAIN:
            name = self.path
            first, slash, rest = name.partition("/")
            if first == _OFFICIAL_REPO_NAME and slash and "/" not in rest:
                name = rest
        return name + self._suffix()

    def _suffix(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return tag + digest

    def __str__(self) -> str:
        return self.name + self._suffix()


@dataclass(frozen=True)
class RepoLocation:
    """Where the resolver sends requests for a reference (REF-013).

    Attributes:
        host: the registry host the endpoint list is built for (``docker.io``).
        repository: the repository path in ``/v2/<repository>/…`` and in token
            scopes (``library/busybox``).
        object: the tag (``latest``) or ``@`` + digest (``@sha256:…``).
    """

    host: str
    repository: str
    object: str


class _Invalid(Exception):
    """Internal: carries a Go error text up to :func:`parse_docker_ref`."""


def parse_docker_ref(
    ref: str,
    *,
    limit_path_only: bool = False,
    upper_first_is_domain: bool = False,
    quote_uppercase_name: bool = False,
) -> ImageRef:
    """Normalize *ref* exactly as the CRI plugin does before pulling.

    Accepted forms and their normalization:

    * ``busybox`` → ``docker.io/library/busybox:latest``
    * ``index.docker.io/foo/bar`` → ``docker.io/foo/bar:latest``
    * ``localhost:5000/a:v1@sha256:<hex>`` → ``localhost:5000/a@sha256:<hex>``
    * ``sha256:<hex>`` → ``docker.io/library/sha256:<hex>`` (repo ``sha256``)

    Args:
        ref: the image reference from ``PullImageRequest.image.image``.
        limit_path_only: count only the repository path against the 255-character
            limit (REF-009, profile ``name_limit_counts_path_only``).
        upper_first_is_domain: read a first component with an upper-case letter
            as a domain (REF-002, profile ``upper_case_first_component_is_domain``).
        quote_uppercase_name: the lowercase error names the remote name it refused
            (REF-005, profile ``uppercase_error_quotes_remote_name``).

    Returns:
        The normalized reference, with a tag or a digest but never both.

    Raises:
        InvalidReference: ``.reason`` holds distribution's error text, e.g.
            ``invalid reference format``, ``invalid reference format: repository
            name must be lowercase``, ``repository name must not be more than 255
            characters``, ``invalid checksum digest format``, ``unsupported digest
            algorithm``, ``invalid checksum digest length``.
    """
    try:
        named = _parse_normalized_named(
            ref, limit_path_only, upper_first_is_domain, quote_uppercase_name
        )
    except _Invalid as exc:
        raise InvalidReference(ref, str(exc)) from None
    if named.digest is not None:
        # behaviors.md REF-004: "the reference is both tagged and digested, only
        # return digested" (distribution ParseDockerRef).
        return ImageRef(named.domain, named.path, None, named.digest)
    if named.tag is None:
        # behaviors.md REF-003; distribution TagNameOnly.
        return ImageRef(named.domain, named.path, _DEFAULT_TAG, None)
    return named


def _switches(profile: Profile | None) -> tuple[bool, bool, bool]:
    """The grammar switches of *profile* (REF-009, REF-002, REF-005); 1.6's for None."""
    if profile is None:
        return False, False, False
    return (
        profile.name_limit_counts_path_only,
        profile.upper_case_first_component_is_domain,
        profile.uppercase_error_quotes_remote_name,
    )


def parse_for_profile(ref: str, profile: Profile) -> ImageRef:
    """:func:`parse_docker_ref` with the switches of *profile* (REF-002/005/009)."""
    limit, upper, quote = _switches(profile)
    return parse_docker_ref(
        ref,
        limit_path_only=limit,
        upper_first_is_domain=upper,
        quote_uppercase_name=quote,
    )


def parse_normalized_named(text: str, profile: Profile | None = None) -> ImageRef:
    """distribution ``ParseNormalizedNamed`` in *profile*'s grammar (1.6's for None).

    Unlike :func:`parse_docker_ref` it keeps both tag and digest and adds no
    ``latest``; its errors are distribution's, not :class:`InvalidReference`.
    """
    return _parse_normalized_named(text, *_switches(profile))


def _parse_normalized_named(
    text: str,
    limit_path_only: bool = False,
    upper_first_is_domain: bool = False,
    quote_uppercase_name: bool = False,
) -> ImageRef:
    # behaviors.md REF-006; distribution ParseNormalizedNamed anchoredIdentifierRegexp.
    if _IDENTIFIER_RE.fullmatch(text):
        raise _Invalid(
            f"invalid repository name ({text}), "
            "cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_docker_domain(text, upper_first_is_domain)
    # behaviors.md REF-005: only the part before the first ":" is checked, so an
    # upper-case digest algorithm without a tag fails here, not in go-digest.
    remote_name = remainder.partition(":")[0]
    if remote_name.lower() != remote_name:
        if quote_uppercase_name:
            raise _Invalid(_ERR_UPPERCASE_QUOTED.format(remote_name))
        raise _Invalid(_ERR_UPPERCASE)
    return _parse(f"{domain}/{remainder}", limit_path_only)


def _split_docker_domain(
    name: str, upper_first_is_domain: bool = False
) -> tuple[str, str]:
    """distribution ``splitDockerDomain`` (behaviors.md REF-001, REF-002)."""
    first, slash, rest = name.partition("/")
    # A domain contains "." or ":" or is exactly "localhost" (case-sensitive).
    if slash and (any(c in first for c in ".:") or first == "localhost"):
        domain, remainder = first, rest
    elif slash and upper_first_is_domain and first.lower() != first:
        # distribution/reference v0.6.0 (containerd 1.7+): "Uppercase namespaces are
        # not allowed", so an upper-case first component is taken as a domain.
        domain, remainder = first, rest
    else:
        domain, remainder = _DEFAULT_DOMAIN, name
    if domain == _LEGACY_DEFAULT_DOMAIN:
        domain = _DEFAULT_DOMAIN
    if domain == _DEFAULT_DOMAIN and "/" not in remainder:
        remainder = f"{_OFFICIAL_REPO_NAME}/{remainder}"
    return domain, remainder


def _parse(text: str, limit_path_only: bool = False) -> ImageRef:
    """distribution ``Parse`` for a string that already carries a domain."""
    match = _REFERENCE_RE.fullmatch(text)
    if match is None:
        if text == "":
            raise _Invalid(_ERR_NAME_EMPTY)
        if _REFERENCE_RE.fullmatch(text.lower()):
            raise _Invalid(_ERR_UPPERCASE)
        raise _Invalid(_ERR_FORMAT)
    name, tag, digest = match.group(1, 2, 3)
    # behaviors.md REF-009: counted on the normalized name, domain included
    # (containerd 1.7+: github.com/distribution/reference counts only the path).
    if not limit_path_only and len(name) > _grammar.NAME_TOTAL_LENGTH_MAX:
        raise _Invalid(_ERR_NAME_TOO_LONG)
    name_match = _ANCHORED_NAME_RE.fullmatch(name)
    if name_match is None:  # unreachable: name matched NAME, kept as Parse has it
        domain, path = "", name
    else:
        domain, path = name_match.group(1) or "", name_match.group(2)
    if limit_path_only and len(path) > _grammar.NAME_TOTAL_LENGTH_MAX:
        raise _Invalid(_ERR_NAME_TOO_LONG)
    if digest is not None:
        _validate_digest(digest)
    return ImageRef(domain, path, tag, digest)


def _validate_digest(digest: str) -> None:
    """go-digest ``Digest.Validate`` (behaviors.md REF-010)."""
    colon = digest.find(":")
    if colon <= 0 or colon + 1 == len(digest):
        raise _Invalid(_ERR_DIGEST_FORMAT)
    algorithm, encoded = digest[:colon], digest[colon + 1 :]
    hex_length = _DIGEST_HEX_LENGTHS.get(algorithm)
    if hex_length is None:
        if not _GO_DIGEST_RE.fullmatch(digest):
            raise _Invalid(_ERR_DIGEST_FORMAT)
        raise _Invalid(_ERR_DIGEST_UNSUPPORTED)
    if len(encoded) != hex_length:
        raise _Invalid(_ERR_DIGEST_LENGTH)
    if not _LOWER_HEX_RE.fullmatch(encoded):
        raise _Invalid(_ERR_DIGEST_FORMAT)


def split_registry_host(ref: ImageRef | str) -> RepoLocation:
    """Split a normalized reference into registry host, repository and object.

    This is containerd's ``reference.Parse`` (``url.Parse("dummy://" + ref)``) plus
    the resolver's ``base`` (behaviors.md REF-013):

    * ``docker.io/library/busybox:latest`` → ``docker.io``, ``library/busybox``,
      ``latest``
    * ``localhost:5000/a@sha256:<hex>`` → ``localhost:5000``, ``a``,
      ``@sha256:<hex>``
    * ``foo_bar.com/x:latest`` → ``foo_bar.com``, ``x``, ``latest`` (the host that
      :func:`parse_docker_ref` did not call a domain, REF-011)

    Args:
        ref: a reference from :func:`parse_docker_ref`, or its string form.

    Returns:
        The host, repository path and object.

    Raises:
        InvalidReference: ``invalid reference`` (contains ``://``), ``hostname
            required``, or a Go ``url.Parse`` error.
    """
    text = str(ref)
    # Deviation: the "://" refusal is containerd 1.6.20's (reference.Parse); the
    # seed's library lacks it. Unreachable from CRI, where parse_docker_ref has
    # already refused such strings (behaviors.md REF-013), so it is not a switch.
    if "://" in text:
        raise InvalidReference(text, "invalid reference")
    try:
        url = gourl.parse("dummy://" + text)
    except gourl.URLError as exc:
        raise InvalidReference(text, str(exc)) from None
    if url.host == "":
        raise InvalidReference(text, "hostname required")
    path, obj = url.path, ""
    start = _OBJECT_START_RE.search(path)
    if start is not None:
        # A digest object keeps its "@"; a tag object loses its ":".
        obj = path[start.start() :].removeprefix(":")
        path = path[: start.start()]
    # Go path.Join(host, path); host is non-empty, so normpath agrees with Clean.
    locator = posixpath.normpath(f"{url.host}/{path}")
    host = locator.partition("/")[0]
    return RepoLocation(host, locator.removeprefix(host + "/"), obj)
