"""The I/O half of the pull pipeline: drives the sans-IO resolver and fetcher.

One :class:`Phase` holds, per endpoint, the httpx client and a fresh
:class:`~refpull.registry.authflow.RegistryAuth` (HOST-006: nothing is shared between the
resolve and fetch phases). httpx exceptions are mapped to refpull's typed errors here,
the only boundary where they occur; URLs in messages have their query values redacted
(upstream-issues F-07) except ``ns``.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from refpull.content.manifests import Descriptor
from refpull.content.store import ContentStore, Ingest
from refpull.errors import AuthError, InvalidAuth, PullError, TLSError, TransportError
from refpull.limits import DEFAULT_LIMITS, Limits
from refpull.profiles import Profile
from refpull.registry.authflow import FollowRedirects, RegistryAuth
from refpull.registry.challenge import LAST_HOST
from refpull.registry.fetch import (
    FetchExchange,
    Opened,
    failed_open,
    ingest_ref,
    open_steps,
)
from refpull.registry.resolve import Exchange, Reply
from refpull.registry.transport import TransportSettings, make_client
from refpull.settings.credentials import Credentials
from refpull.settings.hosts import RegistryHost, credentials_for

__all__ = [
    "CHUNK_SIZE",
    "Phase",
    "close_response",
    "drive",
    "fetch_into_store",
    "prefixed",
    "put_bytes",
    "read_blob",
    "read_unverified",
    "redact_url",
]

#: Streaming chunk size: about 1 MiB, never a whole blob in memory.
CHUNK_SIZE = 1 << 20
# containerd 1.6 httpreadseeker.go maxRetry: reconnects without progress (FETCH-006).
_MAX_NO_PROGRESS = 3
_T = TypeVar("_T")


def redact_url(url: str) -> str:
    """Hide query values (signed-URL secrets) except the ``ns`` mirror parameter."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = [
        (k, v if k == "ns" else "REDACTED") for k, v in parse_qsl(parts.query, True)
    ]
    return urlunsplit(parts._replace(query=urlencode(pairs)))


def _go_op(method: str) -> str:
    return method[:1] + method[1:].lower()


def _transport_error(
    exc: httpx.HTTPError, request: httpx.Request, profile: Profile
) -> PullError:
    url = redact_url(str(request.url))
    shown = f'"{url}"' if profile.quoted_urls_in_errors else url
    reason = str(exc) or type(exc).__name__
    message = f"failed to do request: {_go_op(request.method)} {shown}: {reason}"
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in reason:
        return TLSError(message)
    return TransportError(message)


def _body_error(exc: httpx.HTTPError) -> PullError:
    reason = str(exc) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLError):
        return TLSError(f"failed to copy: {reason}")
    return TransportError(f"failed to copy: {reason}")


@dataclass
class _Endpoint:
    host: RegistryHost
    client: httpx.Client
    auth: httpx.Auth


