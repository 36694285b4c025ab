"""Debian's docker-registry (distribution 2.8) accepts tokens from our TokenServer.

The registry is configured with ``auth.token`` pointing at a TokenServer served on
loopback, trusting only the run's CA bundle. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from registry_sim.tls import SimCA
from registry_sim.token_server import TokenServer
from registry_sim.wire import Headers, Request

pytestmark = pytest.mark.interop

REGISTRY = "/usr/bin/docker-registry"
SERVICE = "registry.test"
ISSUER = "registry-sim-interop"
REPO = "t/interop"


def _require(binary: str) -> None:
    """Fail (never skip) when the peer is not installed, naming its Debian package."""
    if shutil.which(binary) is None:
        pytest.fail(
            f"{binary} is missing: install the Debian package docker-registry "
            "(apt-get install docker-registry) to run this interop test"
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(token_server: TokenServer) -> ThreadingHTTPServer:
    """A minimal loopback HTTP front for ``TokenServer.handle`` (test-only)."""

    class Handler(BaseHTTPRequestHandler):
        def _dispatch(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            request = Request(
                method=self.command,
                path=parts.path,
                query_string=parts.query,
                headers=Headers(list(self.headers.items())),
                body=self.rfile.read(length) if length else b"",
                host=self.headers.get("Host") or "",
            )
            response = token_server.handle(request)
            body = response.body if isinstance(response.body, bytes) else b""
            self.send_response(response.status)
            for name, value in response.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _dispatch

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep pytest output clean

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@dataclass
class Setup:
    url: str
    ca: SimCA
    token_servers: dict[str, TokenServer]
    log: Path


def _config(tmp: Path, port: int, realm: str, ca_path: Path) -> Path:
    config = tmp / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: registry-sim-interop\n"
        "auth:\n  token:\n"
        f"    realm: {realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
        f"    rootcertbundle: {ca_path}\n"
    )
    return config


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"docker-registry exited {proc.returncode}:\n{log.read_text()}")
        try:
            httpx.get(f"{url}/v2/", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail(f"docker-registry did not answer within 20 s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    _require(REGISTRY)
    tmp = tmp_path_factory.mktemp("docker-registry")
    ca = SimCA(directory=tmp)
    servers = {
        alg: TokenServer(
            signing=ca.signing_key(alg),
            users={"u": "pw"},
            issuer=ISSUER,
            service=SERVICE,
        )
        for alg in ("ES256", "RS256")
    }
    # The realm serves the ES256 signer; RS256 tokens are minted directly.
    httpd = _serve(servers["ES256"])
    realm = f"http://127.0.0.1:{httpd.server_address[1]}/token"
    port = _free_port()
    config = _config(tmp, port, realm, ca.write_ca(tmp / "ca.pem"))
    log = tmp / "registry.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [REGISTRY, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log)
        yield Setup(url, ca, servers, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        httpd.shutdown()
        httpd.server_close()
        ca.close()


def _token_from_realm(challenge: str, scope: str) -> str:
    """Ask the token server the registry's challenge names (over loopback HTTP)."""
    realm = challenge.split('realm="', 1)[1].split('"', 1)[0]
    assert realm.startswith("http://127.0.0.1:")
    response = httpx.get(
        realm, params={"service": SERVICE, "scope": scope}, auth=("u", "pw"), timeout=5
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def _push_blob(setup: Setup, token: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    auth = {"Authorization": f"Bearer {token}"}
    start = httpx.post(f"{setup.url}/v2/{REPO}/blobs/uploads/", headers=auth, timeout=5)
    assert start.status_code == 202, (start.status_code, start.text)
    location = start.headers["Location"]
    if location.startswith("/"):
        location = setup.url + location
    # keep the upload's own query (_state=...): httpx's params= would replace it
    separator = "&" if "?" in location else "?"
    done = httpx.put(
        f"{location}{separator}digest={digest}",
        content=data,
        headers={**auth, "Content-Type": "application/octet-stream"},
        timeout=5,
    )
    assert done.status_code == 201, (done.status_code, done.text)
    return digest


def test_docker_registry_challenges_with_our_realm_and_service(setup: Setup) -> None:
    response = httpx.get(f"{setup.url}/v2/{REPO}/blobs/sha256:{'0' * 64}", timeout=5)
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="http://127.0.0.1:')
    assert f'service="{SERVICE}"' in challenge
    assert f'scope="repository:{REPO}:pull"' in challenge


def test_docker_registry_accepts_es256_tokens_for_push_and_pull(setup: Setup) -> None:
    ping = httpx.get(f"{setup.url}/v2/", timeout=5)
    challenge = ping.headers["WWW-Authenticate"]
    push = _token_from_realm(challenge, f"repository:{REPO}:pull,push")
    data = b"registry-sim interop blob\n"
    digest = _push_blob(setup, push, data)
    pull = _token_from_realm(challenge, f"repository:{REPO}:pull")
    got = httpx.get(
        f"{setup.url}/v2/{REPO}/blobs/{digest}",
        headers={"Authorization": f"Bearer {pull}"},
        follow_redirects=True,
        timeout=5,
    )
    assert got.status_code == 200, (got.status_code, got.text, setup.log.read_text())
    assert got.content == data
    requests = setup.token_servers["ES256"].requests
    assert [r.scopes for r in requests[-2:]] == [
        (f"repository:{REPO}:pull,push",),
        (f"repository:{REPO}:pull",),
    ]


def test_docker_registry_accepts_rs256_tokens(setup: Setup) -> None:
    server = setup.token_servers["RS256"]
    token = server.mint(
        "u", [{"type": "repository", "name": REPO, "actions": ["pull"]}]
    )
    got = httpx.get(
        f"{setup.url}/v2/{REPO}/tags/list",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert got.status_code in (200, 404), (got.status_code, got.text)


def test_docker_registry_refuses_a_pull_token_for_push(setup: Setup) -> None:
    server = setup.token_servers["ES256"]
    token = server.mint(
        "u", [{"type": "repository", "name": REPO, "actions": ["pull"]}]
    )
    response = httpx.post(
        f"{setup.url}/v2/{REPO}/blobs/uploads/",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert response.status_code == 401
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_docker_registry_refuses_tokens_from_another_ca(setup: Setup) -> None:
    with SimCA() as other:
        foreign = TokenServer(
            signing=other.signing_key(), issuer=ISSUER, service=SERVICE
        )
        token = foreign.mint(
            "u", [{"type": "repository", "name": REPO, "actions": ["pull"]}]
        )
    response = httpx.get(
        f"{setup.url}/v2/{REPO}/tags/list",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_missing_docker_registry_fails_naming_the_debian_package() -> None:
    with pytest.raises(pytest.fail.Exception, match="Debian package docker-registry"):
        _require("/nonexistent/docker-registry")
