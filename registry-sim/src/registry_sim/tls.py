"""A per-run certificate authority for the simulator (trustme underneath).

Nothing here is committed: every run makes a fresh CA, issues leaf certificates for
whatever names a test serves, client certificates for mTLS, and the chain the token
server signs JWTs with (``x5c``), so a runtime needs only :meth:`SimCA.write_ca`.
"""

from __future__ import annotations

import base64
import shutil
import ssl
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from registry_sim._jose import Algorithm, PrivateKey

__all__ = ["ClientCert", "SigningKey", "SimCA"]


@dataclass(frozen=True)
class ClientCert:
    """A client certificate and its key written as PEM files (for mTLS)."""

    cert_path: Path
    key_path: Path
    common_name: str


@dataclass(frozen=True)
class SigningKey:
    """A JWT signing key with its certificate chain (leaf first) from the run's CA."""

    key: PrivateKey
    chain: tuple[x509.Certificate, ...]
    algorithm: Algorithm

    @property
    def x5c(self) -> list[str]:
        """The ``x5c`` header value: standard base64 DER, leaf first (RFC 7515 §4.1.6)."""
        return [
            base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
            for c in self.chain
        ]


def _san(label: str, role: str) -> str:
    # Go's x509 (docker-registry, containerd) rejects a certificate whose critical
    # subjectAltName extension is empty ("unhandled critical extension"), and
    # trustme marks SAN critical: every leaf gets at least this DNS name.
    return f"{label.lower().replace('_', '-')[:40] or 'x'}.{role}.registry-sim.test"


class SimCA:
    """A fresh CA per run; certificates for any names, client certs, token keys.

    Args:
        directory: where PEM files are written; a private temp dir (removed by
            :meth:`close`) when None.
    """

    def __init__(self, *, directory: Path | None = None) -> None:
        self._ca = trustme.CA(organization_name="registry-sim test CA")
        self._own_dir = directory is None
        self.directory = (
            Path(tempfile.mkdtemp(prefix="registry-sim-ca-"))
            if (directory is None)
            else directory
        )
        self._lock = threading.Lock()
        self._by_name: dict[str, ssl.SSLContext] = {}
        self._signing: dict[Algorithm, SigningKey] = {}

    # -- the CA itself ----------------------------------------------------------------

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate (PEM)."""
        return bytes(self._ca.cert_pem.bytes())

    @property
    def certificate(self) -> x509.Certificate:
        """The CA certificate."""
        return x509.load_pem_x509_certificate(self.cert_pem)

    def write_ca(self, path: Path | None = None) -> Path:
        """Write the CA bundle a runtime trusts (``SSL_CERT_FILE``, ``ca_file``).

        Args:
            path: the file to write; default ``<directory>/ca.pem``.

        Returns:
            The path written.
        """
        target = path or self.directory / "ca.pem"
        target.write_bytes(self.cert_pem)
        return target

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only this CA (for tests using httpx)."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self._ca.configure_trust(ctx)
        return ctx

    # -- server side ------------------------------------------------------------------

    def server_context(
        self,
        names: Sequence[str],
        *,
        require_client_cert: bool = False,
        alpn: Sequence[str] = (),
    ) -> ssl.SSLContext:
        """A server context presenting a leaf for ``names`` (DNS names or IPs).

        Args:
            names: subject alternative names (e.g. ``127.0.0.1``, ``localhost``).
            require_client_cert: demand a client certificate issued by this CA.
            alpn: ALPN protocols offered, in the server's order of preference
                (none by default: the handshake then negotiates no protocol).

        Returns:
            The context (TLS 1.2+).

        Raises:
            ValueError: no names.
        """
        if not names:
            raise ValueError("a server certificate needs at least one name")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self._ca.issue_cert(*names).configure_cert(ctx)
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            self._ca.configure_trust(ctx)
        if alpn:
            # RFC 7301 §3.2: the server picks one of the client's protocols; OpenSSL
            # picks the first of ``alpn`` the client also offered.
            ctx.set_alpn_protocols(list(alpn))
        return ctx

    def context_for_name(self, name: str) -> ssl.SSLContext:
        """A cached server context for one name (the proxy's SNI callback uses it).

        Args:
            name: a DNS name or IP address.

        Returns:
            The same context for the same name.
        """
        with self._lock:
            ctx = self._by_name.get(name)
            if ctx is None:
                ctx = self._by_name[name] = self.server_context([name])
            return ctx

    # -- client certificates and token signing ------------------------------------------

    def issue_client_cert(
        self, common_name: str, *, directory: Path | None = None
    ) -> ClientCert:
        """Issue a client certificate and write cert and key as PEM files.

        Args:
            common_name: the subject CN (the simulator records it per request).
            directory: where to write; default this CA's directory.

        Returns:
            The two paths.
        """
        stem = "".join(ch if ch.isalnum() else "_" for ch in common_name)
        leaf = self._ca.issue_cert(_san(stem, "client"), common_name=common_name)
        where = directory or self.directory
        cert_path, key_path = where / f"client-{stem}.pem", where / f"client-{stem}.key"
        cert_path.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
        key_path.write_bytes(leaf.private_key_pem.bytes())
        key_path.chmod(0o600)
        return ClientCert(cert_path, key_path, common_name)

    def signing_key(self, algorithm: Algorithm = "ES256") -> SigningKey:
        """The token-signing key and its ``x5c`` chain, issued by this CA (cached).

        The chain verifies against the CA bundle from :meth:`write_ca`, which is what
        distribution's ``auth.token.rootcertbundle`` expects.

        Args:
            algorithm: ``"ES256"`` (EC P-256 key) or ``"RS256"`` (RSA 2048).

        Returns:
            The key with its chain (leaf first).
        """
        with self._lock:
            found = self._signing.get(algorithm)
            if found is None:
                kind = (
                    trustme.KeyType.ECDSA
                    if algorithm == "ES256"
                    else trustme.KeyType.RSA
                )
                leaf = self._ca.issue_cert(
                    _san(algorithm.lower(), "token-signer"),
                    common_name=f"registry-sim token signer {algorithm}",
                    key_type=kind,
                )
                key = load_pem_private_key(leaf.private_key_pem.bytes(), None)
                chain = tuple(
                    x509.load_pem_x509_certificate(b.bytes())
                    for b in leaf.cert_chain_pems
                )
                if not isinstance(key, PrivateKey):
                    raise TypeError(f"unexpected key type {type(key).__name__}")
                found = self._signing[algorithm] = SigningKey(key, chain, algorithm)
            return found

    # -- lifetime -------------------------------------------------------------------

    def close(self) -> None:
        """Remove the private temp directory (a caller's directory is left alone)."""
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> SimCA:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
