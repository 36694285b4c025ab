"""``RegistryAuth``: containerd's authorizer and retry loop as an httpx auth flow.

The flow is sans-IO (STYLE.md point 1): it yields requests and receives responses, and
httpx (or a unit test) does the sending. One logical request goes through these steps:

1. Authorize: add ``Authorization`` only if a handler exists for the request's
   ``host[:port]``, created by an earlier 401 from that host (CHAL-001, CHAL-008).
2. Send, following redirects here (at most 10 requests, so 9 redirects,
   XPORT-005/RES-011), never carrying a credential to a host it does not belong to.
3. Retry (at most 6 attempts, 5 in 2.3, CHAL-007): on 401 when a challenge is accepted,
   on 405 for ``HEAD …/manifests/…`` as GET (RES-009), on 408/429 at once; in 2.3 also on
   500/503/504 from the last host unless the answer before had the same status.

Sources: containerd@383f4a77 ``remotes/docker/authorizer.go``, ``resolver.go``
(``doWithRetries``, ``retryRequest``); 1.6.20 ``authorizer.go``, ``auth/fetch.go``.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from refpull.errors import TokenError, TransportError, scrub_secrets
from refpull.limits import DEFAULT_LIMITS, Limits
from refpull.profiles import Profile
from refpull.registry import tokens
from refpull.registry.challenge import (
    LAST_HOST,
    BearerOptions,
    Retry,
    bearer_options,
    host_key,
    parse_www_authenticate,
    rejected_credentials,
    retry_decision,
)

__all__ = ["MAX_REDIRECTS", "FollowRedirects", "RegistryAuth", "redirect_target"]

#: Go's http.Client redirect budget (behaviors.md XPORT-005, RES-011): its default
#: CheckRedirect fails once 10 requests were made, so the 10th redirect response is an
#: error ("stopped after 10 redirects") and at most 9 redirects are followed.
MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_TokenFlow = Generator[httpx.Request, httpx.Response, tokens.TokenResponse]
_RequestFlow = Generator[httpx.Request, httpx.Response, httpx.Request]


class _CredentialsLike(Protocol):
    @property
    def username(self) -> str: ...

    @property
    def secret(self) -> str: ...


@dataclass
class _Handler:
    scheme: str
    username: str
    secret: str
    options: BearerOptions | None = None
    cache: tokens.TokenCache = field(default_factory=tokens.TokenCache)


def redirect_target(
    response: httpx.Response, request: httpx.Request
) -> httpx.URL | None:
    """The URL a redirect response points at, resolved against *request*; else None."""
    location = response.headers.get("location")
    if response.status_code not in _REDIRECTS or not location:
        return None
    try:
        return request.url.join(location)
    except httpx.InvalidURL:
        return None


def _go_url_error(method: str, url: str, message: str, profile: Profile) -> str:
    op = method[:1] + method[1:].lower()
    shown = f'"{url}"' if profile.quoted_urls_in_errors else url
    return f"{op} {shown}: {message}"


def _too_many_redirects(
    first: httpx.Request, response: httpx.Response, profile: Profile
) -> str:
    # go1.19 net/http client.go Client.do: the url.Error names the first request's
    # method and the raw Location of the refused redirect.
    location = response.headers.get("location", "")
    return _go_url_error(first.method, location, "stopped after 10 redirects", profile)


def _copy_request(
    request: httpx.Request, *, url: httpx.URL | None = None, method: str | None = None
) -> httpx.Request:
    headers = [
        (k, v)
        for k, v in request.headers.multi_items()
        if k.lower() not in ("host", "authorization", "content-length")
    ]
    keep_body = method is None or method == request.method
    content = request.content if keep_body and request.method == "POST" else None
    return httpx.Request(
        method or request.method,
        url or request.url,
        headers=headers,
        content=content,
        extensions=dict(request.extensions),
    )


class RegistryAuth(httpx.Auth):
    """Authorizer and retry loop of one registry endpoint for one phase of a pull.

    Handlers are created lazily by 401 challenges and keyed by ``host[:port]``; a
    Bearer handler caches tokens per scope for the life of this object (CHAL-004,
    TOKEN-006). The puller builds a fresh instance per endpoint and phase (HOST-006).

    Security (every profile): credentials are looked up only for challenges from the
    endpoint's own host, so a redirect target never receives them (F-03); a token
    realm receives them over https, or over plain http on the endpoint's own host only
    (AUTH-010).
    """

    requires_response_body = False  # bodies are read selectively, see sync_auth_flow

    def __init__(
        self,
        *,
        scheme: str,
        host: str,
        repository: str,
        profile: Profile,
        credentials: Callable[[str], _CredentialsLike] | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        """Create the authorizer.

        Args:
            scheme: the endpoint scheme (``http`` or ``https``).
            host: the endpoint ``host[:port]`` as written in its URL.
            repository: the reference's repository path, for the context scope.
            profile: behaviour switches (CHAL-002/003/008, TOKEN-003/004/005/008).
            credentials: called with *host* at challenge time (AUTH-006); returns an
                object with ``username`` and ``secret``. None means anonymous.
            limits: ``max_token_bytes`` bounds a token response (TOKEN-010).
        """
        self._scheme = scheme
        self._host = host
        self._own_key = host_key(httpx.URL(f"{scheme}://{host}/"))
        self._own_host = httpx.URL(f"{scheme}://{host}/").host
        self._context_scopes = (tokens.repository_scope(repository),)
        self._profile = profile
        self._credentials = credentials
        self._max_token_bytes = limits.max_token_bytes
        self._lock = threading.Lock()
        self._handlers: dict[str, _Handler] = {}

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Run :meth:`auth_flow`, reading only token responses before the flow sees them.

        Registry responses stay streamed, so a blob never sits whole in memory.
        """
        flow = self.auth_flow(request)
        outgoing = next(flow)
        while True:
            response = yield outgoing
            try:
                if outgoing.extensions.get(tokens.READ_BODY):
                    try:
                        _read_token_body(response, self._max_token_bytes)
                    except TokenError as exc:
                        outgoing = flow.throw(exc)  # the token flow records it
                        continue
                outgoing = flow.send(response)
            except StopIteration:
                return

    def auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """The retry loop of one logical request (CHAL-007); httpx keeps the last response."""
        attempts: list[tuple[str, str]] = []
        previous: int | None = None  # the status of the attempt before, if any
        last_host = self._profile.server_errors_retried_on_last_host and bool(
            request.extensions.get(LAST_HOST)
        )
        current = request
        while True:
            response, final = yield from self._send(current)
            attempts.append((final.method, str(final.url)))
            decision = retry_decision(
                response.status_code,
                final.method,
                final.url.path,
                len(attempts),
                self._profile.retry_attempts,
                previous=previous,
                server_errors_on_last_host=last_host,
            )
            previous = response.status_code
            if decision is Retry.STOP:
                return
            if decision is Retry.AUTHENTICATE and not self._accept(
                response, final, attempts
            ):
                return
            if decision is Retry.AS_GET:
                current = _copy_request(current, method="GET")

    def _send(
        self, first: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, tuple[httpx.Response, httpx.Request]]:
        origin = first.url
        outgoing = yield from self._authorized(_copy_request(first), origin)
        for sent in range(1, MAX_REDIRECTS + 1):
            response = yield outgoing
            target = redirect_target(response, outgoing)
            if target is None:
                return response, outgoing
            if sent == MAX_REDIRECTS:  # Go: len(via) >= 10
                message = _too_many_redirects(first, response, self._profile)
                raise TransportError(f"failed to do request: {message}")
            method = outgoing.method
            if response.status_code in (301, 302, 303) and method not in (
                "GET",
                "HEAD",
            ):
                method = "GET"
            nxt = _copy_request(outgoing, url=target, method=method)
            outgoing = yield from self._authorized(nxt, origin)
        raise AssertionError("unreachable")  # pragma: no cover

    def _authorized(self, request: httpx.Request, origin: httpx.URL) -> _RequestFlow:
        key = host_key(request.url)
        downgrade = origin.scheme == "https" and request.url.scheme != "https"
        # CHAL-008: the seed (Go's redirect policy) keeps the original host's header
        # only on the same host; 1.6 re-authorizes any hop whose host has a handler.
        # Deviation: Go also copies it to sub-domains (F-06); the reference never does.
        same_host = key == host_key(origin)
        if not downgrade and (same_host or self._profile.redirects_reauthorized):
            value = yield from self._authorization(key)
            if value is not None:
                request.headers["Authorization"] = value
        return request

    def _authorization(
        self, key: str
    ) -> Generator[httpx.Request, httpx.Response, str | None]:
        with self._lock:
            handler = self._handlers.get(key)
        if handler is None:
            return None  # behaviors.md CHAL-001: no pre-emptive authentication
        if handler.options is None:
            raw = f"{handler.username}:{handler.secret}".encode()
            return "Basic " + base64.b64encode(raw).decode("ascii")
        scopes = tokens.token_scopes(self._context_scopes, handler.options.scopes)
        slot, mine = handler.cache.claim(scopes)
        if not mine:
            return _bearer(_reraise(slot))
        try:
            answer = yield from self._fetch_token(handler, scopes)
        except TokenError as exc:
            slot.finish(error=exc)
            raise TokenError(f"failed to authorize: {exc}") from exc
        except BaseException:
            prefix = tokens.anonymous_prefix(handler.secret)
            slot.finish(error=TokenError(f"{prefix}: token request did not complete"))
            raise
        # behaviors.md TOKEN-006 Δ1.7: expires_in bounds the cached token's life.
        life = answer.expires_in if self._profile.token_expiry_honoured else None
        slot.finish(token=answer.token, expires_in=life)
        return _bearer(answer.token)

    def _fetch_token(self, handler: _Handler, scopes: tuple[str, ...]) -> _TokenFlow:
        assert handler.options is not None
        options, username, secret = handler.options, handler.username, handler.secret
        realm = httpx.URL(options.realm)
        # Deviation (AUTH-010, security): a plain-http realm gets no credentials unless
        # it is on the endpoint's own host (they would travel in clear text to another
        # host, whatever the endpoint's scheme); containerd sends them anyway.
        # Anonymous flow instead.
        if realm.scheme != "https" and realm.host != self._own_host:
            username, secret = "", ""
        prefix = tokens.anonymous_prefix(secret)
        try:
            if not secret:
                request = tokens.token_get_request(
                    options, scopes, username="", secret="", profile=self._profile
                )
                return (yield from self._exchange(request, "GET"))
            post = tokens.oauth_post_request(
                options, scopes, username=username, secret=secret, profile=self._profile
            )
            response = yield from self._token_hops(post)
            if tokens.post_falls_back_to_get(
                response.status_code, username=username, profile=self._profile
            ):
                request = tokens.token_get_request(
                    options,
                    scopes,
                    username=username,
                    secret=secret,
                    profile=self._profile,
                )
                return (yield from self._exchange(request, "GET"))
            return _token_from(response, "POST", self._profile)
        except TokenError as exc:
            raise TokenError(f"{prefix}: {exc}") from exc

    def _exchange(self, request: httpx.Request, method: str) -> _TokenFlow:
        response = yield from self._token_hops(request)
        return _token_from(response, method, self._profile)

    def _token_hops(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, httpx.Response]:
        """Send a token request, following redirects like Go (TOKEN-007), safely."""
        if request.url.scheme not in ("http", "https"):
            # behaviors.md TOKEN-009: a relative or odd realm fails at request time.
            message = f'unsupported protocol scheme "{request.url.scheme}"'
            raise TokenError(
                _go_url_error(request.method, str(request.url), message, self._profile)
            )
        outgoing = request
        for sent in range(1, MAX_REDIRECTS + 1):
            response = yield outgoing
            target = redirect_target(response, outgoing)
            if target is None:
                return response
            if sent == MAX_REDIRECTS:  # Go: len(via) >= 10 (XPORT-005)
                raise TokenError(_too_many_redirects(request, response, self._profile))
            method = outgoing.method
            if response.status_code in (301, 302, 303) and method != "GET":
                method = "GET"  # the form body (and its password) is dropped
            moved = host_key(target) != host_key(outgoing.url)
            if moved and method == "POST":
                raise TokenError("refusing to resend credentials to another host")
            nxt = _copy_request(outgoing, url=target, method=method)
            if not moved and "authorization" in outgoing.headers:
                nxt.headers["Authorization"] = outgoing.headers["authorization"]
            outgoing = nxt
        raise AssertionError("unreachable")  # pragma: no cover

    def _accept(
        self,
        response: httpx.Response,
        request: httpx.Request,
        attempts: list[tuple[str, str]],
    ) -> bool:
        """containerd ``AddResponses``: True when a challenge was accepted for retry."""
        key = host_key(request.url)
        values = response.headers.get_list("www-authenticate")
        for challenge in parse_www_authenticate(values, self._profile):
            if challenge.scheme == "bearer":
                rejected = rejected_credentials(challenge, attempts)
                with self._lock:
                    if rejected is not None:
                        self._handlers.pop(key, None)  # behaviors.md CHAL-005
                        raise rejected
                    if key in self._handlers:
                        return True  # behaviors.md CHAL-004: reuse, no new token
                options = bearer_options(challenge, self._profile)
                username, secret = self._lookup(key)
                with self._lock:
                    self._handlers[key] = _Handler("bearer", username, secret, options)
                return True
            if challenge.scheme == "basic":
                username, secret = self._lookup(key)
                # behaviors.md CHAL-006/AUTH-004: Basic needs both user and secret.
                if username and secret:
                    with self._lock:
                        self._handlers[key] = _Handler("basic", username, secret)
                    return True
        return False

    def _lookup(self, key: str) -> tuple[str, str]:
        # Security (F-03, every profile): only the endpoint's own host gets credentials.
        if self._credentials is None or key != self._own_key:
            return "", ""
        creds = self._credentials(self._host)
        return creds.username, creds.secret


