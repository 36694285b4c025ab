"""refpull.settings.tlsconfig: client TLS contexts (TLS-001..TLS-006, XPORT-003).

Certificates are generated with trustme into tmp_path; nothing is committed.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from refpull.errors import ConfigError
from refpull.settings.config import TLSConfig
from refpull.settings.tlsconfig import count_pem_certificates, ssl_context

Result = tuple[str, Any]


@contextmanager
def tls_server(context: ssl.SSLContext) -> Iterator[tuple[int, list[Result]]]:
    """A one-connection TLS server on 127.0.0.1 recording how the handshake went."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    results: list[Result] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    results.append(
                        ("ok", (tls.selected_alpn_protocol(), tls.getpeercert()))
                    )
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError) as exc:
                results.append(("error", str(exc)))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], results
    finally:
        listener.close()
        thread.join(5)


def handshake(context: ssl.SSLContext, port: int, server_hostname: str) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        return tls.recv(2)


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def write_ca(ca: trustme.CA, path: Path) -> str:
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.mark.behavior("TLS-001")
@pytest.mark.parametrize(
    ("tls", "message"),
    [
        pytest.param(
            TLSConfig(cert_file="/etc/c.pem"),
            'cert file "/etc/c.pem" was specified, but no corresponding key file was specified',
            id="cert-only",
        ),
        pytest.param(
            TLSConfig(key_file="/etc/k.pem"),
            'key file "/etc/k.pem" was specified, but no corresponding cert file was specified',
            id="key-only",
        ),
        pytest.param(
            TLSConfig(cert_file='/a"b\n', ca_file="/missing"),
            'cert file "/a\\"b\\n" was specified, but no corresponding key file was specified',
            id="go-quoting-and-checked-first",
        ),
    ],
)
def test_cert_and_key_go_together(tls: TLSConfig, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        ssl_context(tls)
    assert str(info.value) == message


def _key_pair(ca: trustme.CA, tmp_path: Path, name: str) -> tuple[str, str]:
    leaf = ca.issue_cert(f"{name}.client.test")
    cert, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    return str(cert), str(key)


@pytest.mark.behavior("TLS-002")
def test_key_pair_errors(ca: trustme.CA, tmp_path: Path) -> None:
    cert, key = _key_pair(ca, tmp_path, "a")
    other_cert, other_key = _key_pair(ca, tmp_path, "b")
    ssl_context(TLSConfig(cert_file=cert, key_file=key))  # a good pair loads

    junk = tmp_path / "junk.pem"
    junk.write_text("not pem\n")
    key_type = Path(key).read_text().splitlines()[0].removeprefix("-----BEGIN ")
    key_type = key_type.removesuffix("-----")
    encrypted = tmp_path / "enc.key"
    encrypted.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    cases = {
        (
            str(tmp_path / "none.crt"),
            key,
        ): f"open {tmp_path / 'none.crt'}: no such file or directory",
        (
            cert,
            str(tmp_path / "none.key"),
        ): f"open {tmp_path / 'none.key'}: no such file or directory",
        (cert, other_key): "tls: private key does not match public key",
        (str(junk), key): "tls: failed to find any PEM data in certificate input",
        (key, key): 'tls: failed to find "CERTIFICATE" PEM block in certificate input '
        f"after skipping PEM blocks of the following types: [{key_type}]",
        (cert, str(junk)): "tls: failed to find any PEM data in key input",
        (
            cert,
            other_cert,
        ): "tls: found a certificate rather than a key in the PEM for the private key",
        (cert, str(encrypted)): "tls: failed to parse private key",
        (str(tmp_path), key): f"read {tmp_path}: is a directory",
    }
    for (cert_file, key_file), reason in cases.items():
        with pytest.raises(ConfigError) as info:
            ssl_context(TLSConfig(cert_file=cert_file, key_file=key_file))
        assert str(info.value) == f"failed to load cert file: {reason}"


@pytest.mark.behavior("TLS-002")
def test_client_certificate_is_offered(ca: trustme.CA, tmp_path: Path) -> None:
    cert, key = _key_pair(ca, tmp_path, "client")
    server = server_context(ca, "127.0.0.1")
    server.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(server)
    ca_file = write_ca(ca, tmp_path / "ca.pem")

    with tls_server(server) as (port, results):
        with_cert = ssl_context(
            TLSConfig(ca_file=ca_file, cert_file=cert, key_file=key)
        )
        assert handshake(with_cert, port, "127.0.0.1") == b"ok"
    ((status, (_, peer)),) = results
    assert status == "ok"
    assert "client.client.test" in repr(peer)

    with tls_server(server) as (port, results), suppress(ssl.SSLError, OSError):
        handshake(ssl_context(TLSConfig(ca_file=ca_file)), port, "127.0.0.1")
    assert results[0][0] == "error"


@pytest.mark.behavior("TLS-003")
def test_ca_file_errors_use_go_wording(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigError) as info:
        ssl_context(TLSConfig(ca_file=str(missing)))
    assert (
        str(info.value)
        == f"failed to load CA file: open {missing}: no such file or directory"
    )
    with pytest.raises(ConfigError) as info:
        ssl_context(TLSConfig(ca_file=str(tmp_path)))
    assert str(info.value) == f"failed to load CA file: read {tmp_path}: is a directory"


@pytest.mark.behavior("TLS-003")
def test_junk_ca_file_is_silently_ignored(ca: trustme.CA, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text(
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"
    )
    baseline = len(ssl_context(None).get_ca_certs())
    context = ssl_context(TLSConfig(ca_file=str(junk)))  # no error, as in Go
    assert len(context.get_ca_certs()) == baseline
    assert count_pem_certificates(junk.read_bytes()) == 0
    # The private registry then fails as "unknown authority" at handshake time.
    with (
        tls_server(server_context(ca, "127.0.0.1")) as (port, _),
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        handshake(context, port, "127.0.0.1")


@pytest.mark.behavior("TLS-003")
def test_ca_file_is_added_to_system_roots(ca: trustme.CA, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.pem"
    header_block = "-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END CERTIFICATE-----\n"
    mixed.write_bytes(
        b"garbage\n" + header_block.encode() + ca.cert_pem.bytes() + b"trailer\n"
    )
    assert count_pem_certificates(mixed.read_bytes()) == 1
    baseline = len(ssl_context(None).get_ca_certs())
    context = ssl_context(TLSConfig(ca_file=str(mixed)))
    assert len(context.get_ca_certs()) == baseline + 1
    with tls_server(server_context(ca, "127.0.0.1")) as (port, _):
        assert handshake(context, port, "127.0.0.1") == b"ok"


@pytest.mark.behavior("TLS-004")
def test_insecure_skip_verify_disables_chain_and_name_checks(ca: trustme.CA) -> None:
    untrusted = server_context(ca, "wrong-name.test")
    with (
        tls_server(untrusted) as (port, _),
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        handshake(ssl_context(None), port, "127.0.0.1")
    with tls_server(untrusted) as (port, _):
        skip = ssl_context(TLSConfig(insecure_skip_verify=True))
        assert handshake(skip, port, "127.0.0.1") == b"ok"


@pytest.mark.behavior("TLS-005")
def test_files_are_read_on_every_call(tmp_path: Path) -> None:
    first, second = trustme.CA(), trustme.CA()
    ca_file = write_ca(first, tmp_path / "ca.pem")
    tls = TLSConfig(ca_file=ca_file)
    before = ssl_context(tls)
    write_ca(second, tmp_path / "ca.pem")
    after = ssl_context(tls)
    with tls_server(server_context(second, "127.0.0.1")) as (port, _):
        assert handshake(after, port, "127.0.0.1") == b"ok"
    with (
        tls_server(server_context(second, "127.0.0.1")) as (port, _),
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        handshake(before, port, "127.0.0.1")


@pytest.mark.behavior("TLS-006")
def test_verification_is_on_by_default(ca: trustme.CA, tmp_path: Path) -> None:
    default = ssl_context(None)
    assert default.verify_mode is ssl.CERT_REQUIRED
    assert default.check_hostname is True
    assert default.minimum_version is ssl.TLSVersion.TLSv1_2
    # A trusted CA does not excuse a wrong name (IP literals need IP SANs).
    context = ssl_context(TLSConfig(ca_file=write_ca(ca, tmp_path / "ca.pem")))
    with (
        tls_server(server_context(ca, "registry.test")) as (port, _),
        pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"),
    ):
        handshake(context, port, "127.0.0.1")


@pytest.mark.behavior("XPORT-003")
def test_alpn_offers_http11_only(ca: trustme.CA, tmp_path: Path) -> None:
    server = server_context(ca, "127.0.0.1")
    server.set_alpn_protocols(["h2", "http/1.1"])
    context = ssl_context(TLSConfig(ca_file=write_ca(ca, tmp_path / "ca.pem")))
    with tls_server(server) as (port, results):
        handshake(context, port, "127.0.0.1")
    ((status, (alpn, _)),) = results
    assert (status, alpn) == ("ok", "http/1.1")