class Phase:
    """Clients and authorizers of every endpoint for one phase of one pull."""

    def __init__(
        self,
        hosts: Sequence[RegistryHost],
        *,
        repository: str,
        profile: Profile,
        settings: TransportSettings | None,
        environ: Mapping[str, str],
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        """Build one client and one RegistryAuth per endpoint (HOST-006)."""
        self.profile = profile
        self.limits = limits
        self.hosts = list(hosts)
        self._settings = settings
        self._environ = environ
        self._endpoints = [
            _Endpoint(
                host,
                make_client(host, settings, environ),
                RegistryAuth(
                    scheme=host.scheme,
                    host=host.host,
                    repository=repository,
                    profile=profile,
                    credentials=_credentials(host),
                    limits=limits,
                ),
            )
            for host in hosts
        ]

    def close(self) -> None:
        """Close every client."""
        for endpoint in self._endpoints:
            endpoint.client.close()

    def __enter__(self) -> Phase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(
        self, host_index: int | None, request: httpx.Request
    ) -> tuple[Reply, httpx.Response | None] | PullError:
        """Send *request* (streamed) to an endpoint, or with a bare client when None.

        Returns:
            The reply and the open response for 2xx (the caller closes it), or the
            typed error.
        """
        if host_index is None:
            return self._send_foreign(request)
        endpoint = self._endpoints[host_index]
        # containerd's doWithRetries(ctx, i == len(hosts)-1): only the last host retries
        # server errors (CHAL-007 2.3); a request may have said otherwise already.
        request.extensions.setdefault(LAST_HOST, host_index == len(self._endpoints) - 1)
        scheme_error = endpoint.host.scheme_error
        if scheme_error is not None:
            # behaviors.md EP-006 (seed): Go fails before any I/O for an odd scheme.
            return _transport_error(
                httpx.UnsupportedProtocol(scheme_error), request, self.profile
            )
        return self._send_with(endpoint.client, endpoint.auth, request)

    def _send_foreign(
        self, request: httpx.Request
    ) -> tuple[Reply, httpx.Response | None] | PullError:
        url = request.url
        host = RegistryHost(
            endpoint=str(url),
            scheme=url.scheme,
            host=url.netloc.decode("ascii"),
            path="",
        )
        # behaviors.md FETCH-004: a bare client -- environment proxy, system roots,
        # no registry TLS settings and never an authorizer.
        client = make_client(host, self._settings, self._environ)
        result = self._send_with(client, FollowRedirects(profile=self.profile), request)
        if isinstance(result, PullError) or result[1] is None:
            client.close()
        else:
            result[1].extensions["refpull.client"] = client
        return result

    def _send_with(
        self, client: httpx.Client, auth: httpx.Auth, request: httpx.Request
    ) -> tuple[Reply, httpx.Response | None] | PullError:
        try:
            response = client.send(request, auth=auth, stream=True)
        except PullError as exc:
            return exc
        except httpx.HTTPError as exc:
            return _transport_error(exc, request, self.profile)
        reply = Reply(response.status_code, response.reason_phrase, response.headers)
        if response.status_code > 299:
            body = _read_limited(response, self.limits.max_error_body_bytes)
            response.close()
            return Reply(reply.status, reply.reason, reply.headers, body), None
        return reply, response


def close_response(response: httpx.Response) -> None:
    """Close a response and the bare client a foreign fetch created for it."""
    response.close()
    client = response.extensions.get("refpull.client")
    if isinstance(client, httpx.Client):
        client.close()


def _read_limited(response: httpx.Response, limit: int) -> bytes:
    out = bytearray()
    try:
        for chunk in response.iter_bytes(CHUNK_SIZE):
            out += chunk
            if len(out) >= limit:
                break
    except httpx.HTTPError:
        pass  # a broken error body just renders without a server message
    return bytes(out[:limit])


def _credentials(host: RegistryHost) -> Callable[[str], Credentials]:
    def lookup(challenge_host: str) -> Credentials:
        try:
            return credentials_for(host, challenge_host)
        except (InvalidAuth, ValueError) as exc:
            # behaviors.md AUTH-006: bad auth fails only pulls that are challenged.
            raise AuthError(str(exc)) from exc

    return lookup


def drive(steps: Generator[Exchange, Reply | PullError, _T], phase: Phase) -> _T:
    """Run a resolver generator, sending each exchange through *phase*."""
    try:
        exchange = next(steps)
        while True:
            result = phase.send(exchange.host_index, exchange.request)
            if isinstance(result, PullError):
                exchange = steps.send(result)
                continue
            reply, response = result
            if response is not None:
                body = (
                    _read_limited(response, exchange.read_limit)
                    if exchange.read_limit
                    else b""
                )
                close_response(response)
                reply = Reply(reply.status, reply.reason, reply.headers, body)
            exchange = steps.send(reply)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def _open(
    phase: Phase, desc: Descriptor, repository: str, offset: int
) -> tuple[httpx.Response, Opened]:
    steps = open_steps(desc, repository, phase.hosts, phase.profile, offset=offset)
    response: httpx.Response | None = None
    try:
        exchange: FetchExchange = next(steps)
        while True:
            result = phase.send(exchange.host_index, exchange.request)
            if isinstance(result, PullError):
                exchange = steps.send(result)
                continue
            reply, response = result
            exchange = steps.send(reply)
            if response is not None:  # a 2xx the generator rejected (Content-Range)
                close_response(response)
                response = None
    except StopIteration as stop:
        assert response is not None
        return response, stop.value
    except PullError as exc:
        if response is not None:
            close_response(response)
        raise prefixed(exc, failed_open(exc, phase.profile)) from exc


def _stream(
    response: httpx.Response,
    ingest: Ingest,
    discard: int,
    on_bytes: Callable[[int], None],
) -> None:
    # No chunk_size: httpx would buffer up to it, and bytes buffered when the
    # connection breaks would be lost to the resume offset (FETCH-006).
    for chunk in response.iter_bytes():
        if discard:
            skip = min(discard, len(chunk))
            chunk, discard = chunk[skip:], discard - skip
        if chunk:
            ingest.write(chunk)
            on_bytes(len(chunk))


def fetch_into_store(
    phase: Phase,
    store: ContentStore,
    desc: Descriptor,
    repository: str,
    *,
    on_bytes: Callable[[int], None] = lambda n: None,
) -> bool:
    """Download *desc* into *store*, verified (FETCH-005/006/008).

    Returns:
        False when the content was already present (no request made), else True.

    Raises:
        PullError: ``failed to copy: …``, size/digest mismatches (``failed commit on
            ref …``), or (1.6) ``failed to read expected number of bytes``. Bytes
            received before a broken transfer stay in the ingest for the next pull to
            resume (FETCH-005); content that failed verification never does.
    """
    size = desc.size if desc.size >= 0 else None
    ref = ingest_ref(desc)
    # behaviors.md FETCH-005: an interrupted ingest outlives the pull (containerd
    # leaves it until garbage collection), so a later fetch continues with Range.
    with store.ingest(
        ref, expected_digest=desc.digest, expected_size=size, keep_partial=True
    ) as ingest:
        if ingest.already_exists:
            return False  # behaviors.md FETCH-008: de-duplicated
        try:
            _fill(phase, ingest, desc, repository, size, on_bytes)
        except BaseException:
            if not ingest.committed and ingest.offset == 0:
                ingest.abort()  # nothing to resume: leave no empty ingest behind
            raise
    return True


def _fill(
    phase: Phase,
    ingest: Ingest,
    desc: Descriptor,
    repository: str,
    size: int | None,
    on_bytes: Callable[[int], None],
) -> None:
    offset = ingest.resume_offset()
    if size is not None and 0 < size <= offset:
        # containerd remotes/handlers.go fetch: a complete ingest is committed as is.
        ingest.commit()
        return
    response, opened = _open(phase, desc, repository, offset)
    try:
        _copy(phase, ingest, desc, repository, response, opened, on_bytes)
    finally:
        close_response(response)
    if size and ingest.offset < size and phase.profile.short_read_message:
        # behaviors.md FETCH-008 Δ1.6 (PR #5966)
        raise PullError("failed to read expected number of bytes: unexpected EOF")
    ingest.commit()


def _copy(
    phase: Phase,
    ingest: Ingest,
    desc: Descriptor,
    repository: str,
    response: httpx.Response,
    opened: Opened,
    on_bytes: Callable[[int], None],
) -> None:
    stalls = 0
    while True:
        before = ingest.offset
        try:
            _stream(response, ingest, opened.discard, on_bytes)
            return
        except httpx.RemoteProtocolError as exc:
            # The body ended before Content-Length: Go's io.ErrUnexpectedEOF. Only
            # this is resumed (FETCH-006); a reset is a ReadError, handled below.
            close_response(response)
            if not phase.profile.fetch_auto_resume:
                raise PullError("failed to copy: unexpected EOF") from exc
            stalls = stalls + 1 if ingest.offset == before else 0
            if stalls > _MAX_NO_PROGRESS:
                raise PullError("failed to copy: unexpected EOF") from exc
            try:
                # behaviors.md FETCH-006 (1.6): reopen at the offset with Range.
                response, opened = _open(phase, desc, repository, ingest.offset)
            except PullError:
                raise PullError("failed to copy: unexpected EOF") from exc
        except httpx.HTTPError as exc:
            # A connection reset (or other read failure) mid-body: Go's body reader
            # returns the net error itself, not io.ErrUnexpectedEOF, so containerd
            # 1.6's httpReadSeeker does not reopen (FETCH-006) and content.Copy
            # fails with "failed to copy: <error>" in both profiles.
            close_response(response)
            raise _body_error(exc) from exc
        except BaseException:
            close_response(response)
            raise


def read_blob(
    phase: Phase, store: ContentStore, desc: Descriptor, repository: str
) -> bytes:
    """Fetch a small document (manifest, index, config) through the store and read it."""
    fetch_into_store(phase, store, desc, repository)
    return store.read_bytes(desc.digest)


def read_unverified(
    phase: Phase, desc: Descriptor, repository: str, *, limit: int
) -> bytes:
    """Read at most *limit* bytes of *desc* without digest verification.

    Only for schema1 manifests, whose served bytes never match the resolved digest
    (the digest covers the signature-stripped payload, S1-002/S1-004).
    """
    response, opened = _open(phase, desc, repository, 0)
    try:
        body = _read_limited(response, limit + opened.discard)
    finally:
        close_response(response)
    return body[opened.discard :]


def put_bytes(store: ContentStore, desc: Descriptor, data: bytes) -> None:
    """Store locally produced content (converted schema1, rewritten manifests)."""
    with store.ingest(
        ingest_ref(desc), expected_digest=desc.digest, expected_size=desc.size
    ) as ingest:
        if not ingest.already_exists:
            ingest.write(data)
            ingest.commit()


def prefixed(exc: PullError, message: str, reference: str | None = None) -> PullError:
    """A copy of *exc* (same class and data) with a new message.

    Keeps the typed error (``RegistryError.status``, ``DigestMismatch.expected`` …)
    while the message gains the wrappers containerd adds on the way up (ERR-003).
    """
    new = exc.__class__.__new__(exc.__class__)
    new.__dict__.update(exc.__dict__)
    new.args = (message,)
    if reference is not None:
        new.reference = reference
    return new
