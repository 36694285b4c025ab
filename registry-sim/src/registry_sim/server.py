"""The simulator's only listening socket: a threaded HTTP/1.1 (+TLS) server.

One thread accepts; each connection gets its own thread (at most ``max_connections``;
more are closed at once) that reads requests
(keep-alive, chunked bodies, ``Expect: 100-continue``), routes them by Host through a
:class:`Router` to a handler (``Request -> Response``, e.g. ``RegistryApp.handle``),
writes the answer (``sendfile`` for file bodies on plain TCP), plays the response's
:class:`~registry_sim.wire.Delivery` faults, and records every exchange in a journal.

With ``proxy=`` hooks the same machinery is an HTTP proxy: ``CONNECT`` switches the
connection to a TLS tunnel and absolute-form targets name the host (see ``proxy.py``).
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from registry_sim._connection import Connection, ExchangeSink, ProxyHooks, Tunnel
from registry_sim._http1 import plain_response
from registry_sim.wire import Request, Response

__all__ = [
    "ExchangeSink",
    "Handler",
    "ProxyHooks",
    "RegistryServer",
    "Router",
    "Tunnel",
]

#: What a route points at: anything that answers a request.
Handler = Callable[[Request], Response]

# One counter for every server in the process, so ids stay unique in a shared journal.
_CONNECTION_IDS = itertools.count(1)


def split_host_port(host: str) -> tuple[str, str | None]:
    """``"h:5000"`` → (``"h"``, ``"5000"``); ``"[::1]:5"`` → (``"[::1]"``, ``"5"``)."""
    if host.startswith("["):
        end = host.find("]")
        rest = host[end + 1 :]
        return host[: end + 1], rest[1:] if rest.startswith(":") else None
    name, sep, port = host.rpartition(":")
    if sep and name and ":" not in name:
        return name, port
    return host, None


class Router:
    """Dispatches requests by their Host to handlers.

    Names are ``host`` or ``host:port`` (case-insensitive). A request for
    ``h:5000`` is served by the route ``h:5000`` if there is one, else by ``h``,
    else by the default. Routes may change while the server runs.

    Args:
        routes: initial name → handler mapping.
        default: the handler for any other host (``None``: such hosts are unknown).
    """

    def __init__(
        self,
        routes: Mapping[str, Handler] | None = None,
        *,
        default: Handler | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._routes = {k.lower(): v for k, v in (routes or {}).items()}
        self.default = default

    def add(self, name: str, handler: Handler) -> None:
        """Serves ``name`` (``host`` or ``host:port``) with ``handler``."""
        with self._lock:
            self._routes = {**self._routes, name.lower(): handler}

    def remove(self, name: str) -> None:
        """Stops serving ``name``; unknown names are ignored."""
        with self._lock:
            self._routes = {k: v for k, v in self._routes.items() if k != name.lower()}

    def names(self) -> list[str]:
        """The named routes, sorted."""
        return sorted(self._routes)

    def named(self, host: str) -> Handler | None:
        """The handler routed for ``host`` by name, ignoring the default."""
        routes = self._routes
        key = host.lower()
        if key in routes:
            return routes[key]
        return routes.get(split_host_port(key)[0])

    def resolve(self, host: str) -> Handler | None:
        """The handler for ``host``: by name, else the default (may be ``None``)."""
        return self.named(host) or self.default


class RegistryServer:
    """A threaded HTTP/1.1 server on loopback, optionally TLS (and mTLS).

    The socket is bound when the object is created (so ``url`` is known at once);
    :meth:`start` begins accepting; :meth:`close` stops every thread and socket.

    Args:
        router: a :class:`Router`, or one handler for every host.
        host: the address to bind; loopback by default.
        port: the port; 0 picks a free one.
        ssl_context: serve TLS with this context (``CERT_REQUIRED`` means mTLS).
        sni: optional ``name -> SSLContext`` to present per-name certificates.
        record: an :class:`ExchangeSink` told about every finished exchange.
        proxy: hooks that make this server an HTTP proxy (CONNECT, absolute-form).
        idle_timeout: seconds a kept-alive connection may stay silent.
        head_timeout: seconds a request head may take from its first byte to its
            last (a client trickling header lines cannot hold a thread longer).
        max_connections: connections served at once (one thread each); at the limit
            the longest-idle kept-alive connection is ended to make room, and a new
            connection is closed at once only when none is idle.
        zero_copy: send file bodies with ``sendfile(2)`` on plain TCP (least
            server CPU). The default copies them through 1 MiB buffers, which
            measured faster on loopback on our machines (1.08x docker-registry's
            blob throughput against 0.82x with sendfile; see
            ``bench/registry_throughput.py``).
    """

    def __init__(
        self,
        router: Router | Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        sni: Callable[[str], ssl.SSLContext | None] | None = None,
        record: ExchangeSink | None = None,
        proxy: ProxyHooks | None = None,
        idle_timeout: float = 60.0,
        zero_copy: bool = False,
        head_timeout: float = 10.0,
        max_connections: int = 256,
    ) -> None:
        self.router = router if isinstance(router, Router) else Router(default=router)
        self.ssl_context = ssl_context
        self.record = record
        self.proxy = proxy
        self.idle_timeout = idle_timeout
        self.head_timeout = head_timeout
        self.max_connections = max_connections
        #: connections closed at once because ``max_connections`` were open.
        self.refused_connections = 0
        #: idle kept-alive connections ended to make room at ``max_connections``.
        self.evicted_connections = 0
        self._idle: dict[Connection, float] = {}
        self._spool: Path | None = None
        self.zero_copy = zero_copy
        #: Exceptions raised by handlers or by this server's own code (simulator bugs).
        self.errors: list[BaseException] = []
        #: (connection id, reason) for every failed TLS handshake.
        self.handshake_failures: list[tuple[int, str]] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._responding = 0
        self._settled = threading.Condition(self._lock)
        self._threads: set[threading.Thread] = set()
        self._sockets: set[socket.socket] = set()
        self._acceptor: threading.Thread | None = None
        if ssl_context is not None and sni is not None:
            ssl_context.sni_callback = _sni_callback(sni)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((host.strip("[]"), port))
            self._listener.listen(128)
        except OSError:
            self._listener.close()
            raise
        self.host = host.strip("[]")
        self.port: int = self._listener.getsockname()[1]

    @property
    def scheme(self) -> str:
        """``https`` when serving TLS, else ``http``."""
        return "http" if self.ssl_context is None else "https"

    @property
    def host_port(self) -> str:
        """``host:port`` as it appears in URLs (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234``."""
        return f"{self.scheme}://{self.host_port}"

    def start(self) -> Self:
        """Starts accepting connections (idempotent). Returns ``self``."""
        if self._acceptor is None:
            self._acceptor = threading.Thread(
                target=self._accept_loop,
                name=f"registry-sim-accept-{self.port}",
                daemon=True,
            )
            self._acceptor.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stops accepting, closes every connection and joins every thread."""
        self.stopping.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        if self._acceptor is not None:
            self._acceptor.join(timeout)
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                # The base-class shutdown wakes a thread blocked in recv, even on TLS.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout)
        with self._lock:
            spool, self._spool = self._spool, None
        if spool is not None:
            shutil.rmtree(spool, ignore_errors=True)

    def spool_dir(self) -> Path:
        """This server's own directory for upload bodies (removed by :meth:`close`)."""
        with self._lock:
            if self._spool is None:
                self._spool = Path(tempfile.mkdtemp(prefix="registry-sim-spool-"))
            return self._spool

    def responding(self) -> _Responding:
        """A context marking one response being written (see :meth:`quiesce`)."""
        return _Responding(self)

    def quiesce(self, timeout: float = 1.0) -> bool:
        """Waits until no response is being written, so the journal is complete.

        A client can read the last byte of a response before the server thread
        records the exchange; call this before reading the journal.

        Returns:
            True when settled, False if a response was still in flight at timeout.
        """
        with self._settled:
            return self._settled.wait_for(lambda: self._responding == 0, timeout)

    def check(self) -> None:
        """Re-raises the first simulator bug seen by this server, if any."""
        if self.errors:
            raise self.errors[0]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _addr = self._listener.accept()
            except OSError:
                return
            # Without TCP_NODELAY the head and a small body wait ~40 ms for an ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.adopt(sock, next(_CONNECTION_IDS))

    def adopt(self, sock: socket.socket, connection_id: int) -> None:
        """Serves an accepted socket on its own thread (used by the accept loop)."""
        thread = threading.Thread(
            target=self._serve,
            args=(sock, connection_id),
            name=f"registry-sim-conn-{connection_id}",
            daemon=True,
        )
        with self._lock:
            if self.stopping.is_set():
                sock.close()
                return
            if len(self._threads) >= self.max_connections and not self._evict_idle():
                self.refused_connections += 1
                sock.close()
                return
            self._threads.add(thread)
            self._sockets.add(sock)
        thread.start()

    def set_idle(self, conn: Connection, idle: bool) -> None:
        """Marks *conn* as waiting for its next request (evictable) or busy."""
        with self._lock:
            if idle:
                self._idle[conn] = time.monotonic()
            else:
                self._idle.pop(conn, None)

    def _evict_idle(self) -> bool:
        """At the cap, end the longest-idle kept-alive connection (caller holds the lock).

        Clients keep idle connections open for reuse (Go's transport keeps them per
        host); ending one of those makes room for a new connection, as an HTTP
        server's keep-alive eviction does, instead of refusing the newcomer.
        """
        if not self._idle:
            return False
        oldest = min(self._idle, key=self._idle.__getitem__)
        del self._idle[oldest]
        self.evicted_connections += 1
        with contextlib.suppress(OSError):
            oldest.sock.shutdown(socket.SHUT_RDWR)
        return True

    def track(self, old: socket.socket, new: socket.socket) -> None:
        """Replaces a tracked socket (after a TLS upgrade) so close() reaches it."""
        with self._lock:
            self._sockets.discard(old)
            self._sockets.add(new)

    def _serve(self, sock: socket.socket, connection_id: int) -> None:
        conn = Connection(self, sock, connection_id)
        try:
            if self.ssl_context is not None and not conn.start_tls(self.ssl_context):
                return
            conn.serve()
        except Exception as exc:  # a bug in this server: surface it in the test
            self.errors.append(exc)
        finally:
            conn.close()
            with self._lock:
                self._idle.pop(conn, None)
                self._threads.discard(threading.current_thread())
                self._sockets.discard(conn.sock)
                self._sockets.discard(sock)

    def dispatch(self, request: Request, *, proxied: bool) -> Response:
        """Routes ``request`` to its handler; unknown hosts get 404 (or the proxy's 502).

        A handler that raises is a simulator bug: it is kept in :attr:`errors` (so
        ``check()`` re-raises it) and answered with 500 and ``X-Registry-Sim-Bug``.
        """
        handler = self.router.named(request.host) if proxied else None
        if handler is None and not proxied:
            handler = self.router.resolve(request.host)
        if handler is None:
            if self.proxy is not None:
                return self.proxy.unknown_host(request)
            return plain_response(
                404, f"registry-sim serves no host {request.host!r}\n"
            )
        try:
            return handler(request)
        except Exception as exc:
            self.errors.append(exc)
            response = plain_response(500, "registry-sim bug; see check()\n")
            response.headers.set("X-Registry-Sim-Bug", type(exc).__name__)
            return response


class _Responding:
    def __init__(self, server: RegistryServer) -> None:
        self._server = server

    def __enter__(self) -> None:
        with self._server._settled:
            self._server._responding += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._server._settled:
            self._server._responding -= 1
            self._server._settled.notify_all()


def _sni_callback(
    pick: Callable[[str], ssl.SSLContext | None],
) -> Callable[[ssl.SSLObject, str | None, ssl.SSLContext], None]:
    def callback(sslobj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        if name:
            chosen = pick(name)
            if chosen is not None:
                sslobj.context = chosen

    return callback
