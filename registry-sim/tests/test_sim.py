"""The embedding API: RegistrySim and its pytest fixtures, over real loopback sockets."""

from __future__ import annotations

import hashlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from registry_sim.auth import BasicAuth
from registry_sim.faults import Custom, Fault, Match, Status
from registry_sim.images import Image, Index, Layer
from registry_sim.sim import RegistrySim, split_reference
from registry_sim.wire import Request, Response

pytest_plugins = ["registry_sim.pytest_fixtures"]

DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def small_image(seed: int = 1) -> Image:
    return Image.schema2(layers=[Layer.random(2048, seed=seed)])


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        pytest.param("library/app:1.0", ("library/app", "1.0", None), id="tag"),
        pytest.param("app", ("app", None, None), id="bare"),
        pytest.param("a/b@sha256:ab", ("a/b", None, "sha256:ab"), id="digest"),
        pytest.param("a/b:t@sha256:ab", ("a/b", "t", "sha256:ab"), id="tag-and-digest"),
    ],
)
def test_split_reference_separates_repo_tag_and_digest(
    reference: str, expected: tuple[str, str | None, str | None]
) -> None:
    assert split_reference(reference) == expected


def test_pushed_image_is_pullable_by_tag_and_digest(registry_sim: RegistrySim) -> None:
    image = small_image()
    digest = registry_sim.push(image, "library/app:1.0")
    assert digest == image.digest
    with httpx.Client(base_url=registry_sim.url) as client:
        accept = {"Accept": image.media_type}
        by_tag = client.get("/v2/library/app/manifests/1.0", headers=accept)
        by_digest = client.get(f"/v2/library/app/manifests/{digest}", headers=accept)
        config = client.get(f"/v2/library/app/blobs/{image.config_digest}")
    assert by_tag.content == by_digest.content == image.manifest
    assert config.content == image.config
    registry_sim.journal.assert_request(method="GET", path="/blobs/", status=200)


def test_index_children_are_stored_before_the_root(registry_sim: RegistrySim) -> None:
    index = Index.docker_list([small_image(1), small_image(2)])
    registry_sim.push(index, "multi:1")
    for media_type, data in index.manifests[:-1]:
        child = "sha256:" + hashlib.sha256(data).hexdigest()
        found = registry_sim.storage.get_manifest("multi", child)
        assert found is not None
        assert found[0] == media_type
    root = registry_sim.storage.get_manifest("multi", "1")
    assert root is not None
    assert root[0] == DOCKER_LIST


def test_push_by_digest_keeps_the_given_digest(registry_sim: RegistrySim) -> None:
    image = small_image()
    wrong = "sha256:" + "0" * 64
    assert registry_sim.push(image, f"app@{wrong}") == wrong
    assert registry_sim.storage.get_manifest("app", wrong) is not None


def test_deliberately_mismatched_blobs_are_stored_under_their_claimed_digest(
    registry_sim: RegistrySim,
) -> None:
    image = small_image().with_digest_mismatch(0)
    registry_sim.push(image, "broken:1")
    layer_digest = str(image.layer_descriptors[0]["digest"])
    path = registry_sim.storage.blob_path(layer_digest)
    assert path is not None
    actual = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert actual != layer_digest


def test_reset_empties_storage_faults_and_journal(registry_sim: RegistrySim) -> None:
    registry_sim.push(small_image(), "app:1")
    registry_sim.faults.add(Fault(Match(path="/v2/$"), Status(503), name="ping-503"))
    assert httpx.get(f"{registry_sim.url}/v2/").status_code == 503
    registry_sim.reset()
    assert registry_sim.storage.repositories() == []
    assert len(registry_sim.journal) == 0
    assert httpx.get(f"{registry_sim.url}/v2/").status_code == 200


def test_check_reraises_a_handler_bug() -> None:
    def broken(_request: Request) -> Response:
        raise ZeroDivisionError("simulated bug")

    with RegistrySim() as sim:
        sim.add_host("broken.test", broken)
        response = httpx.get(f"{sim.url}/v2/", headers={"Host": "broken.test"})
        assert response.status_code == 500
        with pytest.raises(ZeroDivisionError):
            sim.check()
        sim.reset()
        sim.check()  # reset forgets recorded bugs


def test_added_registry_has_its_own_storage_and_auth() -> None:
    with RegistrySim() as sim:
        sim.add_host("mirror.test", auth=BasicAuth({"u": "p"}))
        image = small_image()
        sim.push(image, "app:1", host="mirror.test")
        url = f"{sim.url}/v2/app/manifests/1"
        headers = {"Host": "mirror.test", "Accept": image.media_type}
        assert httpx.get(url, headers=headers).status_code == 401
        assert httpx.get(url, headers=headers, auth=("u", "p")).status_code == 200
        assert httpx.get(url, headers={"Accept": image.media_type}).status_code == 404
        assert sim.url_for("mirror.test") == f"http://mirror.test:{sim.server.port}"


def test_push_to_an_unknown_host_is_an_error(registry_sim: RegistrySim) -> None:
    with pytest.raises(KeyError, match=r"nowhere\.test"):
        registry_sim.push(small_image(), "app:1", host="nowhere.test")


