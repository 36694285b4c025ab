"""One accepted connection of ``server.RegistryServer``: read, dispatch, write, record.

What a connection needs from the server that accepted it is the
:class:`ConnectionOwner` protocol defined here (with the :class:`ExchangeSink` and
:class:`ProxyHooks` it hands on), so this module never imports ``server``: the server
depends on its connections, not the other way round.

The loop follows RFC 9112: requests are read one after another on a persistent
connection until the client closes, asks to close, or a response cannot be framed
for reuse (a truncated body, a transport fault).

Hostile clients (issue 12): a request head must be complete within the server's
``head_timeout`` of its first byte, however slowly it trickles; an upload body over
:data:`SPOOL_OVER` bytes goes to an unlinked temp file in the server's spool
directory (:class:`SpooledBody`), never into memory, and is closed after the response.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

from registry_sim import _http1
from registry_sim._http1 import MessageError, RequestHead, plain_response
from registry_sim._sockio import BodyWriter, LineReader, abort, wait_unsent
from registry_sim._spool import SpooledBody, spool_body
from registry_sim.wire import FileBody, Headers, Request, Response

__all__ = [
    "SPOOL_OVER",
    "Connection",
    "ConnectionOwner",
    "ExchangeSink",
    "ProxyHooks",
    "Tunnel",
]

#: Largest request body accepted.
MAX_BODY = 2 * 1024**3
#: Upload bodies larger than this (or chunked) are spooled to disk.
SPOOL_OVER = 1024 * 1024
_UPLOAD_PATH = "/blobs/uploads/"
_HANDSHAKE_TIMEOUT = 10.0
_SMALL_BODY = 64 * 1024
# Short names for certificate subject attributes, as in RFC 4514 strings.
_RDN_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
}


@dataclass(frozen=True)
class Tunnel:
    """A CONNECT the proxy accepted: the host the tunnel serves, and its TLS.

    Args:
        host: ``Request.host`` of every request in the tunnel (the CONNECT target).
        target: the CONNECT target as sent (``registry-1.docker.io:443``), recorded
            as ``proxied_via``.
        ssl_context: server-side TLS to terminate, or ``None`` for a plain tunnel.
    """

    host: str
    target: str
    ssl_context: ssl.SSLContext | None


class ExchangeSink(Protocol):
    """Where finished exchanges go: ``Journal.record_request`` has this signature.

    ``bytes_sent`` counts body bytes actually written; ``bytes_announced`` is the
    Content-Length sent (``None`` for chunked); ``proxied_via`` is the CONNECT
    target (or the absolute-form host) when the request came through the proxy.
    """

    def __call__(
        self,
        request: Request,
        *,
        status: int,
        bytes_sent: int,
        fault: str | None,
        proxied_via: str | None,
        bytes_announced: int | None,
    ) -> object: ...


class ProxyHooks(Protocol):
    """What turns a server into a proxy (implemented by ``proxy.ConnectProxy``)."""

    def open_tunnel(self, target: str) -> Tunnel | Response:
        """Answers ``CONNECT target``: a tunnel to open, or a refusal to send."""
        ...

    def unknown_host(self, request: Request) -> Response:
        """Answers a request for a host the router does not serve (a 502)."""
        ...


class ConnectionOwner(Protocol):
    """What a :class:`Connection` uses of its server (``server.RegistryServer``)."""

    record: ExchangeSink | None
    proxy: ProxyHooks | None
    idle_timeout: float
    head_timeout: float
    zero_copy: bool
    stopping: threading.Event
    handshake_failures: list[tuple[int, str]]

    def track(self, old: socket.socket, new: socket.socket) -> None:
        """Replaces a tracked socket (after a TLS upgrade)."""
        ...

    def set_idle(self, conn: Connection, idle: bool) -> None:
        """Marks *conn* as waiting for its next request (evictable) or busy."""
        ...

    def dispatch(self, request: Request, *, proxied: bool) -> Response:
        """Routes a request to its handler."""
        ...

    def spool_dir(self) -> Path:
        """The server's directory for upload bodies."""
        ...

    def responding(self) -> contextlib.AbstractContextManager[None]:
        """A context marking one response being written."""
        ...


