"""Reference resolution across hosts, as a sans-IO generator (RES-001..RES-013).

:func:`resolve_steps` yields :class:`Exchange` values (which host, which request, whether
the body is wanted) and receives a :class:`Reply` or the :class:`~refpull.errors.PullError`
that sending raised; it returns the root :class:`~refpull.content.manifests.Descriptor`. The
driver (``refpull.pull._pipeline_io``) sends each request through that host's client and
:class:`~refpull.registry.authflow.RegistryAuth`, which already handled 401s, retries and
redirects. Sources: containerd@383f4a77 and v1.6.20 ``remotes/docker/resolver.go``
(``Resolve``, ``getManifestMediaType``, ``MaxManifestSize``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field

import httpx

from refpull.content.manifests import Descriptor
from refpull.digest import Digest, DigestError
from refpull.errors import (
    ManifestTooLarge,
    NotFound,
    PullError,
    RegistryError,
    ResolveError,
    scrub_secrets,
)
from refpull.gocompat.imageref import ImageRef, RepoLocation
from refpull.mediatypes import DOCKER_SCHEMA1_MANIFEST, RESOLVE_ACCEPT
from refpull.profiles import Profile
from refpull.registry.challenge import LAST_HOST
from refpull.settings.hosts import RegistryHost

__all__ = [
    "MAX_MANIFEST_SIZE",
    "Exchange",
    "Reply",
    "content_length",
    "manifest_media_type",
    "registry_headers",
    "resolve_steps",
    "status_line",
]

# behaviors.md RES-008: containerd's "4 MiB" cap is 4*1048*1048 (typo'd), in both profiles.
MAX_MANIFEST_SIZE = 4 * 1048 * 1048


@dataclass(frozen=True)
class Exchange:
    """One request the resolver wants sent to ``hosts[host_index]``.

    ``read_limit`` > 0 asks the driver to read at most that many body bytes into
    :attr:`Reply.body`; 0 means the body is not wanted.
    """

    host_index: int
    request: httpx.Request
    read_limit: int = 0


@dataclass(frozen=True)
class Reply:
    """What came back: the final status, headers and (if asked) the first body bytes."""

    status: int
    reason: str
    headers: httpx.Headers = field(default_factory=httpx.Headers)
    body: bytes = b""


def status_line(reply: Reply) -> str:
    """Go's ``resp.Status``: code and the server's reason phrase (ERR-003).

    Deviation (security): the reason phrase is the server's text and may reflect the
    request's Authorization header; credential-shaped parts are scrubbed.
    """
    return f"{reply.status} {scrub_secrets(reply.reason)}".rstrip()


def content_length(headers: httpx.Headers) -> int:
    """Go's ``resp.ContentLength``: the header's value, or -1 when absent or chunked."""
    raw = headers.get("content-length")
    if raw is None or not raw.strip().isdigit():
        return -1
    return int(raw)


def manifest_media_type(headers: httpx.Headers) -> str:
    """Media type from ``Content-Type`` the way containerd reads it (RES-004).

    Parameters after ``;`` are cut (no trimming), and ``text/plain`` means schema1
    (registry.access.redhat.com sent no proper type, as of 2019).
    """
    value = headers.get("content-type", "")
    value = value.split(";", 1)[0]
    return DOCKER_SCHEMA1_MANIFEST if value == "text/plain" else value


def registry_headers(
    host: RegistryHost, profile: Profile, *, accept: str
) -> list[tuple[str, str]]:
    """Headers of a registry request: User-Agent, Accept and ``registry.headers``.

    behaviors.md HOST-008 (1.6): configured names are used verbatim; a configured
    ``Accept`` or ``User-Agent`` (exact spelling) replaces the default.
    """
    names = {name for name, _ in host.headers}
    out: list[tuple[str, str]] = []
    if "User-Agent" not in names:
        out.append(("User-Agent", profile.user_agent))  # behaviors.md RES-001
    if "Accept" not in names:
        out.append(("Accept", accept))
    out.extend(host.headers)
    return out


def _request(
    method: str, url: str, host: RegistryHost, profile: Profile
) -> httpx.Request:
    headers = registry_headers(host, profile, accept=RESOLVE_ACCEPT)
    if method == "GET":
        # Go's transport asks for gzip on GETs (never on HEAD), behaviors.md RES-001.
        headers.append(("Accept-Encoding", "gzip"))
    return httpx.Request(method, url, headers=headers)


def _unexpected(host: RegistryHost, what: str, reply: Reply, profile: Profile) -> str:
    if not profile.resolve_falls_through_on_error:
        return f"unexpected status code {what}: {status_line(reply)}"  # RES-010 seed
    kind = "status code" if reply.status > 399 else "unexpected status code"
    return (
        f"pulling from host {host.host} failed with {kind} {what}: {status_line(reply)}"
    )


def _header_digest(reply: Reply) -> str | None:
    """A trusted header digest (RES-002/RES-003), or None when the GET is needed."""
    header = str(reply.headers.get("docker-content-digest", ""))
    if not header or content_length(reply.headers) == -1:
        return None
    try:
        Digest.parse(header)
    except DigestError as exc:
        # behaviors.md RES-003: fatal, no GET fallback, no other host (both profiles).
        raise ResolveError(f'"{header}" in header not a valid digest: {exc}') from None
    return header


def resolve_steps(
    ref: ImageRef,
    location: RepoLocation,
    hosts: Sequence[RegistryHost],
    profile: Profile,
    *,
    strip_signature: Callable[[bytes], bytes],
) -> Generator[Exchange, Reply | PullError, Descriptor]:
    """Resolve *ref* to its root descriptor, host by host (RES-001..RES-013).

    Args:
        ref: the normalized reference (tag or digest).
        location: its registry host, repository path and object (REF-013).
        hosts: the endpoints in order (mirrors first, HOST-003: all may resolve).
        profile: RES-006/RES-010 differ.
        strip_signature: schema1 signature stripping (S1-002), for digests of schema1
            bodies fetched by GET.

    Returns:
        ``Descriptor(media_type, digest, size)`` of the first host that answered 2xx.

    Raises:
        ResolveError: an invalid digest header (RES-003), or (seed) the first
            unexpected status; RegistryError for statuses; NotFound when every host
            answered 404 (RES-007); ManifestTooLarge (RES-008); and any PullError the
            driver reported (transport, auth), per RES-006.
    """
    name = str(ref)
    obj = ref.digest or location.object
    # behaviors.md RES-005: a digest is tried under /manifests/ then /blobs/, path-major.
    kinds = ("manifests", "blobs") if ref.digest else ("manifests",)
    first_error: PullError | None = None
    # containerd resolver.go Resolve: a tag needs hosts that may pull *and* resolve, a
    # digest only pull (hosts.toml `capabilities`, HOST-011).
    needed = {"pull"} if ref.digest else {"pull", "resolve"}
    if not any(needed <= host.capabilities for host in hosts):
        raise NotFound("no resolve hosts: not found")
    last = max(i for i, host in enumerate(hosts) if needed <= host.capabilities)
    for kind in kinds:
        what = f"[{kind} {obj}]"  # Go's %v of []string{kind, obj}
        for index, host in enumerate(hosts):
            if not needed <= host.capabilities:
                continue
            url = host.request_url(location.repository, kind, obj)
            head = _request("HEAD", url, host, profile)
            # resolver.go: doWithRetries(ctx, i == len(hosts)-1) over the hosts that
            # may resolve (CHAL-007 2.3 retries server errors only there).
            head.extensions[LAST_HOST] = index == last
            reply = yield Exchange(index, head)
            if isinstance(reply, PullError):
                # behaviors.md RES-006: the seed aborts; 1.6 remembers and moves on.
                if not profile.resolve_falls_through_on_error:
                    raise reply
                first_error = first_error or reply
                continue
            if reply.status > 299:
                if reply.status == 404:
                    continue
                error = RegistryError(
                    _unexpected(host, what, reply, profile),
                    status=reply.status,
                    url=url,
                )
                if not profile.resolve_falls_through_on_error or reply.status < 400:
                    raise error
                first_error = first_error or error
                continue
            size = content_length(reply.headers)
            media_type = manifest_media_type(reply.headers)
            digest = ref.digest or _header_digest(reply)
            if digest is None or size == -1:
                request = _request("GET", url, host, profile)
                # v2.3.4 core/remotes/docker/resolver.go:401 req.doWithRetries(ctx,
                # true): this GET retries server errors on any host (CHAL-007 2.3).
                request.extensions[LAST_HOST] = True
                get = Exchange(index, request, read_limit=MAX_MANIFEST_SIZE + 1)
                reply = yield get
                if isinstance(reply, PullError):
                    raise reply  # containerd returns the GET's error at once
                # upstream-issues F-18 (still so in 1.6.20): the GET's status is not
                # checked, so an error page is digested like a manifest and the later
                # verified fetch fails. A functional quirk, reproduced.
                media_type = manifest_media_type(reply.headers)
                size = len(reply.body)
                if size > MAX_MANIFEST_SIZE:
                    # Deviation: the body is read only up to the cap + 1 byte (no
                    # unbounded read); the advertised length is reported when known.
                    size = max(size, content_length(reply.headers))
                elif digest is None:
                    body = reply.body
                    if media_type == DOCKER_SCHEMA1_MANIFEST:
                        body = strip_signature(body)  # behaviors.md RES-002, S1-002
                    digest = "sha256:" + hashlib.sha256(body).hexdigest()
            if size > MAX_MANIFEST_SIZE:
                # behaviors.md RES-008: skip this host; reported only if none succeeds.
                first_error = first_error or ManifestTooLarge(
                    f"rejecting {size} byte manifest for {name}: not found"
                )
                continue
            assert digest is not None
            return Descriptor(media_type=media_type, digest=digest, size=size)
    # behaviors.md RES-007: every host answered 404.
    raise first_error or NotFound(f"{name}: not found")
