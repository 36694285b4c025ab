"""Docker image manifest v2 schema 1 documents, signed the libtrust "prettyjws" way.

The signed form (libtrust ``JSONSignature.PrettySignature``): the payload is the
manifest indented with 3 spaces; its last ``}`` and the whitespace before it are cut
off (``formatLength``/``formatTail`` in the protected header record where) and a
``"signatures"`` member is spliced in. A reader recovers the payload as
``body[:formatLength] + base64url_decode(formatTail)`` (behaviors.md S1-002).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

from cryptography.hazmat.primitives.asymmetric import ec

from registry_sim import _jose
from registry_sim._content import MT_SCHEMA1, MT_SCHEMA1_SIGNED
from registry_sim._image_config import Config, to_json_bytes
from registry_sim._layers import Layer, sha256_digest

__all__ = ["MALFORMED_KINDS", "Schema1", "Schema1Entry", "schema1_key"]

Malformed = Literal[
    "bad-protected-base64",
    "format-length-beyond-body",
    "negative-format-length",
    "non-integer-format-length",
    "bad-tail",
    "no-signatures",
    "format-length-zero",
    "extra-layers-key",
    "extra-manifests-key",
]
MALFORMED_KINDS: tuple[Malformed, ...] = get_args(Malformed)
_SIGNED_AT = "2024-01-01T00:00:00Z"
_P256_ORDER = int(
    "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16
)


def schema1_key(seed: str = "registry-sim") -> ec.EllipticCurvePrivateKey:
    """A P-256 signing key derived from ``seed`` (same seed, same key).

    Args:
        seed: any text.

    Returns:
        The private key.
    """
    scalar = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")
    return ec.derive_private_key(scalar % (_P256_ORDER - 1) + 1, ec.SECP256R1())


@dataclass(frozen=True)
class Schema1Entry:
    """One history item with its fsLayer (given base first to the builder).

    Args:
        layer: the blob; None = Docker's 32-byte empty gzip layer.
        throwaway: written as ``"throwaway"`` when not None (S1-006).
        size: written as ``"Size"`` when not None (S1-006: 0 means empty).
        created_by: the command recorded in ``container_config.Cmd``.
        created: RFC 3339 creation time.
        extra: more keys for this v1Compatibility object (e.g. ``{"os": "x"}``).
    """

    layer: Layer | None = None
    throwaway: bool | None = None
    size: int | None = None
    created_by: str = ""
    created: str = "1970-01-01T00:00:00Z"
    extra: Mapping[str, Any] | None = None


def _v1_compat(
    entries: Sequence[Schema1Entry], config: Config, blob_sums: Sequence[str]
) -> list[str]:
    """v1Compatibility strings, newest first; the newest carries the config."""
    out: list[str] = []
    parent = ""
    for i, entry in enumerate(entries):
        seed = f"{parent} {blob_sums[i]} {i} {config.nonce or ''}"
        layer_id = hashlib.sha256(seed.encode()).hexdigest()
        obj: dict[str, Any] = {"id": layer_id}
        if parent:
            obj["parent"] = parent
        obj["created"] = entry.created
        obj["container_config"] = {"Cmd": ["/bin/sh", "-c", entry.created_by]}
        if entry.throwaway is not None:
            obj["throwaway"] = entry.throwaway
        if entry.size is not None:
            obj["Size"] = entry.size
        if i == len(entries) - 1:
            obj.update(architecture=config.architecture, os=config.os)
            obj["config"] = config.container_config()
        obj.update(entry.extra or {})
        out.append(json.dumps(obj, separators=(",", ":"), sort_keys=True))
        parent = layer_id
    return out[::-1]


def _protected(payload: bytes, kind: Malformed | None) -> tuple[str, int]:
    """The protected header for ``payload`` (possibly broken as ``kind`` says)."""
    # libtrust jsonsign.go NewJSONSignature: formatLength ends after the last
    # non-space byte before the final '}', formatTail is the rest ("\n}")
    close = len(payload.rstrip()) - 1
    length = len(payload[:close].rstrip())
    tail = _jose.b64url_encode(payload[length:])
    if kind == "format-length-zero":
        length, tail = 0, _jose.b64url_encode(payload)
    header: dict[str, Any] = {"formatLength": length, "formatTail": tail}
    header["time"] = _SIGNED_AT
    if kind == "format-length-beyond-body":
        header["formatLength"] = 8 * len(payload) + 100_000
    if kind == "negative-format-length":
        header["formatLength"] = -1  # containerd 1.6.20 panics slicing body[:-1]
    if kind == "bad-tail":
        header["formatTail"] = "!!not base64!!"
    text = json.dumps(header, separators=(",", ":"))
    if kind == "non-integer-format-length":
        text = text.replace(f'"formatLength":{length},', f'"formatLength":{length}.5,')
    protected = _jose.b64url_encode(text.encode())
    if kind == "bad-protected-base64":
        while len(protected) % 4 != 1:  # no valid base64url has length % 4 == 1
            protected += "A"
    return protected, length


def _sign(
    payload: bytes, key: ec.EllipticCurvePrivateKey, kind: Malformed | None
) -> bytes:
    """The prettyjws body: payload with a "signatures" member spliced in."""
    protected, cut = _protected(payload, kind)
    signing_input = f"{protected}.{_jose.b64url_encode(payload)}".encode()
    signature = {
        "header": {"jwk": _jose.ec_public_jwk(key.public_key()), "alg": "ES256"},
        "signature": _jose.b64url_encode(_jose.sign(key, signing_input, "ES256")),
        "protected": protected,
    }
    sigs = [] if kind == "no-signatures" else [signature]
    if kind == "format-length-zero":
        cut = len(payload[: len(payload.rstrip()) - 1].rstrip())
    block = json.dumps(sigs, indent=3).replace("\n", "\n   ")
    return payload[:cut] + b',\n   "signatures": ' + block.encode() + payload[cut:]


@dataclass(frozen=True)
class Schema1:
    """A schema1 manifest (signed prettyjws or unsigned ``+json``) and its blobs.

    ``digest`` is what distribution addresses it by: the sha256 of the
    signature-stripped ``payload``; ``body_digest`` hashes the served bytes.
    """

    media_type: str
    manifest: bytes
    payload: bytes
    blobs: dict[str, bytes | Path]
    name: str
    tag: str
    entries: tuple[Schema1Entry, ...]
    config_: Config
    extra: Mapping[str, Any] | None = None
    key: ec.EllipticCurvePrivateKey | None = None
    unverified: frozenset[str] = frozenset()

    @property
    def digest(self) -> str:
        """sha256 of the canonical payload (distribution's manifest digest)."""
        return sha256_digest(self.payload)

    @property
    def body_digest(self) -> str:
        """sha256 of the bytes as served."""
        return sha256_digest(self.manifest)

    @property
    def size(self) -> int:
        """Length of the served bytes."""
        return len(self.manifest)

    @property
    def config_digest(self) -> None:
        """None: the puller synthesizes the config (S1-008)."""
        return None

    @property
    def manifests(self) -> list[tuple[str, bytes]]:
        """The one manifest as ``(media_type, bytes)``."""
        return [(self.media_type, self.manifest)]

    @classmethod
    def signed(
        cls,
        entries: Sequence[Schema1Entry | Layer],
        *,
        name: str = "test/schema1",
        tag: str = "latest",
        config: Config | None = None,
        nonce: str | None = None,
        key: ec.EllipticCurvePrivateKey | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Schema1:
        """A libtrust-signed schema1 manifest (``+prettyjws``), ES256 over the payload.

        Args:
            entries: history items base first (a Layer = a plain non-empty entry).
            name: the ``name`` field (the repository).
            tag: the ``tag`` field.
            config: os/arch/env/cmd for the newest v1Compatibility.
            nonce: makes the payload (and its digest) unique.
            key: the signing key (default: :func:`schema1_key`).
            extra: top-level keys added to the payload before signing.

        Returns:
            The signed manifest.
        """
        return cls._build(
            MT_SCHEMA1_SIGNED, entries, name, tag, config, nonce, key, extra, None
        )

    @classmethod
    def unsigned(
        cls,
        entries: Sequence[Schema1Entry | Layer],
        *,
        name: str = "test/schema1",
        tag: str = "latest",
        config: Config | None = None,
        nonce: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Schema1:
        """An unsigned schema1 manifest (``application/vnd...v1+json``).

        Args:
            entries: history items base first.
            name: the ``name`` field.
            tag: the ``tag`` field.
            config: os/arch/env/cmd for the newest v1Compatibility.
            nonce: makes the payload unique.
            extra: top-level keys added to the payload.

        Returns:
            The manifest; its body is the payload itself.
        """
        return cls._build(
            MT_SCHEMA1, entries, name, tag, config, nonce, None, extra, None
        )

    def malformed(self, kind: Malformed) -> Schema1:
        """The same signed manifest broken in one way (see :data:`MALFORMED_KINDS`).

        ``extra-layers-key``/``extra-manifests-key`` add ``"layers": []`` or
        ``"manifests": []`` to the payload and sign it properly (S1-005); the other
        kinds break the signature block (S1-002/S1-003); ``format-length-zero`` is
        well-formed but puts the whole payload into the tail.
        """
        extra = dict(self.extra or {})
        if kind in ("extra-layers-key", "extra-manifests-key"):
            extra["layers" if kind == "extra-layers-key" else "manifests"] = []
        return self._build(
            MT_SCHEMA1_SIGNED,
            self.entries,
            self.name,
            self.tag,
            self.config_,
            None,
            self.key,
            extra,
            kind,
        )

    @classmethod
    def _build(
        cls,
        media_type: str,
        entries: Sequence[Schema1Entry | Layer],
        name: str,
        tag: str,
        config: Config | None,
        nonce: str | None,
        key: ec.EllipticCurvePrivateKey | None,
        extra: Mapping[str, Any] | None,
        kind: Malformed | None,
    ) -> Schema1:
        items = tuple(
            e if isinstance(e, Schema1Entry) else Schema1Entry(e) for e in entries
        )
        cfg = config or Config()
        if nonce is not None:
            cfg = replace(cfg, nonce=nonce)
        layers = [item.layer or Layer.empty_gzip() for item in items]
        blob_sums = [layer.digest for layer in layers]
        doc: dict[str, Any] = {
            "schemaVersion": 1,
            "name": name,
            "tag": tag,
            "architecture": cfg.architecture,
            "fsLayers": [{"blobSum": d} for d in blob_sums[::-1]],  # newest first
            "history": [
                {"v1Compatibility": s} for s in _v1_compat(items, cfg, blob_sums)
            ],
        }
        doc.update(extra or {})
        payload = to_json_bytes(doc)
        body = payload
        if media_type == MT_SCHEMA1_SIGNED:
            body = _sign(payload, key or schema1_key(), kind)
        blobs: dict[str, bytes | Path] = {}
        for layer in layers:
            blobs.update(layer.blobs)
        return cls(media_type, body, payload, blobs, name, tag, items, cfg, extra, key)
