"""refpull.registry.transport: proxies, timeouts, TLS routing and the client (XPORT-*, TLS-006/007).

Every server here listens on 127.0.0.1; hosts like ``registry.test`` are only ever
reached through a recording proxy on loopback, so no name is resolved by DNS.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import trustme

from refpull.registry.transport import TransportSettings, make_client, proxy_for
from refpull.settings.config import TLSConfig
from refpull.settings.hosts import RegistryHost
from refpull.settings.tlsconfig import ssl_context

P = "http://proxy.test:3128"


@pytest.mark.behavior("XPORT-001")
@pytest.mark.parametrize(
    ("url", "environ", "expected"),
    [
        pytest.param("https://r.test/v2/", {"HTTPS_PROXY": P}, P, id="https-proxy"),
        pytest.param(
            "https://r.test/v2/", {"HTTP_PROXY": P}, None, id="https-ignores-http-proxy"
        ),
        pytest.param("http://r.test/v2/", {"HTTP_PROXY": P}, P, id="http-proxy"),
        pytest.param(
            "http://r.test/v2/", {"HTTPS_PROXY": P}, None, id="http-ignores-https-proxy"
        ),
        pytest.param("https://r.test/", {"https_proxy": P}, P, id="lower-case"),
        pytest.param(
            "https://r.test/",
            {"HTTPS_PROXY": P, "https_proxy": "http://other:1"},
            P,
            id="upper-case-wins",
        ),
        pytest.param(
            "https://r.test/",
            {"HTTPS_PROXY": "", "https_proxy": P},
            P,
            id="empty-upper",
        ),
        pytest.param(
            "http://127.0.0.1:5000/", {"HTTP_PROXY": P}, None, id="loopback-v4"
        ),
        pytest.param(
            "http://127.0.0.2:5000/", {"HTTP_PROXY": P}, None, id="loopback-127-8"
        ),
        pytest.param("http://[::1]:5000/", {"HTTP_PROXY": P}, None, id="loopback-v6"),
        pytest.param(
            "http://[::ffff:127.0.0.1]/", {"HTTP_PROXY": P}, None, id="loopback-mapped"
        ),
        pytest.param("http://localhost:5000/", {"HTTP_PROXY": P}, None, id="localhost"),
        pytest.param(
            "http://LOCALHOST:5000/", {"HTTP_PROXY": P}, P, id="localhost-exact-case"
        ),
        pytest.param(
            "https://r.test/",
            {"HTTPS_PROXY": P, "NO_PROXY": "*"},
            None,
            id="no-proxy-star",
        ),
        pytest.param(
            "https://r.test/",
            {"HTTPS_PROXY": P, "NO_PROXY": "r.test"},
            None,
            id="no-proxy-host",
        ),
        pytest.param(
            "https://a.r.test/",
            {"HTTPS_PROXY": P, "NO_PROXY": "r.test"},
            None,
            id="no-proxy-subdomain",
        ),
        pytest.param(
            "https://xr.test/",
            {"HTTPS_PROXY": P, "NO_PROXY": "r.test"},
            P,
            id="no-proxy-not-a-suffix-label",
        ),
        pytest.param(
            "https://r.test/",
            {"HTTPS_PROXY": P, "NO_PROXY": ".r.test"},
            P,
            id="dot-not-apex",
        ),
        pytest.param(
            "https://a.r.test/",
            {"HTTPS_PROXY": P, "no_proxy": "*.r.test"},
            None,
            id="star-dot",
        ),
        pytest.param(
            "https://r.test:5000/",
            {"HTTPS_PROXY": P, "NO_PROXY": "r.test:5000"},
            None,
            id="port-match",
        ),
        pytest.param(
            "https://r.test/",
            {"HTTPS_PROXY": P, "NO_PROXY": "r.test:5000"},
            P,
            id="port-mismatch",
        ),
        pytest.param(
            "https://r.test/",
            {"HTTPS_PROXY": P, "NO_PROXY": "r.test:443"},
            None,
            id="default-port",
        ),
        pytest.param(
            "https://10.1.2.3/",
            {"HTTPS_PROXY": P, "NO_PROXY": "10.0.0.0/8"},
            None,
            id="cidr",
        ),
        pytest.param(
            "https://11.1.2.3/",
            {"HTTPS_PROXY": P, "NO_PROXY": "10.0.0.0/8"},
            P,
            id="cidr-miss",
        ),
        pytest.param(
            "https://10.1.2.3:8443/",
            {"HTTPS_PROXY": P, "NO_PROXY": "10.1.2.3:8443"},
            None,
            id="ip-port",
        ),
        pytest.param(
            "https://10.1.2.3/",
            {"HTTPS_PROXY": P, "NO_PROXY": "2.3"},
            None,
            id="ip-as-domain-suffix",
        ),
        pytest.param(
            "https://r.test/",
            {"HTTPS_PROXY": P, "NO_PROXY": " other.test , R.TEST "},
            None,
            id="list-trim-case",
        ),
        pytest.param(
            "https://r.test/",
            {"HTTPS_PROXY": "proxy.test:3128"},
            "http://proxy.test:3128",
            id="schemeless-proxy",
        ),
        pytest.param(
            "https://r.test/",
            {"HTTPS_PROXY": "socks5://127.0.0.1:1080"},
            "socks5://127.0.0.1:1080",
            id="socks5",
        ),
        pytest.param(
            "ftp://r.test/",
            {"HTTPS_PROXY": P, "HTTP_PROXY": P},
            None,
            id="other-scheme",
        ),
        pytest.param(
            "https://r.test/",
            {"HTTPS_PROXY": P, "REQUEST_METHOD": "GET"},
            P,
            id="cgi-https",
        ),
    ],
)
def test_proxy_for_follows_go(
    url: str, environ: dict[str, str], expected: str | None
) -> None:
    assert proxy_for(url, environ) == expected


@pytest.mark.behavior("XPORT-001")
def test_cgi_refuses_http_proxy() -> None:
    environ = {"HTTP_PROXY": P, "REQUEST_METHOD": "GET"}
    with pytest.raises(
        ValueError, match="refusing to use HTTP_PROXY value in CGI environment"
    ):
        proxy_for("http://r.test/", environ)


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every request with 200 and records (request line, client port)."""

    protocol_version = "HTTP/1.1"
    log: list[tuple[str, int]]
    status = 200

    def do_GET(self) -> None:
        self.log.append((self.requestline, self.client_address[1]))
        self.send_response(self.status)
        if self.status in (301, 302, 307, 308):
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(
    status: int = 200, tls: ssl.SSLContext | None = None
) -> Iterator[tuple[int, list[tuple[str, int]]]]:
    log: list[tuple[str, int]] = []
    handler = type("Handler", (_Recorder,), {"log": log, "status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1], log
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


def _host(scheme: str, host: str, tls: TLSConfig | None = None) -> RegistryHost:
    return RegistryHost(
        endpoint=f"{scheme}://{host}",
        scheme=scheme,
        host=host,
        path="/v2",
        tls=tls,
        ssl_context=ssl_context(tls) if tls else None,
    )


@pytest.mark.behavior("XPORT-001")
def test_client_uses_the_proxy_for_remote_hosts_only() -> None:
    with serve() as (proxy_port, proxy_log), serve() as (direct_port, direct_log):
        environ = {"HTTP_PROXY": f"http://127.0.0.1:{proxy_port}"}
        with make_client(_host("http", "registry.test"), environ=environ) as client:
            assert client.get("http://registry.test/v2/").status_code == 200
            assert client.get(f"http://127.0.0.1:{direct_port}/v2/").status_code == 200
    assert [line for line, _ in proxy_log] == ["GET http://registry.test/v2/ HTTP/1.1"]
    assert [line for line, _ in direct_log] == ["GET /v2/ HTTP/1.1"]


@pytest.mark.behavior("XPORT-001")
def test_client_ignores_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    with (
        serve() as (port, log),
        make_client(_host("http", f"127.0.0.1:{port}")) as client,
    ):
        assert client.get(f"http://127.0.0.1:{port}/v2/").status_code == 200
    assert len(log) == 1


@pytest.mark.behavior("XPORT-005")
def test_redirects_are_not_followed() -> None:
    with (
        serve(status=307) as (port, log),
        make_client(_host("http", f"127.0.0.1:{port}")) as c,
    ):
        response = c.get(f"http://127.0.0.1:{port}/v2/a/blobs/sha256:00")
    assert response.status_code == 307
    assert response.headers["Location"] == "http://127.0.0.1:9/elsewhere"
    assert len(log) == 1


@pytest.mark.behavior("XPORT-002")
def test_go_timeouts_and_the_added_read_timeout() -> None:
    settings = TransportSettings()
    assert (settings.connect_timeout, settings.keep_alive, settings.idle_timeout) == (
        30,
        30,
        30,
    )
    assert (settings.tls_handshake_timeout, settings.max_idle_connections) == (10, 10)
    assert settings.read_timeout == 60
    quick = TransportSettings(read_timeout=0.3)
    with (
        silent_server() as port,
        make_client(_host("http", f"127.0.0.1:{port}"), quick) as c,
    ):
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            c.get(f"http://127.0.0.1:{port}/v2/")
        assert time.monotonic() - started < 5


@pytest.mark.behavior("TLS-006")
def test_tls_handshake_has_its_own_timeout() -> None:
    quick = TransportSettings(tls_handshake_timeout=0.3)
    with (
        silent_server() as port,
        make_client(_host("https", f"127.0.0.1:{port}"), quick) as c,
    ):
        started = time.monotonic()
        with pytest.raises(
            httpx.ConnectTimeout, match="net/http: TLS handshake timeout"
        ):
            c.get(f"https://127.0.0.1:{port}/v2/")
        assert time.monotonic() - started < 5


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.mark.behavior("XPORT-003")
def test_requests_are_http11_even_when_h2_is_offered(
    ca: trustme.CA, tmp_path: Path
) -> None:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    server.set_alpn_protocols(["h2", "http/1.1"])
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with serve(tls=server) as (port, log):
        host = _host("https", f"127.0.0.1:{port}", TLSConfig(ca_file=str(ca_file)))
        with make_client(host) as client:
            response = client.get(f"https://127.0.0.1:{port}/v2/")
    assert response.http_version == "HTTP/1.1"
    assert log[0][0] == "GET /v2/ HTTP/1.1"


@pytest.mark.behavior("XPORT-004", "HOST-006")
def test_connections_are_reused_within_one_client_only() -> None:
    with serve() as (port, log):
        host = _host("http", f"127.0.0.1:{port}")
        with make_client(host) as first:
            first.get(f"http://127.0.0.1:{port}/v2/a")
            first.get(f"http://127.0.0.1:{port}/v2/b")
        with make_client(host) as second:
            second.get(f"http://127.0.0.1:{port}/v2/c")
    ports = [client_port for _, client_port in log]
    assert ports[0] == ports[1]
    assert ports[2] != ports[0]


@pytest.mark.behavior("XPORT-006")
def test_localhost_reaches_an_ipv4_only_server() -> None:
    with (
        serve() as (port, log),
        make_client(_host("http", f"localhost:{port}")) as client,
    ):
        assert client.get(f"http://localhost:{port}/v2/").status_code == 200
    assert len(log) == 1


@pytest.mark.behavior("TLS-007", "TLS-004")
def test_skip_verify_applies_to_the_endpoint_host_only(ca: trustme.CA) -> None:
    untrusted = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(untrusted)
    with serve(tls=untrusted) as (own, _), serve(tls=untrusted) as (other, other_log):
        host = _host("https", f"127.0.0.1:{own}", TLSConfig(insecure_skip_verify=True))
        with make_client(host) as client:
            assert client.get(f"https://127.0.0.1:{own}/v2/").status_code == 200
            # e.g. a token realm or redirect target on another port: verified.
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                client.get(f"https://127.0.0.1:{other}/token")
    assert other_log == []


@pytest.mark.behavior("TLS-007")
def test_configured_ca_is_trusted_for_other_hosts(
    ca: trustme.CA, tmp_path: Path
) -> None:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with serve(tls=server) as (token_port, log):
        host = _host("https", "registry.test", TLSConfig(ca_file=str(ca_file)))
        with make_client(host) as client:
            assert (
                client.get(f"https://127.0.0.1:{token_port}/token").status_code == 200
            )
    assert len(log) == 1
