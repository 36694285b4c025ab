"""Client TLS contexts for registry endpoints (TLS-001..TLS-007, XPORT-003).

:func:`ssl_context` is the reference's ``getTLSConfig`` (cri@ab6701bd ``image_pull.go``):
the same checks in the same order with the seed's error wording, producing an
:class:`ssl.SSLContext` that httpx can use. Files are read on every call, as the runtime
rebuilds its hosts for every pull (TLS-005).

Decisions where Go and Python differ:

* Verification is on unless ``insecure_skip_verify`` (TLS-006); TLS 1.2 is the minimum in
  every profile (Go >= 1.18 clients default to it; the seed's Go allowed 1.0 -- a security
  weakness that is not reproduced).
* ALPN offers ``http/1.1`` only: the runtime's transport never negotiates HTTP/2 (XPORT-003).
* TLS-003 (a ``ca_file`` without usable certificates is silently accepted and the system
  roots stay in force) *is* reproduced, in every profile: Go's ``AppendCertsFromPEM``
  result is ignored by the runtime, so a junk CA file surfaces only later as an "unknown
  authority" handshake failure. Rejecting it would change *when and how* a pull fails,
  and it weakens nothing -- a junk file adds no trust. :func:`count_pem_certificates`
  lets ``refpull explain`` warn about it instead.
"""

from __future__ import annotations

import base64
import binascii
import errno
import os
import re
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from refpull.errors import ConfigError
from refpull.gocompat.gourl import go_quote

if TYPE_CHECKING:
    from refpull.settings.config import TLSConfig

__all__ = ["count_pem_certificates", "ssl_context"]

_PEM_BLOCK = re.compile(
    rb"-----BEGIN (?P<type>[^-\r\n]+)-----\r?\n(?P<body>.*?)-----END (?P=type)-----",
    re.DOTALL,
)


def ssl_context(tls: TLSConfig | None) -> ssl.SSLContext:
    """Build the client TLS context for one endpoint.

    Args:
        tls: the endpoint's ``configs."<host>".tls`` table, or ``None`` for defaults.

    Returns:
        A verifying context (system roots, hostname check, TLS >= 1.2, ALPN
        ``http/1.1``) adjusted by *tls*.

    Raises:
        ConfigError: with the seed's messages: cert/key pairing (TLS-001), ``failed to
            load cert file: ...`` (TLS-002), ``failed to load CA file: ...`` (TLS-003).
    """
    ctx = ssl.create_default_context()  # behaviors.md TLS-006: system roots, verify on
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])  # behaviors.md XPORT-003
    if tls is None:
        return ctx
    # behaviors.md TLS-001; cri@ab6701bd getTLSConfig: pairing is checked before any read.
    if tls.cert_file and not tls.key_file:
        raise ConfigError(
            f"cert file {go_quote(tls.cert_file)} was specified, "
            "but no corresponding key file was specified"
        )
    if tls.key_file and not tls.cert_file:
        raise ConfigError(
            f"key file {go_quote(tls.key_file)} was specified, "
            "but no corresponding cert file was specified"
        )
    if tls.cert_file:
        _load_key_pair(ctx, tls.cert_file, tls.key_file)
    if tls.ca_file:
        _append_ca_file(ctx, tls.ca_file)
    if tls.insecure_skip_verify:
        # behaviors.md TLS-004: chain and hostname checks off for this endpoint only.
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def count_pem_certificates(data: bytes) -> int:
    """Count the certificates Go's ``AppendCertsFromPEM`` would take from *data*.

    Args:
        data: the bytes of a CA bundle.

    Returns:
        The number of well-formed ``CERTIFICATE`` blocks without PEM headers.
    """
    return len(_pem_certificates(data))


def _pem_certificates(data: bytes) -> list[bytes]:
    ders = []
    for match in _PEM_BLOCK.finditer(data):
        body = match["body"]
        # crypto/x509 AppendCertsFromPEM skips other block types and blocks with headers.
        if match["type"] != b"CERTIFICATE" or b":" in body:
            continue
        try:
            ders.append(base64.b64decode(b"".join(body.split()), validate=True))
        except binascii.Error:
            continue
    return ders


def _read(path: str) -> bytes:
    """Read a file, raising Go-shaped ``open <path>: <reason>`` messages."""
    try:
        return Path(path).read_bytes()
    except IsADirectoryError as exc:
        # Go opens a directory fine and fails on read.
        raise _go_io_error("read", path, errno.EISDIR) from exc
    except OSError as exc:
        raise _go_io_error("open", path, exc.errno or errno.EIO) from exc


def _go_io_error(op: str, path: str, code: int) -> OSError:
    reason = os.strerror(code)
    # Go's syscall messages are the C strings in lower case ("no such file or directory").
    return OSError(code, f"{op} {path}: {reason[:1].lower()}{reason[1:]}")


def _load_key_pair(ctx: ssl.SSLContext, cert_file: str, key_file: str) -> None:
    try:
        cert_pem = _read(cert_file)
        key_pem = _read(key_file)
    except OSError as exc:
        raise ConfigError(f"failed to load cert file: {exc.strerror}") from exc
    problem = _key_pair_problem(cert_pem, key_pem)
    if problem is None:
        try:
            # An encrypted key must never prompt on a terminal: give an empty password.
            ctx.load_cert_chain(cert_file, key_file, password=lambda: b"")
        except ssl.SSLError as exc:
            mismatch = "KEY_VALUES_MISMATCH" in str(exc)
            problem = (
                "tls: private key does not match public key"
                if mismatch
                else "tls: failed to parse private key"
            )
        except OSError as exc:  # pragma: no cover - file vanished between reads
            problem = f"open {cert_file}: {exc.strerror}"
    if problem is not None:
        raise ConfigError(f"failed to load cert file: {problem}")


def _key_pair_problem(cert_pem: bytes, key_pem: bytes) -> str | None:
    """The message Go's ``tls.X509KeyPair`` gives for inputs it rejects early."""
    cert_types = [
        m["type"].decode("ascii", "replace") for m in _PEM_BLOCK.finditer(cert_pem)
    ]
    if "CERTIFICATE" not in cert_types:
        if not cert_types:
            return "tls: failed to find any PEM data in certificate input"
        skipped = " ".join(cert_types)
        return (
            'tls: failed to find "CERTIFICATE" PEM block in certificate input '
            f"after skipping PEM blocks of the following types: [{skipped}]"
        )
    key_types = [m["type"] for m in _PEM_BLOCK.finditer(key_pem)]
    if not key_types:
        return "tls: failed to find any PEM data in key input"
    if all(t == b"CERTIFICATE" for t in key_types):
        return (
            "tls: found a certificate rather than a key in the PEM for the private key"
        )
    return None


def _append_ca_file(ctx: ssl.SSLContext, ca_file: str) -> None:
    try:
        data = _read(ca_file)
    except OSError as exc:
        # behaviors.md TLS-003 / EP-007: `failed to load CA file: open <path>: ...`
        raise ConfigError(f"failed to load CA file: {exc.strerror}") from exc
    # behaviors.md TLS-003: blocks that do not parse are skipped and the result is
    # ignored, exactly like `caCertPool.AppendCertsFromPEM(caCert)` in the seed.
    for der in _pem_certificates(data):
        try:
            ctx.load_verify_locations(cadata=der)
        except ssl.SSLError:
            continue
