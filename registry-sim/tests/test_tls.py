"""SimCA: per-run certificates for servers, clients and token signing.

Handshakes run over memory BIOs: TLS is exercised for real without a socket.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from registry_sim.tls import SimCA


def _pump(src: ssl.MemoryBIO, dst: ssl.MemoryBIO) -> None:
    data = src.read()
    if data:
        dst.write(data)


def _handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, hostname: str
) -> ssl.SSLObject:
    """Complete a TLS handshake in memory; returns the server side's SSLObject."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, side in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        _pump(c_out, s_in)
        _pump(s_out, c_in)
        if all(done.values()):
            # TLS 1.3: the server learns of a client-cert failure on first read
            client.write(b"ping")
            _pump(c_out, s_in)
            assert server.read(4) == b"ping"
            return server
    raise AssertionError("handshake did not finish")


@pytest.fixture
def ca() -> Iterator[SimCA]:
    with SimCA() as sim_ca:
        yield sim_ca


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "registry.test", "::1"])
def test_server_cert_is_trusted_for_each_of_its_names(ca: SimCA, name: str) -> None:
    server_ctx = ca.server_context(["127.0.0.1", "localhost", "registry.test", "::1"])
    _handshake(server_ctx, ca.client_context(), name)


def test_server_cert_is_refused_for_another_name(ca: SimCA) -> None:
    server_ctx = ca.server_context(["registry.test"])
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(server_ctx, ca.client_context(), "other.test")


def test_server_cert_is_refused_by_a_client_trusting_another_ca(ca: SimCA) -> None:
    with SimCA() as other, pytest.raises(ssl.SSLCertVerificationError):
        _handshake(ca.server_context(["a.test"]), other.client_context(), "a.test")


def test_server_context_needs_a_name(ca: SimCA) -> None:
    with pytest.raises(ValueError, match="at least one name"):
        ca.server_context([])


def test_mtls_accepts_an_issued_client_cert_and_sees_its_subject(ca: SimCA) -> None:
    server_ctx = ca.server_context(["a.test"], require_client_cert=True)
    client_cert = ca.issue_client_cert("puller-1")
    client_ctx = ca.client_context()
    client_ctx.load_cert_chain(client_cert.cert_path, client_cert.key_path)
    server = _handshake(server_ctx, client_ctx, "a.test")
    peer = x509.load_der_x509_certificate(server.getpeercert(binary_form=True) or b"")
    cn = peer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "puller-1"
    assert client_cert.key_path.stat().st_mode & 0o077 == 0


def test_mtls_refuses_a_client_without_a_cert(ca: SimCA) -> None:
    server_ctx = ca.server_context(["a.test"], require_client_cert=True)
    with pytest.raises(ssl.SSLError):
        _handshake(server_ctx, ca.client_context(), "a.test")


def test_context_for_name_is_cached_per_name(ca: SimCA) -> None:
    first = ca.context_for_name("registry-1.docker.io")
    assert ca.context_for_name("registry-1.docker.io") is first
    assert ca.context_for_name("mirror.test") is not first
    _handshake(first, ca.client_context(), "registry-1.docker.io")


def test_write_ca_gives_a_bundle_clients_can_load(ca: SimCA, tmp_path: Path) -> None:
    path = ca.write_ca(tmp_path / "bundle.pem")
    assert path.read_bytes() == ca.cert_pem
    client_ctx = ssl.create_default_context(cafile=str(path))
    _handshake(ca.server_context(["b.test"]), client_ctx, "b.test")
    assert ca.write_ca().parent == ca.directory


@pytest.mark.parametrize(
    ("algorithm", "key_type"),
    [
        pytest.param("ES256", ec.EllipticCurvePrivateKey, id="es256"),
        pytest.param("RS256", rsa.RSAPrivateKey, id="rs256"),
    ],
)
def test_signing_key_chain_is_issued_by_the_ca(
    ca: SimCA, algorithm: str, key_type: type
) -> None:
    signing = ca.signing_key(algorithm)  # type: ignore[arg-type]
    assert isinstance(signing.key, key_type)
    leaf = signing.chain[0]
    leaf.verify_directly_issued_by(ca.certificate)  # raises when not
    assert leaf.public_key() == signing.key.public_key()
    assert len(signing.x5c) == len(signing.chain) == 1
    assert ca.signing_key(algorithm) is signing  # type: ignore[arg-type]


def test_close_removes_only_a_private_directory(tmp_path: Path) -> None:
    private = SimCA()
    private.write_ca()
    private.close()
    assert not private.directory.exists()
    given = SimCA(directory=tmp_path)
    given.issue_client_cert("c")
    given.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "client-c.key",
        "client-c.pem",
    ]
