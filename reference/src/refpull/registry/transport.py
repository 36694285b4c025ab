"""The HTTP transport of one registry endpoint (XPORT-001..XPORT-006, TLS-006/007).

:func:`make_client` is the only place in refpull that builds an :class:`httpx.Client`.
It mirrors the seed's ``newTransport`` (cri@ab6701bd ``image_pull.go``) and Go's
``http.ProxyFromEnvironment``:

* proxies are chosen per request by :func:`proxy_for` -- Go's rules, with the
  environment passed in (never read here); httpx's own environment logic is off;
* HTTP/1.1 only, no automatic redirects (the pull pipeline follows them itself, XPORT-005);
* Go's timeouts where httpx can express them, plus one deliberate addition (XPORT-002).

TLS-007: the runtime uses the endpoint's TLS settings for every host the client talks to
(token realm, redirect targets). The reference trusts the endpoint's ``ca_file`` for
those hosts too (an operator-added root weakens nothing), but ``insecure_skip_verify``
and the client certificate apply only to the endpoint's own ``host:port``: other hosts
are verified and see no client certificate (a deviation: skipping verification for a
host nobody marked insecure is a security weakness).
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from refpull.budget import PullBudget, RateMeter
from refpull.gocompat.gonet import default_port, hostname_port
from refpull.gocompat.goproxy import proxy_for
from refpull.settings.config import TLSConfig
from refpull.settings.hosts import RegistryHost
from refpull.settings.tlsconfig import ssl_context

__all__ = ["TransportSettings", "make_client", "proxy_for"]


@dataclass(frozen=True, kw_only=True)
class TransportSettings:
    """Timeouts and pool limits of an endpoint's client (the seed's ``newTransport``).

    Attributes:
        connect_timeout: TCP dial timeout (``net.Dialer.Timeout`` 30 s).
        keep_alive: TCP keep-alive idle/interval (``net.Dialer.KeepAlive`` 30 s).
        max_idle_connections: ``MaxIdleConns`` 10 (Go's per-host limit of 2 has no
            httpx equivalent).
        idle_timeout: ``IdleConnTimeout`` 30 s.
        tls_handshake_timeout: ``TLSHandshakeTimeout`` 10 s (TLS-006).
        expect_continue_timeout: ``ExpectContinueTimeout`` 5 s; recorded only -- the
            puller never sends ``Expect: 100-continue``.
        read_timeout: longest silence while waiting for response bytes.
        write_timeout: longest stall while sending a request.
        budget: the pull's cancellation, deadline and minimum rate (budget.py);
            None = none (only the timeouts above apply).
    """

    connect_timeout: float = 30.0
    keep_alive: int = 30
    max_idle_connections: int = 10
    idle_timeout: float = 30.0
    tls_handshake_timeout: float = 10.0
    expect_continue_timeout: float = 5.0
    # Deviation: Go sets no response-header or body timeout (behaviors.md XPORT-002), so
    # a registry that accepts and never answers stalls a pull until the CRI caller's
    # deadline. The reference has no such caller, so it gives up after 60 s of silence.
    read_timeout: float | None = 60.0
    write_timeout: float | None = 60.0
    budget: PullBudget | None = None


#: Largest socket read (see _HandshakeTimeoutStream.read).
_READ_SIZE = 1 << 20


class _HandshakeTimeoutStream(httpcore.NetworkStream):
    """A network stream whose TLS handshake has its own, shorter deadline (TLS-006).

    With a :class:`~refpull.budget.PullBudget` every wait is cut into slices of at
    most ``POLL_S`` so a cancelled or expired pull stops within one slice, and the
    connection's :class:`~refpull.budget.RateMeter` sees every wait.
    """

    def __init__(
        self,
        inner: httpcore.NetworkStream,
        handshake_timeout: float,
        budget: PullBudget | None = None,
    ) -> None:
        self._inner = inner
        self._handshake_timeout = handshake_timeout
        self._budget = budget
        self._meter: RateMeter | None = None if budget is None else budget.meter()

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # httpcore asks for 64 KiB per read; each read then costs a round of h11
        # parsing in Python (~8000 rounds per 512 MiB). Asking the socket for up to
        # 1 MiB returns whatever is buffered, so large bodies arrive in far fewer,
        # larger pieces; h11 accepts data of any length.
        size = max(max_bytes, _READ_SIZE)
        budget, meter = self._budget, self._meter
        if budget is None or meter is None:
            return self._inner.read(size, timeout)
        started = time.monotonic()
        while True:
            budget.check()
            left = None if timeout is None else timeout - (time.monotonic() - started)
            if left is not None and left <= 0:
                raise httpcore.ReadTimeout("timed out")
            before = time.monotonic()
            try:
                data = self._inner.read(size, budget.slice(left))
            except httpcore.ReadTimeout:
                meter.waited(time.monotonic() - before, 0)
                continue
            meter.waited(time.monotonic() - before, len(data))
            return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if self._budget is not None and self._meter is not None:
            self._budget.check()
            self._meter.restart()  # a new request: its answer starts a new window
            timeout = self._budget.remaining(timeout)
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        limit = self._handshake_timeout
        if timeout is not None:
            limit = min(limit, timeout)
        if self._budget is not None:
            self._budget.check()
            limit = min(limit, self._budget.remaining(limit) or limit)
        try:
            inner = self._inner.start_tls(ssl_context, server_hostname, limit)
        except httpcore.ConnectTimeout as exc:
            # Go's wording, so the pipeline can report it like the runtime does.
            raise httpcore.ConnectTimeout("net/http: TLS handshake timeout") from exc
        return _HandshakeTimeoutStream(inner, self._handshake_timeout, self._budget)


class _HandshakeTimeoutBackend(httpcore.NetworkBackend):
    def __init__(
        self,
        inner: httpcore.NetworkBackend,
        handshake_timeout: float,
        budget: PullBudget | None = None,
    ) -> None:
        self._inner = inner
        self._handshake_timeout = handshake_timeout
        self._budget = budget

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if self._budget is not None:
            self._budget.check()
            timeout = self._budget.remaining(timeout)
        stream = self._inner.connect_tcp(
            host, port, timeout, local_address, socket_options
        )
        return _HandshakeTimeoutStream(stream, self._handshake_timeout, self._budget)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:  # pragma: no cover - registries are reached over TCP
        stream = self._inner.connect_unix_socket(path, timeout, socket_options)
        return _HandshakeTimeoutStream(stream, self._handshake_timeout)

    def sleep(self, seconds: float) -> None:  # pragma: no cover - retries are off
        self._inner.sleep(seconds)


def _keepalive_options(seconds: int) -> list[tuple[int, int, int]]:
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name in ("TCP_KEEPIDLE", "TCP_KEEPINTVL"):  # Go sets both to KeepAlive
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), seconds))
    return options


def _build_transport(
    context: ssl.SSLContext, proxy: str | None, settings: TransportSettings
) -> httpx.HTTPTransport:
    transport = httpx.HTTPTransport(
        verify=context,
        http1=True,
        http2=False,  # behaviors.md XPORT-003
        limits=httpx.Limits(
            max_connections=None,
            max_keepalive_connections=settings.max_idle_connections,
            keepalive_expiry=settings.idle_timeout,
        ),
        proxy=proxy,
        retries=0,
        socket_options=_keepalive_options(settings.keep_alive),
    )
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if not isinstance(backend, httpcore.NetworkBackend):
        # httpx/httpcore internals changed: fail loudly rather than lose TLS-006.
        raise RuntimeError("cannot install the TLS handshake timeout on this httpx")
    pool._network_backend = _HandshakeTimeoutBackend(  # type: ignore[union-attr]
        backend, settings.tls_handshake_timeout, settings.budget
    )
    return transport


class _RoutingTransport(httpx.BaseTransport):
    """Picks, per request, the proxy (:func:`proxy_for`) and the TLS context."""

    def __init__(
        self,
        host: RegistryHost,
        settings: TransportSettings,
        environ: Mapping[str, str],
    ) -> None:
        self._authority = _authority(host.scheme, host.host)
        # Go keeps a URL host's case and exempts only the exact ``localhost`` from the
        # proxy; httpx lowercases hosts, so the endpoint's own requests are judged by
        # its host as written (``LOCALHOST/foo`` from 1.7 is proxied, REF-002).
        self._written_host = host.host
        self._own = host.ssl_context or ssl_context(host.tls)
        # Deviation: behaviors.md TLS-007 -- the runtime reuses the endpoint's whole TLS
        # config for token realms and redirect targets; the reference keeps only the
        # operator's CA for them, never skip-verify or the client certificate.
        self._foreign = (
            self._own
            if host.tls is None
            else ssl_context(TLSConfig(ca_file=host.tls.ca_file))
        )
        self._settings = settings
        self._environ = dict(environ)
        self._transports: dict[tuple[str | None, bool], httpx.HTTPTransport] = {}
        # behaviors.md HOST-012 (hosts.toml, 1.7+): https first; once the endpoint
        # answers a TLS handshake with something that is not TLS, plain http from then
        # on (containerd's NewHTTPFallback, per host).
        self._fallback = host.http_fallback and host.scheme == "https"
        self._plain = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        fallback = self._fallback and self._is_own(request)
        if fallback and self._plain:
            return self._send(_as_http(request))
        try:
            return self._send(request)
        except httpx.ConnectError as exc:
            if not fallback or not _not_tls(exc):
                raise
        self._plain = True
        return self._send(_as_http(request))

    def _is_own(self, request: httpx.Request) -> bool:
        host = request.url.netloc.decode("ascii")
        return _authority(request.url.scheme, host) == self._authority

    def _send(self, request: httpx.Request) -> httpx.Response:
        own = _authority(request.url.scheme, request.url.netloc.decode("ascii")) == (
            self._authority
        )
        url = str(request.url)
        if own:
            url = f"{request.url.scheme}://{self._written_host}/"
            # HOST-001: Go sends the URL's host verbatim as Host; httpx drops a default
            # port (and lowercases), so ``https://r.test:443`` would say ``r.test``.
            request.headers["Host"] = self._written_host
        try:
            proxy = proxy_for(url, self._environ)
        except ValueError as exc:
            raise httpx.ProxyError(str(exc), request=request) from None
        key = (proxy, own)
        if key not in self._transports:
            context = self._own if own else self._foreign
            self._transports[key] = _build_transport(context, proxy, self._settings)
        return self._transports[key].handle_request(request)

    def close(self) -> None:
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()


def _not_tls(exc: httpx.ConnectError) -> bool:
    """The server answered the TLS handshake with something else (plain http)."""
    cause = exc.__cause__ or exc.__context__
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    reason = getattr(cause, "reason", "") or str(exc)
    return reason in (
        "WRONG_VERSION_NUMBER",
        "RECORD_LAYER_FAILURE",
        "HTTP_REQUEST",
    ) or ("WRONG_VERSION_NUMBER" in str(exc))


def _as_http(request: httpx.Request) -> httpx.Request:
    """*request* to the same ``host:port`` over plain http."""
    url = request.url.copy_with(scheme="http")
    if request.url.port is None:  # https's default port stays explicit
        url = url.copy_with(port=443)
    return httpx.Request(
        request.method,
        url,
        headers=request.headers,
        stream=request.stream,
        extensions=request.extensions,
    )


def _authority(scheme: str, host: str) -> tuple[str, str, str]:
    name, port = hostname_port(host)
    return scheme, name.lower(), port or default_port(scheme)


def make_client(
    host: RegistryHost,
    settings: TransportSettings | None = None,
    environ: Mapping[str, str] | None = None,
) -> httpx.Client:
    """Build the HTTP client for one registry endpoint.

    Args:
        host: the endpoint (its TLS context and ``host:port``).
        settings: timeouts and limits; :class:`TransportSettings` defaults if ``None``.
        environ: proxy variables (``HTTPS_PROXY`` ...), read by the CLI and passed in;
            ``None`` means no proxy.

    Returns:
        An ``httpx.Client`` with ``trust_env=False``, ``follow_redirects=False``,
        HTTP/1.1 only, per-request proxy choice (:func:`proxy_for`). The caller
        closes it.

    Raises:
        ConfigError: the endpoint's TLS files cannot be loaded (TLS-001..003).
    """
    settings = settings or TransportSettings()
    timeout = httpx.Timeout(
        connect=settings.connect_timeout,
        read=settings.read_timeout,
        write=settings.write_timeout,
        pool=None,
    )
    return httpx.Client(
        transport=_RoutingTransport(host, settings, environ or {}),
        trust_env=False,  # proxies come from proxy_for only
        follow_redirects=False,  # behaviors.md XPORT-005: the pipeline redirects
        timeout=timeout,
    )