def test_tls_sim_writes_a_ca_bundle_clients_can_trust(
    registry_sim_tls: RegistrySim,
) -> None:
    ca_path = registry_sim_tls.ca_path
    assert ca_path is not None
    assert ca_path.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert registry_sim_tls.url.startswith("https://127.0.0.1:")
    verify = ssl.create_default_context(cafile=str(ca_path))
    response = httpx.get(f"{registry_sim_tls.url}/v2/", verify=verify)
    assert response.status_code == 200
    (ping,) = registry_sim_tls.journal.assert_request(path="^/v2/$")
    assert ping.scheme == "https"


def test_plain_sim_has_no_ca(registry_sim: RegistrySim) -> None:
    assert registry_sim.ca_path is None
    assert registry_sim.url.startswith("http://")


def test_mtls_sim_requires_and_records_the_client_certificate(tmp_path: Path) -> None:
    with RegistrySim(tls=True, mtls=True) as sim:
        assert sim.ca is not None
        cert = sim.client_cert("kubelet")
        client_ctx = sim.ca.client_context()
        client_ctx.load_cert_chain(cert.cert_path, cert.key_path)
        assert httpx.get(f"{sim.url}/v2/", verify=client_ctx).status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{sim.url}/v2/", verify=sim.ca.client_context())
        # SNI for an added name must not relax the client-certificate requirement.
        sim.add_host("mirror.test")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _get_with_sni(sim, "mirror.test", sim.ca.client_context())
        _, answer = _get_with_sni(sim, "mirror.test", client_ctx)
        assert answer.startswith(b"HTTP/1.1 200 ")


def _get_with_sni(
    sim: RegistrySim, name: str, context: ssl.SSLContext
) -> tuple[list[str], bytes]:
    """GET /v2/ naming ``name`` in SNI and Host; returns (peer DNS names, answer)."""
    with (
        socket.create_connection((sim.server.host, sim.server.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        cert = tls.getpeercert() or {}
        sans = cert.get("subjectAltName", ())
        assert isinstance(sans, tuple)
        names = [str(value) for kind, value in sans if kind == "DNS"]
        tls.sendall(f"GET /v2/ HTTP/1.1\r\nHost: {name}\r\n\r\n".encode())
        answer = tls.recv(65536)
        if not answer:
            raise ConnectionError("closed without an answer")
        return names, answer


def test_sni_presents_a_certificate_for_added_names() -> None:
    with RegistrySim(tls=True) as sim:
        sim.add_host("mirror.test")
        assert sim.ca is not None
        names, answer = _get_with_sni(sim, "mirror.test", sim.ca.client_context())
    assert names == ["mirror.test"]
    assert answer.startswith(b"HTTP/1.1 200 ")


def test_close_releases_the_port() -> None:
    sim = RegistrySim().start()
    port = sim.server.port
    sim.close()
    with RegistrySim(port=port) as again:
        assert again.server.port == port


@pytest.fixture
def two_sims() -> Iterator[tuple[RegistrySim, RegistrySim]]:
    with RegistrySim() as first, RegistrySim(host="127.0.0.2") as second:
        yield first, second


def test_connection_ids_are_unique_across_servers(
    two_sims: tuple[RegistrySim, RegistrySim],
) -> None:
    first, second = two_sims
    httpx.get(f"{first.url}/v2/")
    httpx.get(f"{second.url}/v2/")
    (a,) = first.journal.exchanges
    (b,) = second.journal.exchanges
    assert a.connection_id != b.connection_id
    assert second.url.startswith("http://127.0.0.2:")


def _sim_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("registry-sim")}


def test_no_simulator_thread_outlives_close() -> None:
    before = _sim_threads()  # the session fixtures' servers may be running
    with RegistrySim(tls=True) as sim:
        sim.add_host("mirror.test")
        proxy = sim.proxy()
        assert sim.ca is not None
        with httpx.Client(proxy=proxy.url, verify=sim.ca.client_context()) as client:
            assert client.get("https://mirror.test/v2/").status_code == 200
        assert httpx.get(f"{sim.url}/v2/", verify=sim.ca.client_context()).is_success
    assert [t.name for t in _sim_threads() - before] == []


def test_exchanges_are_timed_by_arrival_so_a_slow_answer_keeps_its_place(
    registry_sim: RegistrySim,
) -> None:
    """A request answered late is still journalled at the time it arrived: sorting by
    ``time`` gives the order a client sent, even across connections (``seq`` is the
    order the answers finished)."""
    arrived, release = threading.Event(), threading.Event()

    def hold(request: Request, response: Response) -> Response:
        arrived.set()
        release.wait(5)
        return response

    registry_sim.faults.add(Fault(Match(path="/v2/slow/"), Custom(hold)))
    slow = threading.Thread(
        target=httpx.get, args=(f"{registry_sim.url}/v2/slow/tags/list",)
    )
    slow.start()
    assert arrived.wait(5)
    httpx.get(f"{registry_sim.url}/v2/fast/tags/list")  # answered while slow is held
    # The server journals an exchange just after writing its answer: wait for it.
    deadline = time.monotonic() + 5
    while not registry_sim.journal.exchanges and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    slow.join(5)
    by_time = sorted(registry_sim.journal.exchanges, key=lambda ex: ex.time)
    by_seq = sorted(registry_sim.journal.exchanges, key=lambda ex: ex.seq)
    assert [ex.path for ex in by_time] == ["/v2/slow/tags/list", "/v2/fast/tags/list"]
    assert [ex.path for ex in by_seq] == ["/v2/fast/tags/list", "/v2/slow/tags/list"]
