"""The CONNECT proxy: named registries served from loopback, never the network."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry_sim.contained import contained_command
from registry_sim.images import Image, Layer
from registry_sim.proxy import ConnectProxy
from registry_sim.server import Router
from registry_sim.sim import RegistrySim
from registry_sim.tls import SimCA
from registry_sim.wire import Request, Response

_real_getaddrinfo = socket.getaddrinfo


@pytest.fixture(autouse=True)
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails any name lookup but loopback: the proxy must never resolve a name."""

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "::1", "localhost", b"127.0.0.1"):
            raise AssertionError(f"DNS lookup of {host!r} during a proxy test")
        return _real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@pytest.fixture
def sim() -> Iterator[RegistrySim]:
    with RegistrySim() as simulator:
        simulator.add_host("registry-1.docker.io", simulator.app)
        yield simulator


@pytest.fixture
def proxied_client(sim: RegistrySim) -> Iterator[httpx.Client]:
    proxy = sim.proxy()
    assert sim.ca is not None
    with httpx.Client(proxy=proxy.url, verify=sim.ca.client_context()) as client:
        yield client


def test_docker_hub_is_served_from_loopback_through_connect(
    sim: RegistrySim, proxied_client: httpx.Client
) -> None:
    image = Image.schema2(layers=[Layer.random(4096, seed=7)])
    sim.push(image, "library/busybox:latest")
    url = "https://registry-1.docker.io/v2/library/busybox/manifests/latest"
    response = proxied_client.get(url, headers={"Accept": image.media_type})
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == image.digest
    journal = sim.journal
    (connect,) = journal.assert_request(method="CONNECT", host="registry-1.docker.io")
    assert connect.host == "registry-1.docker.io:443"
    assert connect.proxied_via == "registry-1.docker.io:443"
    (get,) = journal.assert_request(method="GET", path="/manifests/latest$")
    assert (get.scheme, get.host) == ("https", "registry-1.docker.io")
    assert get.proxied_via == "registry-1.docker.io:443"
    assert get.connection_id == connect.connection_id


def test_absolute_form_http_requests_are_served_without_tls(
    sim: RegistrySim, proxied_client: httpx.Client
) -> None:
    response = proxied_client.get("http://registry-1.docker.io/v2/")
    assert response.status_code == 200
    (get,) = sim.journal.assert_request(method="GET", path="^/v2/$")
    assert (get.scheme, get.host, get.proxied_via) == (
        "http",
        "registry-1.docker.io",
        "registry-1.docker.io",
    )


def test_unknown_name_over_connect_is_502_and_recorded(
    sim: RegistrySim, proxied_client: httpx.Client
) -> None:
    with pytest.raises(httpx.ProxyError, match="502"):
        proxied_client.get("https://unknown.example/v2/")
    (refused,) = sim.journal.assert_request(method="CONNECT", status=502)
    assert refused.host == "unknown.example:443"
    assert refused.fault == "proxy-unknown-host"


def test_unknown_name_in_absolute_form_is_502_with_a_clear_body(
    sim: RegistrySim, proxied_client: httpx.Client
) -> None:
    response = proxied_client.get("http://unknown.example/v2/")
    assert response.status_code == 502
    assert "nothing is forwarded off this machine" in response.text
    sim.journal.assert_request(method="GET", host="unknown.example", status=502)


def test_the_default_route_is_not_reachable_through_the_proxy(
    sim: RegistrySim, proxied_client: httpx.Client
) -> None:
    # The sim's own registry answers any Host when reached directly, but a proxy
    # that forwarded unknown names to it would hide which endpoint was tried.
    direct = httpx.get(f"{sim.url}/v2/", headers={"Host": "anything.test"})
    assert direct.status_code == 200
    assert proxied_client.get("http://anything.test/v2/").status_code == 502


def test_port_other_than_443_keeps_the_port_in_the_host(sim: RegistrySim) -> None:
    seen: list[str] = []

    def handle(request: Request) -> Response:
        seen.append(request.host)
        return Response(200, body=b"ok")

    sim.add_host("registry.test:5000", handle)
    proxy = sim.proxy()
    assert sim.ca is not None
    with httpx.Client(proxy=proxy.url, verify=sim.ca.client_context()) as client:
        assert client.get("https://registry.test:5000/v2/").text == "ok"
    assert seen == ["registry.test:5000"]
    sim.journal.assert_request(method="CONNECT", host="registry.test:5000")


def test_certificates_are_issued_once_per_name() -> None:
    ca = SimCA()
    issued: list[str] = []

    def contexts(name: str) -> ssl.SSLContext:
        issued.append(name)
        return ca.server_context([name])

    router = Router({"mirror.test": lambda _r: Response(200, body=b"m")})
    try:
        with (
            ConnectProxy(router, contexts=contexts) as proxy,
            httpx.Client(proxy=proxy.url, verify=ca.client_context()) as first,
            httpx.Client(proxy=proxy.url, verify=ca.client_context()) as second,
        ):
            assert first.get("https://mirror.test/v2/").text == "m"
            assert second.get("https://mirror.test/v2/").text == "m"
    finally:
        ca.close()
    assert issued == ["mirror.test"]


def test_proxy_without_a_ca_refuses_connect() -> None:
    router = Router({"mirror.test": lambda _r: Response(200, body=b"m")})
    with ConnectProxy(router) as proxy, httpx.Client(proxy=proxy.url) as client:
        with pytest.raises(httpx.ProxyError, match="502"):
            client.get("https://mirror.test/v2/")
        # Plain absolute-form requests need no CA.
        assert client.get("http://mirror.test/v2/").text == "m"


def test_environment_points_both_proxy_variables_at_the_proxy(sim: RegistrySim) -> None:
    proxy = sim.proxy()
    env = proxy.environment()
    assert env["HTTPS_PROXY"] == env["HTTP_PROXY"] == proxy.url
    assert proxy.url.startswith("http://127.0.0.1:")
    assert env["NO_PROXY"] == ""


@pytest.mark.interop
def test_go_client_pulls_docker_hub_names_from_loopback_via_the_proxy(
    sim: RegistrySim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """skopeo (Go, ProxyFromEnvironment + SSL_CERT_FILE) sees Docker Hub on loopback."""
    skopeo = shutil.which("skopeo")
    assert skopeo is not None, "interop needs Debian's skopeo: apt-get install skopeo"
    monkeypatch.setattr(socket, "getaddrinfo", _real_getaddrinfo)  # a subprocess
    image = Image.schema2(layers=[Layer.random(4096, seed=3)])
    sim.push(image, "library/busybox:latest")
    proxy = sim.proxy()
    conf = tmp_path / "registries.conf"
    conf.write_text('unqualified-search-registries = ["docker.io"]\n')
    extra = {"SSL_CERT_FILE": str(sim.ca_path), **proxy.environment()}
    command = [skopeo, "--registries-conf", str(conf), "inspect", "--raw"]
    # Nothing written outside tmp_path (no cache, config or temp file).
    argv, env = contained_command(
        [*command, "docker://docker.io/library/busybox:latest"], tmp_path, extra
    )
    done = subprocess.run(
        argv,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == image.manifest
    journal = sim.journal
    journal.assert_request(method="CONNECT", host="registry-1.docker.io", count=None)
    journal.assert_request(method="GET", path="/v2/library/busybox/manifests/latest")
    assert not journal.find(host="docker.io")  # docker.io is reached by its API host
