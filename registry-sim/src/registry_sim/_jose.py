"""The few JOSE pieces the simulator signs with: base64url, ES256/RS256, JWK.

Shared by the schema1 builder (libtrust JWS) and the token server (JWT). Pure
functions over ``cryptography`` keys; nothing here reads a clock or a file.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

__all__ = [
    "Algorithm",
    "PrivateKey",
    "PublicKey",
    "b64url_decode",
    "b64url_encode",
    "ec_public_jwk",
    "libtrust_key_id",
    "sign",
    "verify",
]

Algorithm = Literal["ES256", "RS256"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

_P256_COORD = 32  # RFC 7518 §3.4: R and S are 32-octet big-endian integers for ES256


def b64url_encode(data: bytes) -> str:
    """Encode ``data`` as base64url without padding (RFC 7515 §2).

    Args:
        data: the bytes to encode.

    Returns:
        The unpadded base64url text.
    """
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded (or padded) base64url text.

    Args:
        text: base64url text.

    Returns:
        The decoded bytes.

    Raises:
        ValueError: ``text`` is not base64url (``binascii.Error`` is a ValueError).
    """
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def sign(key: PrivateKey, data: bytes, algorithm: Algorithm) -> bytes:
    """Sign ``data`` as JWS ``algorithm`` requires.

    ES256 signatures are the raw ``r || s`` form (64 bytes, RFC 7518 §3.4), not
    DER, and are deterministic (RFC 6979) so that builders stay reproducible.

    Args:
        key: an EC P-256 key for ES256 or an RSA key for RS256.
        data: the JWS signing input.
        algorithm: ``"ES256"`` or ``"RS256"``.

    Returns:
        The signature bytes.

    Raises:
        ValueError: the key does not fit the algorithm.
    """
    if algorithm == "ES256" and isinstance(key, ec.EllipticCurvePrivateKey):
        der = key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        r, s = decode_dss_signature(der)
        return r.to_bytes(_P256_COORD, "big") + s.to_bytes(_P256_COORD, "big")
    if algorithm == "RS256" and isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    raise ValueError(f"a {type(key).__name__} cannot sign {algorithm}")


def verify(key: PublicKey, data: bytes, signature: bytes, algorithm: str) -> bool:
    """Check a JWS signature; never raises for a bad signature.

    Args:
        key: the public key.
        data: the JWS signing input.
        signature: raw signature bytes (``r || s`` for ES256).
        algorithm: the ``alg`` header value.

    Returns:
        True when the signature is valid for this key and algorithm.
    """
    try:
        if algorithm == "ES256" and isinstance(key, ec.EllipticCurvePublicKey):
            if len(signature) != 2 * _P256_COORD:
                return False
            r = int.from_bytes(signature[:_P256_COORD], "big")
            s = int.from_bytes(signature[_P256_COORD:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
            return True
        if algorithm == "RS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            return True
    except InvalidSignature:
        return False
    return False


def libtrust_key_id(key: PublicKey) -> str:
    """The libtrust key ID: base32 of the SPKI SHA-256's first 240 bits, in 4s.

    Args:
        key: a public key.

    Returns:
        Twelve ``:``-separated groups of four base32 characters.
    """
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # libtrust util.go keyIDEncode: base32 of sha256(DER)[:30], groups of 4
    text = base64.b32encode(hashlib.sha256(spki).digest()[:30]).decode("ascii")
    return ":".join(text[i : i + 4] for i in range(0, len(text), 4))


def ec_public_jwk(key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The JWK of an EC P-256 public key as libtrust writes it (with ``kid``).

    Args:
        key: a P-256 public key.

    Returns:
        ``{"crv", "kid", "kty", "x", "y"}``.
    """
    numbers = key.public_numbers()
    return {
        "crv": "P-256",
        "kid": libtrust_key_id(key),
        "kty": "EC",
        "x": b64url_encode(numbers.x.to_bytes(_P256_COORD, "big")),
        "y": b64url_encode(numbers.y.to_bytes(_P256_COORD, "big")),
    }