def subject_string(cert: dict[str, Any] | None) -> str | None:
    """Formats a peer certificate's subject as ``CN=x,O=y`` (None without a cert)."""
    if not cert:
        return None
    parts = [
        f"{_RDN_NAMES.get(key, key)}={value}"
        for rdn in cert.get("subject", ())
        for key, value in rdn
    ]
    return ",".join(parts)


class Connection:
    """State of one client connection; :meth:`serve` runs on its own thread."""

    def __init__(
        self, server: ConnectionOwner, sock: socket.socket, connection_id: int
    ):
        self.server = server
        self.sock = sock
        self.id = connection_id
        self.scheme = "http"
        self.reader = LineReader(sock)
        self.client_subject: str | None = None
        self.alpn: str | None = None
        self.tunnel: Tunnel | None = None

    def start_tls(self, context: ssl.SSLContext) -> bool:
        """Wraps the socket in server-side TLS; False (and recorded) on failure."""
        self.sock.settimeout(_HANDSHAKE_TIMEOUT)
        tls = context.wrap_socket(
            self.sock, server_side=True, do_handshake_on_connect=False
        )
        self.server.track(self.sock, tls)
        self.sock = tls
        self.reader = LineReader(tls)
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            self.server.handshake_failures.append((self.id, str(exc)))
            return False
        self.scheme = "https"
        self.client_subject = subject_string(tls.getpeercert())
        self.alpn = tls.selected_alpn_protocol()
        return True

    def close(self) -> None:
        """Closes the socket (a plain close: FIN, no TLS close_notify wait)."""
        with contextlib.suppress(OSError):
            self.sock.close()

    def serve(self) -> None:
        """Serves requests until the connection ends."""
        self.sock.settimeout(self.server.idle_timeout)
        while not self.server.stopping.is_set():
            try:
                parsed = self._read_request()
            except MessageError as err:
                self._refuse(err)
                return
            except OSError:  # timeouts, resets, TLS errors: the client is gone
                return
            if parsed is None:
                return
            head, request = parsed
            if head.method == "CONNECT":
                if not self._connect(head.target, request):
                    return
                continue
            proxied = self.tunnel is not None or (
                self.server.proxy is not None and not head.target.startswith("/")
            )
            try:
                response = self.server.dispatch(request, proxied=proxied)
                if not self._respond(
                    request, head, response, proxied_via=self._via(request, proxied)
                ):
                    return
            finally:
                body: object = request.body
                if isinstance(body, SpooledBody):
                    body.close()

    def _via(self, request: Request, proxied: bool) -> str | None:
        if self.tunnel is not None:
            return self.tunnel.target
        return request.host if proxied else None

    def _read_head(self) -> tuple[RequestHead, Headers] | None:
        # The first byte may take the idle timeout; the whole head then has
        # head_timeout, however it trickles in (a line every few seconds included).
        self.server.set_idle(self, True)
        try:
            if not self.reader.wait_for_data():
                return None
        finally:
            self.server.set_idle(self, False)
        self.reader.deadline = time.monotonic() + self.server.head_timeout
        try:
            return self._read_head_lines()
        finally:
            self.reader.deadline = None

    def _read_head_lines(self) -> tuple[RequestHead, Headers] | None:
        line = self.reader.readline()
        while line in (b"\r\n", b"\n"):  # RFC 9112 2.2: ignore leading empty lines
            line = self.reader.readline()
        if not line:
            return None
        head = _http1.parse_request_line(line)
        headers = Headers()
        for _ in range(_http1.MAX_HEADERS):
            field = self.reader.readline()
            if field in (b"\r\n", b"\n"):
                return head, headers
            if not field:
                raise MessageError("connection closed inside the header block")
            if field[:1] in (b" ", b"\t"):  # RFC 9112 5.2: obs-fold is rejected
                raise MessageError("obsolete line folding")
            headers.add(*_http1.parse_header_line(field))
        raise MessageError("too many header fields", 431)

    def _read_body(self, head: RequestHead, headers: Headers, path: str) -> bytes:
        framing = _http1.body_framing(headers)
        if framing.length > MAX_BODY:
            raise MessageError("request body too large", 413)
        expects = (headers.get("Expect") or "").strip().lower()
        # RFC 9110 10.1.1: answer 100 before reading a body the client holds back.
        has_body = framing.chunked or framing.length > 0
        if expects == "100-continue" and head.version >= (1, 1) and has_body:
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if _UPLOAD_PATH in path and (framing.chunked or framing.length > SPOOL_OVER):
            spooled = spool_body(
                self.reader,
                chunked=framing.chunked,
                length=framing.length,
                limit=MAX_BODY,
                directory=self.server.spool_dir(),
            )
            # Request.body says bytes; the upload handlers also take a SpooledBody
            # (len, bool, read), and anything else would fail loudly, not silently.
            return cast("bytes", spooled)
        if framing.chunked:
            return self.reader.read_chunked(MAX_BODY)
        return self.reader.read_exact(framing.length) if framing.length else b""

    def _read_request(self) -> tuple[RequestHead, Request] | None:
        parsed = self._read_head()
        if parsed is None:
            return None
        head, headers = parsed
        if head.method == "CONNECT":
            request = Request("CONNECT", "", headers=headers, host=head.target)
            return head, self._stamp(request)
        authority, path, query = _http1.split_target(head.target)
        body = self._read_body(head, headers, path)
        host = authority or headers.get("Host") or ""
        if self.tunnel is not None:
            host = self.tunnel.host
        request = Request(head.method, path, query, headers, body, host)
        return head, self._stamp(request)

    def _stamp(self, request: Request) -> Request:
        request.scheme = self.scheme
        request.connection_id = self.id
        request.client_cert_subject = self.client_subject
        request.alpn = self.alpn
        request.received = time.time()
        return request

    def _refuse(self, err: MessageError) -> None:
        """Answers an unparseable request and records it; the connection then ends."""
        request = self._stamp(Request("-", "", host=""))
        head = RequestHead("-", "", (1, 1))
        with contextlib.suppress(OSError):
            response = plain_response(err.status, f"{err.reason}\n")
            response.fault = "malformed-request"
            self._respond(request, head, response, proxied_via=None, close=True)

    def _record(
        self,
        request: Request,
        status: int,
        sent: int,
        fault: str | None,
        via: str | None,
        announced: int | None = None,
    ) -> None:
        if self.server.record is not None:
            self.server.record(
                request,
                status=status,
                bytes_sent=sent,
                fault=fault,
                proxied_via=via,
                bytes_announced=announced,
            )

    def _connect(self, target: str, request: Request) -> bool:
        """Handles ``CONNECT target``; True when the tunnel is open."""
        hooks = self.server.proxy
        if hooks is None or self.tunnel is not None:
            refusal = plain_response(405, "CONNECT is not served here\n")
        else:
            opened = hooks.open_tunnel(target)
            if isinstance(opened, Tunnel):
                self._record(request, 200, 0, None, target)
                self.sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if self.reader.buffered():  # the client spoke before the 200
                    return False
                self.tunnel = opened
                return opened.ssl_context is None or self.start_tls(opened.ssl_context)
            refusal = opened
        head = RequestHead("CONNECT", target, (1, 1))
        self._respond(request, head, refusal, proxied_via=target, close=True)
        return False

    def _respond(
        self,
        request: Request,
        head: RequestHead,
        response: Response,
        *,
        proxied_via: str | None,
        close: bool = False,
    ) -> bool:
        """Writes ``response``; True when the connection can serve another request."""
        with self.server.responding():
            return self._write_response(
                request, head, response, proxied_via=proxied_via, close=close
            )

    def _write_response(
        self,
        request: Request,
        head: RequestHead,
        response: Response,
        *,
        proxied_via: str | None,
        close: bool,
    ) -> bool:
        status = response.status
        close = close or _http1.wants_close(head.version, request.headers)
        bodiless = status < 200 or status in (204, 304)
        no_body = bodiless or request.method == "HEAD"
        length = None if bodiless else _http1.announced_length(response, request.method)
        body = response.body
        if length is None and not no_body and head.version < (1, 1):
            body = _materialise(body)  # HTTP/1.0 has no chunked coding
            length = len(body)
        delivery = response.delivery
        cuts = [
            c
            for c in (length, delivery.truncate_at, delivery.reset_at)
            if c is not None
        ]
        writer = BodyWriter(
            self.sock,
            delivery,
            cut=min(cuts) if cuts else None,
            stop=self.server.stopping,
            zero_copy=self.server.zero_copy
            and not isinstance(self.sock, ssl.SSLSocket),
        )
        wire_head = _http1.format_response_head(
            status, response.headers, length=length, close=close, bodiless=bodiless
        )
        complete = False
        try:
            if delivery.delay_s:
                self.server.stopping.wait(delivery.delay_s)
            self._write(
                wire_head, body, writer, no_body=no_body, chunked=length is None
            )
            complete = no_body or length is None or writer.sent == length
        except OSError:
            return False
        finally:
            _close_body(body)
            self._record(
                request, status, writer.sent, response.fault, proxied_via, length
            )
        if delivery.reset_at is not None:
            wait_unsent(self.sock, 2.0)
            abort(self.sock)
            return False
        return complete and delivery.truncate_at is None and not close

    def _write(
        self,
        wire_head: bytes,
        body: object,
        writer: BodyWriter,
        *,
        no_body: bool,
        chunked: bool,
    ) -> None:
        plain = (
            writer.delivery.drip_bytes_per_s is None
            and writer.delivery.stall_after is None
        )
        if no_body:
            self.sock.sendall(wire_head)
        elif isinstance(body, bytes) and plain and len(body) <= _SMALL_BODY:
            piece = body[: writer.cut] if writer.cut is not None else body
            self.sock.sendall(wire_head + piece)  # one segment for small answers
            writer.sent = len(piece)
        elif isinstance(body, FileBody):
            fileobj = _open_region(body)
            with fileobj:
                self.sock.sendall(wire_head)
                writer.write_file(fileobj, body.offset, body.length)
        elif isinstance(body, bytes):
            self.sock.sendall(wire_head)
            writer.write(body)
        elif chunked:
            self.sock.sendall(wire_head)
            self._write_chunked(writer, _chunks(body))
        else:
            self.sock.sendall(wire_head)
            writer.write_iter(_chunks(body))

    def _write_chunked(self, writer: BodyWriter, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            if not chunk:
                continue
            if writer.done:
                return
            self.sock.sendall(b"%x\r\n" % len(chunk))
            before = writer.sent
            writer.write(chunk)
            if writer.sent - before < len(chunk):
                return  # cut inside the chunk: the stream ends short
            self.sock.sendall(b"\r\n")
        if not writer.done:
            self.sock.sendall(b"0\r\n\r\n")


def _open_region(body: FileBody) -> BinaryIO:
    try:
        return body.path.open("rb")
    except OSError as exc:
        # Not the client's doing: a simulator bug that check() must re-raise,
        # so it must not look like a dropped connection (OSError).
        raise RuntimeError(f"FileBody {body.path} cannot be opened: {exc}") from exc


def _chunks(body: object) -> Iterable[bytes]:
    if isinstance(body, Iterable):
        return (bytes(chunk) for chunk in body)
    raise TypeError(f"unsupported response body type {type(body).__name__}")


def _materialise(body: object) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, FileBody):
        with body.path.open("rb") as fileobj:
            fileobj.seek(body.offset)
            return fileobj.read(body.length)
    return b"".join(_chunks(body))


def _close_body(body: object) -> None:
    close = getattr(body, "close", None)
    if callable(close) and not isinstance(body, bytes | FileBody):
        close()
