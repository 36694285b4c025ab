"""Content digests as go-digest understands them, and a streaming verifier.

A digest is ``<algorithm>:<encoded>``. Validation follows go-digest v1.0.0 ``Validate``
(the seed's c9281466 validates the same way, behaviors.md REF-010): the algorithm must be
one of the registered *and linked* ones (``sha256``, ``sha384``, ``sha512``), the encoded part
must have exactly twice the hash size in characters and be lower-case hex.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

from refpull.errors import DigestMismatch, SizeMismatch

__all__ = [
    "ALGORITHMS",
    "Digest",
    "DigestError",
    "DigestVerifier",
    "sha256_digest",
]

#: algorithm name -> hex length (go-digest ``Algorithm.Size() * 2``).
ALGORITHMS: Final[dict[str, int]] = {"sha256": 64, "sha384": 96, "sha512": 128}

# go-digest DigestRegexpAnchored: used only to tell "unsupported" from "bad format".
_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_HEX_RE = re.compile(r"[a-f0-9]+")

# go-digest v1.0.0 error texts (behaviors.md REF-010).
_INVALID_FORMAT = "invalid checksum digest format"
_INVALID_LENGTH = "invalid checksum digest length"
_UNSUPPORTED = "unsupported digest algorithm"


class DigestError(ValueError):
    """A string is not a valid digest; ``str(err)`` is go-digest's message."""

    def __init__(self, value: str, reason: str) -> None:
        self.value = value
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, order=True)
class Digest:
    """A validated digest (``algorithm:encoded``)."""

    algorithm: str
    encoded: str

    @classmethod
    def parse(cls, value: str) -> Digest:
        """Validate *value* like go-digest ``Parse``.

        Args:
            value: the digest string, e.g. ``sha256:<64 hex>``.

        Returns:
            The parsed digest.

        Raises:
            DigestError: with go-digest's wording (``invalid checksum digest format``,
                ``invalid checksum digest length`` or ``unsupported digest algorithm``).
        """
        if not isinstance(value, str):
            raise DigestError(repr(value), _INVALID_FORMAT)
        sep = value.find(":")
        # go-digest Validate: "i <= 0 || i+1 == len(s)" -> format error.
        if sep <= 0 or sep + 1 == len(value):
            raise DigestError(value, _INVALID_FORMAT)
        algorithm, encoded = value[:sep], value[sep + 1 :]
        size = ALGORITHMS.get(algorithm)
        if size is None:
            # Unknown algorithm: a well-formed string is "unsupported", anything else "format".
            if _DIGEST_RE.fullmatch(value) is None:
                raise DigestError(value, _INVALID_FORMAT)
            raise DigestError(value, _UNSUPPORTED)
        # go-digest v1.0.0 Algorithm.Validate: length first, then the hex pattern.
        if len(encoded) != size:
            raise DigestError(value, _INVALID_LENGTH)
        if _HEX_RE.fullmatch(encoded) is None:
            raise DigestError(value, _INVALID_FORMAT)
        return cls(algorithm, encoded)

    @classmethod
    def from_bytes(cls, data: bytes) -> Digest:
        """Return the canonical (sha256) digest of *data*."""
        return cls("sha256", hashlib.sha256(data).hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"

    @property
    def hex(self) -> str:
        """The encoded part (go-digest ``Encoded``)."""
        return self.encoded

    def new_hash(self) -> hashlib._Hash:
        """A fresh hash object for this digest's algorithm."""
        return hashlib.new(self.algorithm)


def sha256_digest(data: bytes) -> str:
    """Return ``sha256:<hex>`` of *data* (go-digest ``FromBytes``)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


class DigestVerifier:
    """Streaming digest and size check for one blob (behaviors.md FETCH-008).

    Feed chunks with :meth:`update`; :meth:`verify` raises the containerd
    ``content/local`` commit errors when the size or digest differs.
    """

    def __init__(
        self, expected_digest: str, expected_size: int | None = None, *, ref: str = ""
    ) -> None:
        """Args:
        expected_digest: the descriptor's digest (validated here).
        expected_size: the descriptor's size, or ``None`` when unknown.
        ref: the ingest reference quoted in error messages.

        Raises:
            DigestError: when *expected_digest* is not a valid digest.
        """
        self.expected = Digest.parse(expected_digest)
        self.expected_size = expected_size
        self.ref = ref
        self._hash = self.expected.new_hash()
        self.size = 0

    def update(self, chunk: bytes) -> None:
        """Add *chunk* to the running digest and size."""
        self._hash.update(chunk)
        self.size += len(chunk)

    @property
    def digest(self) -> str:
        """The digest of the bytes seen so far."""
        return f"{self.expected.algorithm}:{self._hash.hexdigest()}"

    def verify(self) -> None:
        """Check size, then digest, in containerd's order.

        Raises:
            SizeMismatch: ``failed commit on ref "<ref>": unexpected commit size <got>,
                expected <want>: failed precondition``.
            DigestMismatch: ``failed commit on ref "<ref>": unexpected commit digest
                <got>, expected <want>: failed precondition``.
        """
        # behaviors.md FETCH-008; containerd content/local/writer.go Commit checks size first.
        if self.expected_size is not None and self.size != self.expected_size:
            raise SizeMismatch(
                f'failed commit on ref "{self.ref}": unexpected commit size '
                f"{self.size}, expected {self.expected_size}: failed precondition",
                expected=str(self.expected_size),
                actual=str(self.size),
            )
        actual = self.digest
        if actual != str(self.expected):
            raise DigestMismatch(
                f'failed commit on ref "{self.ref}": unexpected commit digest '
                f"{actual}, expected {self.expected}: failed precondition",
                expected=str(self.expected),
                actual=actual,
            )
