"""Socket-level behaviour of registry_sim.server on 127.0.0.1 (real sockets, httpx)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import trustme

from registry_sim.journal import Journal
from registry_sim.server import RegistryServer, Router, split_host_port
from registry_sim.wire import Delivery, FileBody, Headers, Request, Response

BLOB = bytes(range(256)) * 4096  # 1 MiB, position-dependent so slices are checkable


@dataclass
class Recorded:
    request: Request
    status: int
    bytes_sent: int
    fault: str | None
    proxied_via: str | None
    bytes_announced: int | None


@dataclass
class Recorder:
    """An ExchangeSink that keeps what the server reports."""

    entries: list[Recorded] = field(default_factory=list)

    def __call__(
        self,
        request: Request,
        *,
        status: int,
        bytes_sent: int,
        fault: str | None,
        proxied_via: str | None,
        bytes_announced: int | None,
    ) -> None:
        self.entries.append(
            Recorded(request, status, bytes_sent, fault, proxied_via, bytes_announced)
        )

    def paths(self) -> list[str]:
        return [e.request.path for e in self.entries]


@pytest.fixture
def blob_file(tmp_path: Path) -> Path:
    path = tmp_path / "blob"
    path.write_bytes(BLOB)
    return path


def make_handler(blob_file: Path) -> Callable[[Request], Response]:
    """A tiny app: each path shows one kind of response the server must write."""

    def handle(request: Request) -> Response:
        if request.path == "/echo":
            te = request.headers.get("Transfer-Encoding") or "-"
            return Response(200, Headers([("X-Request-TE", te)]), request.body)
        if request.path == "/file":
            return Response(200, body=FileBody(blob_file, 0, len(BLOB)))
        if request.path == "/range":  # what the app answers for Range: bytes=1000-1999
            headers = Headers([("Content-Range", f"bytes 1000-1999/{len(BLOB)}")])
            return Response(206, headers, FileBody(blob_file, 1000, 1000))
        if request.path == "/stream":
            return Response(200, body=iter([b"one,", b"", b"two,", b"three"]))
        if request.path == "/who":
            text = f"{request.scheme} {request.host} {request.client_cert_subject}"
            return Response(200, body=text.encode())
        if request.path == "/boom":
            raise RuntimeError("handler bug")
        return Response(200, Headers([("Content-Type", "text/plain")]), b"hello")

    return handle


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(blob_file: Path, recorder: Recorder) -> Iterator[RegistryServer]:
    with RegistryServer(make_handler(blob_file), record=recorder) as srv:
        yield srv


def raw_exchange(
    srv: RegistryServer, data: bytes, *, until: bytes | None = None
) -> bytes:
    """Sends raw bytes and reads until EOF (or until ``until`` has arrived)."""
    with socket.create_connection((srv.host, srv.port), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while until is None or until not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        pytest.param("registry.test:5000", ("registry.test", "5000"), id="name-port"),
        pytest.param("registry.test", ("registry.test", None), id="name"),
        pytest.param("[::1]:5000", ("[::1]", "5000"), id="ipv6-port"),
        pytest.param("[::1]", ("[::1]", None), id="ipv6"),
        pytest.param("::1", ("::1", None), id="ipv6-bare"),
    ],
)
def test_split_host_port_separates_the_port(
    host: str, expected: tuple[str, str | None]
) -> None:
    assert split_host_port(host) == expected


def _named(name: str) -> Callable[[Request], Response]:
    return lambda _request: Response(200, body=name.encode())


@pytest.mark.parametrize(
    ("host", "served_by"),
    [
        pytest.param("mirror.test:5000", "exact", id="exact-host-port-wins"),
        pytest.param("mirror.test:6000", "bare", id="bare-name-for-other-port"),
        pytest.param("MIRROR.test", "bare", id="case-insensitive"),
        pytest.param("other.test", "default", id="unknown-goes-to-default"),
    ],
)
def test_router_prefers_host_port_then_name_then_default(
    host: str, served_by: str
) -> None:
    router = Router(
        {"mirror.test:5000": _named("exact"), "mirror.test": _named("bare")},
        default=_named("default"),
    )
    handler = router.resolve(host)
    assert handler is not None
    assert handler(Request("GET", "/")).body == served_by.encode()


def test_router_without_default_knows_only_named_hosts() -> None:
    router = Router({"a.test": _named("a")})
    assert router.resolve("b.test") is None
    router.add("b.test", _named("b"))
    assert router.names() == ["a.test", "b.test"]
    router.remove("a.test")
    assert router.named("a.test") is None


def test_keep_alive_serves_several_requests_on_one_connection(
    server: RegistryServer, recorder: Recorder
) -> None:
    with httpx.Client() as client:
        for _ in range(3):
            assert client.get(f"{server.url}/").text == "hello"
    server.quiesce()
    ids = {e.request.connection_id for e in recorder.entries}
    assert len(recorder.entries) == 3
    assert len(ids) == 1, f"got connection ids {ids}, want one persistent connection"


def test_connection_close_is_honoured(server: RegistryServer) -> None:
    raw = raw_exchange(
        server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close\r\n" in raw
    assert raw.endswith(b"hello")


def test_chunked_request_body_is_decoded(server: RegistryServer) -> None:
    with httpx.Client() as client:
        response = client.post(
            f"{server.url}/echo", content=iter([b"abc", b"", b"def"])
        )
    assert response.headers["X-Request-TE"] == "chunked"
    assert response.content == b"abcdef"


def test_chunked_request_with_extensions_and_trailers_is_decoded(
    server: RegistryServer,
) -> None:
    body = b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n"
    head = b"PUT /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    raw = raw_exchange(server, head + b"Connection: close\r\n\r\n" + body)
    assert raw.endswith(b"\r\n\r\nabcde")


def test_expect_100_continue_gets_an_interim_answer_before_the_body(
    server: RegistryServer,
) -> None:
    head = b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(head)
        interim = sock.recv(100)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"data")
        final = sock.recv(4096)
    assert final.startswith(b"HTTP/1.1 200 OK\r\n")
    assert final.endswith(b"\r\n\r\ndata")


def test_head_announces_the_length_and_sends_no_body(server: RegistryServer) -> None:
    # A GET right after the HEAD on the same connection parses only if no body leaked.
    requests = (
        b"HEAD /file HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    raw = raw_exchange(server, requests, until=b"hello")
    head_answer, _, rest = raw.partition(b"\r\n\r\n")
    assert f"Content-Length: {len(BLOB)}".encode() in head_answer
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
    assert rest.endswith(b"hello")


@pytest.mark.parametrize("zero_copy", [True, False], ids=["sendfile", "copy"])
@pytest.mark.parametrize("path", ["/file", "/range"])
def test_file_bodies_arrive_intact_over_plain_tcp(
    server: RegistryServer, path: str, zero_copy: bool
) -> None:
    server.zero_copy = zero_copy
    with httpx.Client() as client:
        response = client.get(f"{server.url}{path}")
    if path == "/range":
        assert response.status_code == 206
        assert response.content == BLOB[1000:2000]
    else:
        assert response.content == BLOB


def test_streamed_body_without_length_is_chunked(server: RegistryServer) -> None:
    with httpx.Client() as client:
        response = client.get(f"{server.url}/stream")
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert response.content == b"one,two,three"


def test_http10_client_gets_a_length_and_a_close(server: RegistryServer) -> None:
    raw = raw_exchange(server, b"GET /stream HTTP/1.0\r\n\r\n")
    assert b"Content-Length: 13\r\n" in raw
    assert b"Connection: close\r\n" in raw
    assert raw.endswith(b"one,two,three")


def test_tcp_nodelay_is_set_on_accepted_sockets(server: RegistryServer) -> None:
    seen: list[int] = []
    with httpx.Client() as client:
        assert client.get(f"{server.url}/").status_code == 200
        # White-box: the accepted sockets are the server's; read the option back.
        for sock in list(server._sockets):
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    assert seen
    assert all(seen), f"TCP_NODELAY per accepted socket: {seen}"


def test_small_responses_do_not_wait_for_delayed_acks(server: RegistryServer) -> None:
    with httpx.Client() as client:
        client.get(f"{server.url}/")
        started = time.monotonic()
        for _ in range(20):
            client.post(f"{server.url}/echo", content=b"x" * 100)
        elapsed = time.monotonic() - started
    # With Nagle + delayed ACK each exchange costs ~40 ms: 20 would take ~0.8 s.
    assert elapsed < 0.5, f"20 small exchanges took {elapsed:.3f}s"


def _fault_server(
    delivery: Delivery, recorder: Recorder, blob_file: Path, *, fault: str = "f"
) -> RegistryServer:
    def handle(_request: Request) -> Response:
        body = FileBody(blob_file, 0, len(BLOB))
        return Response(200, body=body, delivery=delivery, fault=fault)

    return RegistryServer(handle, record=recorder)


def test_truncate_closes_after_that_many_bytes(
    recorder: Recorder, blob_file: Path
) -> None:
    with _fault_server(Delivery(truncate_at=5000), recorder, blob_file) as srv:
        raw = raw_exchange(srv, b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert f"Content-Length: {len(BLOB)}".encode() in head  # the announced length stays
    assert body == BLOB[:5000]
    assert (recorder.entries[0].bytes_sent, recorder.entries[0].fault) == (5000, "f")


def test_truncate_is_seen_by_httpx_as_an_incomplete_body(
    recorder: Recorder, blob_file: Path
) -> None:
    with (
        _fault_server(Delivery(truncate_at=100), recorder, blob_file) as srv,
        httpx.Client() as client,
        pytest.raises(httpx.RemoteProtocolError, match="received 100 bytes"),
    ):
        client.get(f"{srv.url}/b")


def _read_until_error(sock: socket.socket) -> tuple[bytes, OSError | None]:
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
            time.sleep(0.01)  # let the RST arrive while we still read
    except OSError as exc:
        return received, exc
    return received, None


def test_reset_sends_the_bytes_then_an_rst(recorder: Recorder, blob_file: Path) -> None:
    with (
        _fault_server(Delivery(reset_at=3000), recorder, blob_file) as srv,
        socket.create_connection((srv.host, srv.port), timeout=5) as sock,
    ):
        sock.sendall(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        received, error = _read_until_error(sock)
    assert isinstance(error, ConnectionResetError), f"got {error!r}, want a reset"
    assert received.partition(b"\r\n\r\n")[2] == BLOB[:3000]
    assert recorder.entries[0].bytes_sent == 3000


def test_drip_throttles_the_body(recorder: Recorder, blob_file: Path) -> None:
    delivery = Delivery(drip_bytes_per_s=20000, truncate_at=4000)
    with _fault_server(delivery, recorder, blob_file) as srv, httpx.Client() as client:
        started = time.monotonic()
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(f"{srv.url}/b")
        elapsed = time.monotonic() - started
    assert elapsed >= 0.15, f"4000 bytes at 20000 B/s arrived in {elapsed:.3f}s"
    assert recorder.entries[0].bytes_sent == 4000


@pytest.mark.parametrize(
    "delivery",
    [
        pytest.param(Delivery(delay_s=0.3), id="delay-before-status"),
        pytest.param(Delivery(stall_after=1000, stall_s=0.3), id="stall-mid-body"),
    ],
)
def test_delay_and_stall_pause_the_response(
    delivery: Delivery, recorder: Recorder, blob_file: Path
) -> None:
    with _fault_server(delivery, recorder, blob_file) as srv, httpx.Client() as client:
        started = time.monotonic()
        response = client.get(f"{srv.url}/b")
        elapsed = time.monotonic() - started
    assert response.content == BLOB
    assert elapsed >= 0.28


def test_announced_length_beyond_the_body_closes_the_connection(
    recorder: Recorder,
) -> None:
    def handle(_request: Request) -> Response:
        return Response(200, body=b"short", length=10)

    with RegistryServer(handle, record=recorder) as srv:
        raw = raw_exchange(srv, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"Content-Length: 10\r\n" in raw
    assert raw.endswith(b"\r\n\r\nshort")
    assert recorder.entries[0].bytes_sent == 5


def test_journal_sink_sees_status_bytes_fault_and_host(
    server: RegistryServer, recorder: Recorder
) -> None:
    with httpx.Client() as client:
        client.get(f"{server.url}/range", headers={"Host": "mirror.test:5000"})
    server.quiesce()
    (entry,) = recorder.entries
    assert (entry.status, entry.bytes_sent, entry.fault) == (206, 1000, None)
    assert entry.bytes_announced == 1000
    assert entry.request.host == "mirror.test:5000"
    assert entry.request.scheme == "http"
    assert entry.proxied_via is None


def test_handler_exception_is_a_500_and_check_reraises(server: RegistryServer) -> None:
    with httpx.Client() as client:
        response = client.get(f"{server.url}/boom")
    assert response.status_code == 500
    assert response.headers["X-Registry-Sim-Bug"] == "RuntimeError"
    with pytest.raises(RuntimeError, match="handler bug"):
        server.check()


@pytest.mark.parametrize(
    ("data", "status"),
    [
        pytest.param(b"GARBAGE\r\n\r\n", 400, id="bad-request-line"),
        pytest.param(b"GET / HTTP/2.0\r\n\r\n", 505, id="http2-on-http1"),
        pytest.param(
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400, id="header-no-colon"
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
            id="both-framings",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400, id="bad-length"
        ),
    ],
)
def test_malformed_requests_are_answered_and_recorded(
    server: RegistryServer, recorder: Recorder, data: bytes, status: int
) -> None:
    raw = raw_exchange(server, data)
    server.quiesce()
    assert raw.startswith(f"HTTP/1.1 {status} ".encode())
    assert recorder.entries[-1].status == status
    assert recorder.entries[-1].fault == "malformed-request"


def test_unknown_host_without_default_is_404(recorder: Recorder) -> None:
    router = Router({"a.test": _named("a")})
    with RegistryServer(router, record=recorder) as srv, httpx.Client() as client:
        served = client.get(f"{srv.url}/", headers={"Host": "a.test"})
        missing = client.get(f"{srv.url}/", headers={"Host": "b.test"})
    assert served.text == "a"
    assert missing.status_code == 404


def test_concurrent_clients_are_served_in_parallel(
    server: RegistryServer, recorder: Recorder
) -> None:
    errors: list[BaseException] = []

    def pull() -> None:
        try:
            with httpx.Client() as client:
                for _ in range(5):
                    assert client.get(f"{server.url}/file").content == BLOB
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=pull) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    server.quiesce()
    assert len(recorder.entries) == 40
    assert len({e.request.connection_id for e in recorder.entries}) == 8


def test_close_ends_idle_connections_and_joins_threads(blob_file: Path) -> None:
    before = threading.active_count()
    srv = RegistryServer(make_handler(blob_file)).start()
    with socket.create_connection((srv.host, srv.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).endswith(b"hello")
        srv.close()  # the connection is idle in keep-alive
        assert sock.recv(4096) == b""
    assert threading.active_count() == before


def test_binds_loopback_on_a_free_port_by_default(blob_file: Path) -> None:
    with RegistryServer(make_handler(blob_file)) as srv:
        assert srv.host == "127.0.0.1"
        assert srv.port > 0
        assert srv.url == f"http://127.0.0.1:{srv.port}"


def test_ipv6_loopback_is_served(blob_file: Path) -> None:
    if not socket.has_ipv6:
        pytest.fail("this machine has no IPv6 loopback")
    with (
        RegistryServer(make_handler(blob_file), host="::1") as srv,
        httpx.Client() as c,
    ):
        assert srv.url.startswith("http://[::1]:")
        assert c.get(f"{srv.url}/").text == "hello"


def test_journal_records_redacted_exchanges(blob_file: Path) -> None:
    journal = Journal()
    with (
        RegistryServer(make_handler(blob_file), record=journal.record_request) as srv,
        httpx.Client(auth=("alice", "s3cret")) as client,
    ):
        client.get(f"{srv.url}/range", headers={"Range": "bytes=1000-1999"})
        srv.quiesce()
        (entry,) = journal.assert_request(method="GET", path="^/range$", status=206)
    assert (entry.bytes_sent, entry.bytes_announced) == (1000, 1000)
    assert entry.auth == ("basic", "alice")
    assert "s3cret" not in journal.render()
    assert entry.selected["Range"] == "bytes=1000-1999"


# --- TLS ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_context(ca: trustme.CA, *names: str, mtls: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    if mtls:
        context.verify_mode = ssl.CERT_REQUIRED
        ca.configure_trust(context)
    return context


def _client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_tls_serves_file_bodies_with_the_ca_trusted(
    ca: trustme.CA, blob_file: Path, recorder: Recorder
) -> None:
    context = _server_context(ca, "127.0.0.1")
    with (
        RegistryServer(
            make_handler(blob_file), ssl_context=context, record=recorder
        ) as srv,
        httpx.Client(verify=_client_context(ca)) as client,
    ):
        assert srv.url.startswith("https://")
        assert client.get(f"{srv.url}/file").content == BLOB
        assert client.get(f"{srv.url}/range").content == BLOB[1000:2000]
        assert client.get(f"{srv.url}/who").text.startswith("https ")
    assert recorder.entries[0].request.scheme == "https"


def test_tls_is_refused_by_a_client_that_does_not_trust_the_ca(
    ca: trustme.CA, blob_file: Path
) -> None:
    context = _server_context(ca, "127.0.0.1")
    with (
        RegistryServer(make_handler(blob_file), ssl_context=context) as srv,
        httpx.Client(verify=_client_context(trustme.CA())) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get(f"{srv.url}/")


def test_mtls_requires_a_client_certificate(
    ca: trustme.CA, blob_file: Path, tmp_path: Path
) -> None:
    context = _server_context(ca, "127.0.0.1", mtls=True)
    with RegistryServer(make_handler(blob_file), ssl_context=context) as srv:
        with (
            httpx.Client(verify=_client_context(ca)) as anonymous,
            pytest.raises(httpx.HTTPError),
        ):
            anonymous.get(f"{srv.url}/who")
        client_ctx = _client_context(ca)
        ca.issue_cert("puller@test", common_name="puller").configure_cert(client_ctx)
        with httpx.Client(verify=client_ctx) as client:
            answer = client.get(f"{srv.url}/who").text
        deadline = time.monotonic() + 2
        while not srv.handshake_failures and time.monotonic() < deadline:
            time.sleep(0.01)
    assert answer.endswith("CN=puller")
    assert srv.handshake_failures, "the anonymous handshake failure is recorded"


def test_sni_picks_the_certificate_for_the_requested_name(
    ca: trustme.CA, blob_file: Path
) -> None:
    contexts = {n: _server_context(ca, n) for n in ("a.test", "b.test")}
    default = _server_context(ca, "127.0.0.1")
    with RegistryServer(
        make_handler(blob_file), ssl_context=default, sni=contexts.get
    ) as srv:
        for name in ("a.test", "b.test"):
            with (
                socket.create_connection((srv.host, srv.port), timeout=5) as raw,
                _client_context(ca).wrap_socket(raw, server_hostname=name) as tls,
            ):
                cert = tls.getpeercert()
                assert cert is not None
                assert ("DNS", name) in cert["subjectAltName"]


def test_missing_file_body_is_a_simulator_bug(tmp_path: Path) -> None:
    def handle(_request: Request) -> Response:
        return Response(200, body=FileBody(tmp_path / "gone", 0, 10))

    with RegistryServer(handle) as srv:
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{srv.url}/")
        srv.close()
        with pytest.raises(RuntimeError, match="cannot be opened"):
            srv.check()
