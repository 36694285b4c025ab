"""Content addressing for the simulator: digests, media types, schema1 payloads.

Written independently of ``refpull`` on purpose (STYLE point 18): two implementations
on either side of the wire catch each other's bugs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re

__all__ = [
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "MT_DOCKER_LIST",
    "MT_DOCKER_MANIFEST",
    "MT_OCI_INDEX",
    "MT_OCI_MANIFEST",
    "MT_SCHEMA1",
    "MT_SCHEMA1_SIGNED",
    "SCHEMA1_TYPES",
    "DigestHasher",
    "compute_digest",
    "is_digest",
    "manifest_digest",
    "schema1_payload",
    "split_digest",
]

MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
MT_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"

SCHEMA1_TYPES = frozenset({MT_SCHEMA1_SIGNED, MT_SCHEMA1})
INDEX_TYPES = frozenset({MT_DOCKER_LIST, MT_OCI_INDEX})
MANIFEST_TYPES = frozenset({MT_DOCKER_MANIFEST, MT_OCI_MANIFEST})

# https://github.com/opencontainers/image-spec/blob/v1.1.0/descriptor.md#digests
#   digest               ::= algorithm ":" encoded
#   algorithm            ::= algorithm-component (algorithm-separator algorithm-component)*
#   algorithm-component  ::= [a-z0-9]+
#   algorithm-separator  ::= [+._-]
#   encoded              ::= [a-zA-Z0-9=_-]+
_DIGEST = re.compile(r"([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")
# "sha256 ... encoded portion MUST match /[a-f0-9]{64}/" (and /[a-f0-9]{128}/ for sha512)
_ENCODED = {
    "sha256": re.compile(r"[a-f0-9]{64}"),
    "sha512": re.compile(r"[a-f0-9]{128}"),
}


def split_digest(value: str) -> tuple[str, str] | None:
    """``(algorithm, encoded)`` of a well-formed digest with a supported algorithm.

    Returns ``None`` for anything else (bad grammar, unknown algorithm, wrong length).
    """
    match = _DIGEST.fullmatch(value)
    if match is None:
        return None
    algorithm, encoded = match.group(1), match.group(2)
    pattern = _ENCODED.get(algorithm)
    if pattern is None or pattern.fullmatch(encoded) is None:
        return None
    return algorithm, encoded


def is_digest(value: str) -> bool:
    """Whether ``value`` is a valid digest of a supported algorithm."""
    return split_digest(value) is not None


class DigestHasher:
    """Incremental digest of one algorithm (``sha256`` or ``sha512``)."""

    def __init__(self, algorithm: str = "sha256") -> None:
        if algorithm not in _ENCODED:
            raise ValueError(f"unsupported digest algorithm {algorithm!r}")
        self.algorithm = algorithm
        self._hash = hashlib.new(algorithm)

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def digest(self) -> str:
        return f"{self.algorithm}:{self._hash.hexdigest()}"


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    """The ``algorithm:hex`` digest of ``data``."""
    hasher = DigestHasher(algorithm)
    hasher.update(data)
    return hasher.digest()


def _b64url(value: str) -> bytes:
    padded = value + "=" * (-len(value) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def schema1_payload(data: bytes) -> bytes | None:
    """The signed payload of a libtrust "prettyjws" schema1 manifest.

    libtrust's ``JSONSignature.Payload``: the first signature's protected header holds
    ``formatLength`` and ``formatTail``; the payload is
    ``data[:formatLength] + base64url_decode(formatTail)`` (behaviors.md S1-002).

    Returns:
        The payload, or ``None`` when ``data`` carries no usable signature block.
    """
    try:
        document = json.loads(data)
        protected = document["signatures"][0]["protected"]
        header = json.loads(_b64url(protected))
        length = header["formatLength"]
        tail = _b64url(header["formatTail"])
    except (ValueError, KeyError, IndexError, TypeError, binascii.Error):
        return None
    if not isinstance(length, int) or isinstance(length, bool):
        return None
    if not 0 <= length <= len(data):
        return None
    return data[:length] + tail


def manifest_digest(data: bytes, media_type: str, algorithm: str = "sha256") -> str:
    """The digest a registry assigns to a manifest.

    For signed schema1 documents distribution hashes the signature-stripped payload,
    not the bytes it serves (libtrust canonical payload); everything else is hashed
    as stored.
    """
    if media_type in SCHEMA1_TYPES:
        payload = schema1_payload(data)
        if payload is not None:
            return compute_digest(payload, algorithm)
    return compute_digest(data, algorithm)
