"""Opening content by descriptor, as a sans-IO generator (FETCH-001..FETCH-007).

:func:`open_steps` yields :class:`FetchExchange` values and receives a
:class:`~refpull.registry.resolve.Reply` (for a non-2xx status with the first bytes of the error
body) or the :class:`~refpull.errors.PullError` that sending raised. It returns an
:class:`Opened` telling the driver that the last response is the content stream and how
many bytes to discard. Streaming into the content store, verification (FETCH-008) and
resume (FETCH-005/006) are done by ``refpull.pull._pipeline_io``. Sources: containerd@383f4a77
and v1.6.20 ``remotes/docker/fetcher.go`` (``Fetch``, ``open``), ``httpreadseeker.go``,
``errcode.go``/``errdesc.go``, ``remotes/handlers.go`` (``MakeRefKey``).
"""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from refpull.content.manifests import Descriptor
from refpull.errors import NotFound, PullError, RegistryError, scrub_secrets
from refpull.gocompat.gourl import URLError
from refpull.gocompat.gourl import parse as parse_go_url
from refpull.mediatypes import (
    DOCKER_CONFIG,
    DOCKER_SCHEMA1_MANIFEST,
    OCI_CONFIG,
    is_index,
    is_layer,
    is_manifest,
)
from refpull.profiles import Profile
from refpull.registry.resolve import Reply, registry_headers, status_line
from refpull.settings.hosts import RegistryHost

__all__ = [
    "ERROR_BODY_LIMIT",
    "FetchExchange",
    "Opened",
    "failed_open",
    "ingest_ref",
    "open_steps",
    "render_registry_errors",
]

#: How much of an error body is read to render the registry's message.
ERROR_BODY_LIMIT = 64 * 1024
# containerd errdesc.go: the registered codes; anything else decodes as UNKNOWN.
_KNOWN_CODES = frozenset(
    {
        "UNKNOWN",
        "UNSUPPORTED",
        "UNAUTHORIZED",
        "DENIED",
        "UNAVAILABLE",
        "TOOMANYREQUESTS",
    }
)
_REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class FetchExchange:
    """One GET to send: to ``hosts[host_index]`` with its auth, or (None) a foreign URL
    with a bare client (no credentials, no ``ns``, FETCH-004)."""

    host_index: int | None
    request: httpx.Request


@dataclass(frozen=True)
class Opened:
    """The last response is the content; skip ``discard`` bytes first (FETCH-005)."""

    url: str
    discard: int = 0


def ingest_ref(desc: Descriptor) -> str:
    """The content-ingest reference of a descriptor (containerd ``remotes.MakeRefKey``)."""
    key = desc.digest
    name = dict(desc.annotations).get(_REF_NAME)
    if name is not None:
        key = f"{name}@{desc.digest}"
    mt = desc.media_type
    if is_manifest(mt):
        return "manifest-" + key
    if is_index(mt):
        return "index-" + key
    if is_layer(mt):
        return "layer-" + key
    if mt in (DOCKER_CONFIG, OCI_CONFIG):
        return "config-" + key
    return "unknown-" + key


def failed_open(error: PullError, profile: Profile) -> str:
    """The message of a failed open inside ``content.Copy`` (FETCH-007)."""
    # The seed's type was spelled httpReaderSeeker; 1.6.20 spells it httpReadSeeker.
    reader = "httpReadSeeker" if profile.fetch_auto_resume else "httpReaderSeeker"
    return f"failed to copy: {reader}: failed open: {error}"


def _error_entry(entry: Any) -> str:
    if not isinstance(entry, dict):
        return "unknown"
    fields = {str(k).lower(): v for k, v in entry.items()}
    code = fields.get("code")
    code = code if isinstance(code, str) and code in _KNOWN_CODES else "UNKNOWN"
    label = code.lower().replace("_", " ")
    message = fields.get("message")
    return f"{label}: {message}" if isinstance(message, str) and message else label


def render_registry_errors(body: bytes) -> str | None:
    """Render a registry error body like containerd's ``errcode.Errors`` (FETCH-007).

    Args:
        body: the response body (``{"errors": [{"code", "message", "detail"}]}``).

    Returns:
        ``code: message`` for one entry, ``errors:\\n<e1>\\n<e2>\\n`` for several, or
        None when the body is not such a list or the list is empty.
    """
    try:
        doc = json.loads(body.decode("utf-8", errors="replace"))
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    entries = {str(k).lower(): v for k, v in doc.items()}.get("errors")
    if not isinstance(entries, list) or not entries:
        return None
    rendered = [_error_entry(e) for e in entries]
    if len(rendered) == 1:
        return rendered[0]
    return "errors:\n" + "".join(r + "\n" for r in rendered)


def _status_error(url: str, reply: Reply) -> PullError:
    if reply.status == 404:
        return NotFound(f"content at {url} not found: not found")
    message = f"unexpected status code {url}: {status_line(reply)}"
    server = render_registry_errors(reply.body)
    if server is not None:
        # Deviation (ERR-003, security): the server's text may reflect what was sent.
        message += f" - Server message: {scrub_secrets(server)}"
    return RegistryError(message, status=reply.status, url=url)


