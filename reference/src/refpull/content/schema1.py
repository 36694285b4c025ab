"""Docker schema1 -> OCI conversion, sans-IO (behaviors.md §12, S1-001..S1-010).

Flow (what containerd's ``remotes/docker/schema1`` converter does, in our own words)::

    conv = Schema1Converter.parse(raw_manifest_bytes, profile)     # strip, decode, plan
    for desc in conv.blobs_to_fetch():                              # base-first, size -1
        ... fetch + verify desc.digest, then
        state = blob_state(open_blob(desc.digest), profile)         # diffID + "all zero"
    image = conv.build({blob: state.diff_id}, sizes, empty_blobs={blobs all zero})

``image.config_bytes`` is byte-identical to containerd's synthesized config (Go
``json.MarshalIndent(img, "", "   ")`` of image-spec's ``Image``), so ``image.config_desc``
digest is the CRI image ID; ``image.manifest_desc`` is the new image target (S1-009).

The JWS signature is never checked (as in both runtimes). Unlike them, a manifest pulled
by digest must match that digest before it is used (:func:`check_requested_digest`,
catalog S1-004, SECURITY).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Final

from refpull import mediatypes
from refpull.content import _ocispec
from refpull.content.compression import NONE, open_decompressed
from refpull.content.manifests import Descriptor
from refpull.digest import Digest, DigestError, sha256_digest
from refpull.errors import DigestMismatch, Schema1Error
from refpull.gocompat.goencode import encode_value, marshal_indent
from refpull.gocompat.gojson import GoJSONError, GoTime, decode_tree, decode_value
from refpull.profiles import Profile

__all__ = [
    "MANIFEST_SIZE_LIMIT",
    "BlobState",
    "ConvertedImage",
    "Schema1Converter",
    "blob_state",
    "check_requested_digest",
    "strip_signature",
]

#: converter.go manifestSizeLimit = 8e6: the body is silently truncated beyond it (S1-002).
MANIFEST_SIZE_LIMIT: Final = 8_000_000

_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def _jose_b64decode(value: str) -> bytes:
    # converter.go joseBase64UrlDecode: padding re-added from the (byte) length.
    rest = len(value.encode("utf-8")) % 4
    if rest == 1:
        raise ValueError("illegal base64url string")
    padded = value + "=" * ((4 - rest) % 4)
    clean = padded.replace("\r", "").replace("\n", "")  # Go's decoder skips newlines
    if _B64URL.fullmatch(clean) is None or len(clean) % 4:
        bad = next(
            (i for i, ch in enumerate(clean) if ch not in "=" and not ch.isalnum()),
            clean.find("="),
        )
        raise ValueError(f"illegal base64 data at input byte {max(bad, 0)}")
    try:
        return base64.urlsafe_b64decode(clean)
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - regex guards it
        raise ValueError("illegal base64 data at input byte 0") from exc


def strip_signature(raw: bytes) -> bytes:
    """Return the canonical payload of a signed schema1 manifest (S1-002, S1-003).

    The payload is ``raw[:formatLength] + base64url(formatTail)`` from the first
    signature's protected header.

    Args:
        raw: the manifest body (callers truncate it to :data:`MANIFEST_SIZE_LIMIT`).

    Returns:
        The payload bytes (what is parsed, and hashed for a tag resolved by GET).

    Raises:
        Schema1Error: ``no signatures``, ``could not decode <p>: …``,
            ``invalid protected length block``, ``invalid tail base 64 value: …``, or a Go
            JSON error text. Hostile headers never crash.
    """
    try:
        sig = decode_value(_ocispec.SIGNATURE, decode_tree(raw))
    except GoJSONError as exc:
        raise Schema1Error(str(exc)) from exc
    signatures = sig.get("signatures") or []
    if not signatures:
        raise Schema1Error("no signatures")
    protected = signatures[0].get("protected", "")
    try:
        block_bytes = _jose_b64decode(protected)
    except ValueError as exc:
        raise Schema1Error(f"could not decode {protected}: {exc}") from exc
    try:
        block = decode_value(_ocispec.PROTECTED_BLOCK, decode_tree(block_bytes))
    except GoJSONError as exc:
        raise Schema1Error(str(exc)) from exc
    length = block.get("formatLength", 0)
    # Deviation: a negative formatLength makes Go panic (slice bounds out of range,
    # behaviors.md S1-003); the reference reports the same error as a too-large one.
    if length > len(raw) or length < 0:
        raise Schema1Error("invalid protected length block")
    try:
        tail = _jose_b64decode(block.get("formatTail", ""))
    except ValueError as exc:
        raise Schema1Error(f"invalid tail base 64 value: {exc}") from exc
    return raw[:length] + tail


def check_requested_digest(raw: bytes, requested: str) -> None:
    """Refuse a schema1 body that is not the content of the digest it was pulled by.

    The digest may name the signature-stripped payload (what containerd computes,
    S1-002) or the body as served (what some registries use, containerd#2840); either
    is accepted, anything else is refused before the document is parsed.

    Args:
        raw: the manifest body as read (truncated at :data:`MANIFEST_SIZE_LIMIT`).
        requested: the digest of the ``name@digest`` reference.

    Raises:
        DigestMismatch: neither the payload nor the body hashes to *requested*
            (``…: failed precondition``, like a failed content commit).
        DigestError: *requested* is not a valid digest.
    """
    # Deviation: containerd reads schema1 manifests straight from the fetcher and never
    # compares them with the requested digest (behaviors.md S1-004 ⚠SEC, F-23); the
    # reference checks, in every profile (catalog S1-004, SECURITY).
    expected = Digest.parse(requested)
    body = expected.new_hash()
    body.update(raw)
    actual = f"{expected.algorithm}:{body.hexdigest()}"
    if actual == requested:
        return
    try:
        payload = expected.new_hash()
        payload.update(strip_signature(raw))
        actual = f"{expected.algorithm}:{payload.hexdigest()}"
    except Schema1Error:
        pass  # no payload to compare: the body's digest is reported
    if actual != requested:
        raise DigestMismatch(
            f"schema1 manifest does not match the requested digest {requested}: "
            f"content is {actual}: failed precondition",
            expected=requested,
            actual=actual,
        )


@dataclass(frozen=True)
class BlobState:
    """What S1-007 learns from a downloaded blob."""

    diff_id: str
    #: every decompressed byte is 0x00 (including zero length): the layer is dropped.
    empty: bool
    compression: str = NONE


def blob_state(fileobj: BinaryIO, profile: Profile) -> BlobState:
    """Decompress a schema1 blob by magic and compute its diffID and emptiness (S1-007).

    Args:
        fileobj: the verified blob, seekable, positioned at its start.
        profile: ``zstd_layers`` decides whether zstd is recognised.
    """
    digester = hashlib.sha256()
    empty = True
    with open_decompressed(fileobj, zstd=profile.zstd_layers) as (kind, reader):
        for chunk in iter(lambda: reader.read(1 << 20), b""):
            digester.update(chunk)
            if empty and chunk.count(0) != len(chunk):
                empty = False
    return BlobState("sha256:" + digester.hexdigest(), empty, kind)


@dataclass(frozen=True)
class ConvertedImage:
    """The result of a conversion: new manifest and config, and the layer list."""

    manifest_desc: Descriptor
    manifest_bytes: bytes
    config_desc: Descriptor
    config_bytes: bytes
    #: layer descriptors in diff_id order (duplicates kept, S1-009).
    layers: tuple[Descriptor, ...]
    #: ``rootfs.diff_ids`` of the synthesized config, aligned with ``layers``.
    diff_ids: tuple[str, ...]

    @property
    def image_id(self) -> str:
        """The CRI image ID: the config digest (S1-008)."""
        return self.config_desc.digest


def _go_error(prefix: str, exc: GoJSONError) -> Schema1Error:
    return Schema1Error(f"{prefix}{exc}")


@dataclass(frozen=True)
class _Layer:
    blob_sum: str
    v1_compatibility: str


class Schema1Converter:
    """A parsed schema1 manifest and its download plan. Build with :meth:`parse`."""

    def __init__(
        self,
        layers: tuple[_Layer, ...],
        planned_empty: Mapping[str, bool],
        profile: Profile,
    ) -> None:
        self._layers = layers
        self._planned_empty = dict(planned_empty)
        self.profile = profile

    @classmethod
    def parse(cls, raw: bytes, profile: Profile) -> Schema1Converter:
        """Strip the signature, decode the manifest and plan the downloads.

        Args:
            raw: the manifest body as served (truncated at 8,000,000 bytes like Go).
            profile: ``schema1_rejects_ambiguous`` (S1-005).

        Returns:
            The converter.

        Raises:
            Schema1Error: S1-002/S1-003 signature errors, JSON errors, S1-005
                ``converter: expected schema1 document but found extra keys``,
                S1-006 ``invalid schema 1 manifest, history and layer mismatch`` and
                malformed ``v1Compatibility`` (Go's type error text), invalid blobSums.
        """
        payload = strip_signature(raw[:MANIFEST_SIZE_LIMIT])
        try:
            doc = decode_value(_ocispec.SCHEMA1_MANIFEST, decode_tree(payload))
        except GoJSONError as exc:
            raise Schema1Error(str(exc)) from exc
        # behaviors.md S1-005 (containerd 70c88f50): any `layers`/`manifests` value, even
        # `null` or `[]`, is a non-empty json.RawMessage. Not ⚠SEC in the catalog and the
        # reference reads only the schema1 fields, so the seed profile accepts them.
        if profile.schema1_rejects_ambiguous and (
            doc.get("layers") or doc.get("manifests")
        ):
            raise Schema1Error(
                "converter: expected schema1 document but found extra keys"
            )
        fs_layers = doc.get("fsLayers") or []
        history = doc.get("history") or []
        if len(fs_layers) != len(history):
            raise Schema1Error("invalid schema 1 manifest, history and layer mismatch")
        layers = tuple(
            _Layer(f.get("blobSum", ""), h.get("v1Compatibility", ""))
            for f, h in zip(fs_layers, history, strict=True)
        )
        planned: dict[str, bool] = {}
        for layer in layers:
            try:
                Digest.parse(layer.blob_sum)
            except DigestError as exc:
                # Deviation: Go would put the string into a blob URL; we refuse it first.
                raise Schema1Error(
                    f"invalid blobSum {layer.blob_sum!r}: {exc}"
                ) from exc
            if layer.blob_sum not in planned:
                # S1-006: the first (top-most) occurrence of a blob decides.
                planned[layer.blob_sum] = _is_empty_layer(layer.v1_compatibility)
        return cls(layers, planned, profile)

    def blobs_to_fetch(self) -> list[Descriptor]:
        """Non-empty blobs, de-duplicated, base layer first, size unknown (``-1``)."""
        # Go prepends while walking top-down, so the order is reversed first-occurrence.
        order = []
        for layer in self._layers:
            if not self._planned_empty[layer.blob_sum] and layer.blob_sum not in order:
                order.append(layer.blob_sum)
        order.reverse()
        return [
            Descriptor(media_type=mediatypes.DOCKER_LAYER, digest=blob, size=-1)
            for blob in order
        ]

    def _states(
        self, diff_ids: Mapping[str, str], empty_blobs: Collection[str]
    ) -> dict[str, BlobState | None]:
        states: dict[str, BlobState | None] = {}
        for blob, planned_empty in self._planned_empty.items():
            if planned_empty:
                states[blob] = None
                continue
            diff_id = diff_ids.get(blob)
            if diff_id is None:
                raise Schema1Error(f"missing diff id for blob {blob}")
            try:
                Digest.parse(diff_id)
            except DigestError as exc:
                raise Schema1Error(f"invalid diff id {diff_id!r}: {exc}") from exc
            states[blob] = BlobState(diff_id, blob in empty_blobs)
        return states

    def build(
        self,
        diff_ids: Mapping[str, str],
        sizes: Mapping[str, int] | None = None,
        *,
        empty_blobs: Collection[str] = (),
    ) -> ConvertedImage:
        """Synthesize config and manifest from the downloaded blobs' states.

        Args:
            diff_ids: blob digest -> uncompressed digest, for every fetched blob.
            sizes: blob digest -> size in bytes, for every fetched blob.
            empty_blobs: fetched blobs whose decompressed bytes are all zero (S1-007).

        Returns:
            The :class:`ConvertedImage`.

        Raises:
            Schema1Error: S1-010 errors (``schema 1 conversion failed: no history``,
                ``schema 1 conversion failed: failed to unmarshal history: …``,
                ``failed to unmarshal image from schema 1 history: …``), or a missing
                diff id or size.
        """
        states = self._states(diff_ids, empty_blobs)
        history, layer_diff_ids = self._history(states)
        spec11 = self.profile.schema1_config_image_spec_11
        image_kind = _ocispec.image(
            spec11, embedded_platform=self.profile.image_config_embeds_platform
        )
        try:
            top = self._layers[0].v1_compatibility.encode("utf-8")
            image = decode_value(image_kind, decode_tree(top))
        except GoJSONError as exc:
            raise _go_error(
                "failed to unmarshal image from schema 1 history: ", exc
            ) from exc
        image["history"] = history
        image["rootfs"] = {"type": "layers", "diff_ids": layer_diff_ids}
        # behaviors.md S1-008: the escapes of \b and \f follow the Go that built it.
        short = self.profile.json_short_control_escapes
        config_bytes = marshal_indent(
            encode_value(image_kind, image), short_control_escapes=short
        )
        config_desc = Descriptor(
            media_type=mediatypes.OCI_CONFIG,
            digest=sha256_digest(config_bytes),
            size=len(config_bytes),
        )
        layers = self._layer_descriptors(states, layer_diff_ids, sizes or {})
        manifest = {
            "schemaVersion": 2,
            "config": config_desc.to_json(),
            "layers": [d.to_json() for d in layers],
        }
        manifest_kind = _ocispec.manifest(spec11)
        manifest_bytes = marshal_indent(
            encode_value(manifest_kind, manifest), short_control_escapes=short
        )
        manifest_desc = Descriptor(
            media_type=mediatypes.OCI_MANIFEST,
            digest=sha256_digest(manifest_bytes),
            size=len(manifest_bytes),
        )
        return ConvertedImage(
            manifest_desc=manifest_desc,
            manifest_bytes=manifest_bytes,
            config_desc=config_desc,
            config_bytes=config_bytes,
            layers=tuple(layers),
            diff_ids=tuple(layer_diff_ids),
        )

    def _history(
        self, states: Mapping[str, BlobState | None]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        # converter.go schema1ManifestHistory: one entry per history item, reversed.
        if not self._layers:
            raise Schema1Error("schema 1 conversion failed: no history")
        history: list[dict[str, Any]] = []
        diff_ids: list[str] = []
        for layer in self._layers:
            try:
                h = decode_value(
                    _ocispec.V1_HISTORY, decode_tree(layer.v1_compatibility.encode())
                )
            except GoJSONError as exc:
                raise _go_error(
                    "schema 1 conversion failed: failed to unmarshal history: ", exc
                ) from exc
            state = states[layer.blob_sum]
            empty = state is None or state.empty
            cmd = (h.get("container_config") or {}).get("Cmd") or []
            history.append(
                {
                    "created": h.get("created") or GoTime.zero(),  # always emitted
                    "created_by": " ".join(cmd),
                    "author": h.get("author", ""),
                    "comment": h.get("comment", ""),
                    "empty_layer": empty,
                }
            )
            if state is not None and not state.empty:
                diff_ids.append(state.diff_id)
        history.reverse()
        diff_ids.reverse()
        return history, diff_ids

    def _layer_descriptors(
        self,
        states: Mapping[str, BlobState | None],
        diff_ids: list[str],
        sizes: Mapping[str, int],
    ) -> list[Descriptor]:
        # converter.go keeps one descriptor per diffID (layerBlobs[diffID]); the last
        # fetched blob wins. Uncompressed blobs have diffID == digest (tar media type).
        by_diff: dict[str, Descriptor] = {}
        for desc in self.blobs_to_fetch():
            state = states[desc.digest]
            assert state is not None
            size = sizes.get(desc.digest)
            if size is None or size < 0:
                raise Schema1Error(f"missing size for blob {desc.digest}")
            media_type = (
                mediatypes.DOCKER_LAYER_UNCOMPRESSED
                if state.diff_id == desc.digest
                else mediatypes.DOCKER_LAYER
            )
            by_diff[state.diff_id] = Descriptor(
                media_type=media_type, digest=desc.digest, size=size
            )
        return [by_diff[d] for d in diff_ids]


def _is_empty_layer(v1_compatibility: str) -> bool:
    # converter.go isEmptyLayer: `throwaway` wins, else `Size == 0`, else not empty.
    try:
        h = decode_value(_ocispec.V1_HISTORY, decode_tree(v1_compatibility.encode()))
    except GoJSONError as exc:
        raise Schema1Error(str(exc)) from exc
    throwaway = h.get("throwaway")
    if throwaway is not None:
        return bool(throwaway)
    size = h.get("Size")
    return size is not None and size == 0