def _bearer(token: str) -> str:
    """The Authorization value for *token*; the seed's empty token too (TOKEN-005).

    Go sends ``Bearer `` for an empty token. The trailing space is whitespace around a
    field value, which the receiver strips (RFC 9110 section 5.5) and h11 refuses to
    send, so ``Bearer`` is what a registry sees either way.
    """
    return f"Bearer {token}" if token else "Bearer"


def _reraise(slot: tokens.TokenSlot) -> str:
    try:
        return slot.wait()
    except TokenError as exc:
        raise TokenError(f"failed to authorize: {exc}") from exc


def _read_token_body(response: httpx.Response, limit: int) -> None:
    """Read *response*'s body, refusing more than *limit* bytes (TOKEN-010).

    Deviation (security): containerd reads a token response whole into memory, so a
    hostile realm can answer with gigabytes; the reference stops past *limit*.
    """
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limit:
            response.close()
            raise TokenError(
                f"token response larger than {limit} bytes "
                "(raise the limit with --max-token-bytes)"
            )
    # What Response.read() caches; httpx reads the body again once the flow answers.
    response._content = bytes(body)


def _token_from(
    response: httpx.Response, method: str, profile: Profile
) -> tokens.TokenResponse:
    status = response.status_code
    if status < 200 or status >= 400:
        reason = scrub_secrets(response.reason_phrase)  # ERR-003: the realm's text
        raise TokenError(f"unexpected status: {status} {reason}")
    return tokens.parse_token_response(response.content, method=method, profile=profile)


class FollowRedirects(httpx.Auth):
    """Redirects only, no authorizer and no retries: Go's bare ``http.DefaultClient``.

    Used for foreign ``urls`` (FETCH-004), which containerd fetches without credentials.
    """

    def __init__(self, *, profile: Profile) -> None:
        """Args:
        profile: chooses how the redirect-limit error prints its URL.
        """
        self._profile = profile

    def auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Make at most :data:`MAX_REDIRECTS` requests, carrying no credentials."""
        outgoing = _copy_request(request)
        for sent in range(1, MAX_REDIRECTS + 1):
            response = yield outgoing
            target = redirect_target(response, outgoing)
            if target is None:
                return
            if sent == MAX_REDIRECTS:  # Go: len(via) >= 10 (XPORT-005)
                message = _too_many_redirects(request, response, self._profile)
                raise TransportError(f"failed to do request: {message}")
            outgoing = _copy_request(outgoing, url=target, method="GET")