def _check_range(reply: Reply, url: str, offset: int) -> Opened | PullError:
    if offset <= 0:
        return Opened(url)
    content_range = reply.headers.get("content-range")
    if content_range is None:
        return Opened(url, discard=offset)  # a 200 without Content-Range: skip ahead
    if not content_range.startswith(f"bytes {offset}-"):
        return PullError(f"unhandled content range in response: {content_range}")
    return Opened(url)


#: What containerd 2.x's fetcher asks for (FETCH-003).
_ACCEPT_ENCODING_20 = "zstd;q=1.0, gzip;q=0.8, deflate;q=0.5"


def _request(
    url: str, host: RegistryHost, desc: Descriptor, profile: Profile, offset: int
) -> httpx.Request:
    # behaviors.md FETCH-003: "Accept: <media type>, */*" (", */*" for an empty type).
    headers = registry_headers(host, profile, accept=f"{desc.media_type}, */*")
    if profile.fetch_accepts_zstd:
        # FETCH-003 Δ2.0: set by the fetcher on every request (core/remotes/docker/
        # fetcher.go open); the body is then decoded as Content-Encoding says.
        headers.append(("Accept-Encoding", _ACCEPT_ENCODING_20))
    if offset > 0:
        headers.append(("Range", f"bytes={offset}-"))  # behaviors.md FETCH-005
    elif not profile.fetch_accepts_zstd:
        headers.append(("Accept-Encoding", "gzip"))  # Go adds it only without Range
    return httpx.Request("GET", url, headers=headers)


def _foreign_host(raw: str) -> tuple[RegistryHost, str] | None:
    try:
        url = parse_go_url(raw)
    except URLError:
        return None  # containerd logs "failed to parse" and tries the next URL
    if url.scheme not in ("http", "https"):
        # behaviors.md FETCH-004 Δ1.6 (PR #6221): only http(s) URLs are used.
        # Deviation: the seed tries every scheme and a `file://` URL aborts its pull;
        # the reference skips such URLs in every profile (catalog FETCH-004, SECURITY).
        return None
    query = f"?{url.raw_query}" if url.raw_query else ""
    target = f"{url.scheme}://{url.host}{url.path}{query}"
    host = RegistryHost(endpoint=target, scheme=url.scheme, host=url.host, path="")
    return host, target


def _kinds(desc: Descriptor, profile: Profile) -> list[str]:
    mt = desc.media_type
    if is_manifest(mt) or is_index(mt) or mt == DOCKER_SCHEMA1_MANIFEST:
        # behaviors.md FETCH-001: manifests by digest; the seed falls back to /blobs/.
        return (
            ["manifests", "blobs"] if profile.manifest_blob_fallback else ["manifests"]
        )
    return ["blobs"]


def open_steps(
    desc: Descriptor,
    repository: str,
    hosts: Sequence[RegistryHost],
    profile: Profile,
    *,
    offset: int = 0,
) -> Generator[FetchExchange, Reply | PullError, Opened]:
    """Find a source for *desc* and open it at *offset* (FETCH-001..FETCH-005).

    Args:
        desc: what to fetch.
        repository: the reference's repository path.
        hosts: the registry endpoints in order.
        profile: FETCH-001/002/004 differ.
        offset: bytes already held by the ingest; > 0 sends ``Range`` (FETCH-005).

    Returns:
        Where the content comes from and how many leading bytes to discard.

    Raises:
        PullError: the error that ends the search, already worded for the profile
            (without the ``failed to copy`` wrapper, see :func:`failed_open`).
    """
    # behaviors.md FETCH-004: foreign URLs first, with a bare client (no credentials,
    # no configured registry headers: the host built for it has none).
    for raw in desc.urls:
        found = _foreign_host(raw)
        if found is None:
            continue
        host, target = found
        reply = yield FetchExchange(None, _request(target, host, desc, profile, offset))
        outcome = _outcome(reply, target, offset)
        if isinstance(outcome, Opened):
            return outcome
        # Deviation: containerd aborts the pull on any error but a 404 (upstream-issues
        # F-08); the reference tries the next URL, then the registry, in every profile
        # (catalog FETCH-004, SECURITY: a foreign host must not be able to fail a pull).
    for kind in _kinds(desc, profile):
        first_error: PullError | None = None
        # HOST-011: fetcher.go Fetch (1.6.20 to 2.3.4) walks every host for content,
        # whatever its hosts.toml `capabilities`; only resolving a name filters them.
        for index, host in enumerate(hosts):
            url = host.request_url(repository, kind, desc.digest)
            reply = yield FetchExchange(
                index, _request(url, host, desc, profile, offset)
            )
            outcome = _outcome(reply, url, offset)
            if isinstance(outcome, Opened):
                return outcome
            if profile.fetch_falls_through_on_error:
                first_error = first_error or outcome  # FETCH-001/002 Δ1.6
                continue
            if not isinstance(outcome, NotFound):
                raise outcome  # seed: only a 404 moves on
        if first_error is not None and kind == "manifests":
            raise first_error  # 1.6: no /blobs/ fallback for manifests
        if first_error is not None and not isinstance(first_error, NotFound):
            raise first_error
    raise NotFound(
        f"could not fetch content descriptor {desc.digest} ({desc.media_type}) "
        "from remote: not found"
    )


def _outcome(reply: Reply | PullError, url: str, offset: int) -> Opened | PullError:
    if isinstance(reply, PullError):
        return reply
    if reply.status > 299:
        return _status_error(url, reply)
    return _check_range(reply, url, offset)
