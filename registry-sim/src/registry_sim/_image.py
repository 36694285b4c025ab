"""Single-platform image manifests (Docker schema2, OCI) and their broken variants."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from registry_sim._content import MT_DOCKER_MANIFEST, MT_OCI_MANIFEST
from registry_sim._image_config import Config, Platform, to_json_bytes
from registry_sim._layers import Compression, Layer, sha256_digest

__all__ = [
    "MT_DOCKER_CONFIG",
    "MT_OCI_CONFIG",
    "Image",
    "descriptor",
    "layer_media_type",
]

MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
Flavour = Literal["schema2", "oci"]

_LAYER_TYPES: dict[Flavour, dict[Compression, str]] = {
    "schema2": {
        "gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "none": "application/vnd.docker.image.rootfs.diff.tar",
        "zstd": "application/vnd.docker.image.rootfs.diff.tar.zstd",
    },
    "oci": {
        "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
        "none": "application/vnd.oci.image.layer.v1.tar",
        "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    },
}


def layer_media_type(layer: Layer, flavour: Flavour) -> str:
    """The descriptor media type of ``layer`` in a ``flavour`` manifest."""
    return layer.media_type or _LAYER_TYPES[flavour][layer.compression]


def descriptor(media_type: str, digest: str, size: int) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": size}


@dataclass(frozen=True)
class Image:
    """A single-platform image manifest (Docker schema2 or OCI) and its blobs."""

    flavour: Flavour
    media_type: str
    manifest: bytes
    config: bytes
    config_descriptor: dict[str, Any]
    layer_descriptors: tuple[dict[str, Any], ...]
    layers: tuple[Layer, ...]
    blobs: dict[str, bytes | Path]
    platform: Platform
    body_media_type: str | None
    unverified: frozenset[str] = frozenset()

    @property
    def digest(self) -> str:
        """Digest of the manifest bytes."""
        return sha256_digest(self.manifest)

    @property
    def size(self) -> int:
        """Length of the manifest bytes."""
        return len(self.manifest)

    @property
    def config_digest(self) -> str:
        """The config descriptor's digest: the image ID (CRI-001)."""
        return str(self.config_descriptor["digest"])

    @property
    def diff_ids(self) -> list[str]:
        """``rootfs.diff_ids`` as written in the config."""
        return list(json.loads(self.config)["rootfs"]["diff_ids"])

    @property
    def manifests(self) -> list[tuple[str, bytes]]:
        """The one manifest as ``(media_type, bytes)``."""
        return [(self.media_type, self.manifest)]

    @classmethod
    def schema2(
        cls,
        layers: Sequence[Layer] = (),
        config: Config | None = None,
        *,
        nonce: str | None = None,
    ) -> Image:
        """A Docker image manifest v2 schema 2 (duplicate or zero layers allowed).

        Args:
            layers: base first.
            config: the configuration (default ``Config()``).
            nonce: stored as a config label so the image ID is unique.

        Returns:
            The image.
        """
        return cls._build("schema2", layers, config, nonce)

    @classmethod
    def oci(
        cls,
        layers: Sequence[Layer] = (),
        config: Config | None = None,
        *,
        nonce: str | None = None,
    ) -> Image:
        """An OCI image manifest (with its optional ``mediaType`` field set).

        Args:
            layers: base first.
            config: the configuration (default ``Config()``).
            nonce: stored as a config label so the image ID is unique.

        Returns:
            The image.
        """
        return cls._build("oci", layers, config, nonce)

    @classmethod
    def _build(
        cls,
        flavour: Flavour,
        layers: Sequence[Layer],
        config: Config | None,
        nonce: str | None,
    ) -> Image:
        cfg = config or Config()
        if nonce is not None:
            cfg = replace(cfg, nonce=nonce)
        config_bytes = cfg.to_bytes([layer.diff_id for layer in layers])
        config_type = MT_DOCKER_CONFIG if flavour == "schema2" else MT_OCI_CONFIG
        media_type = MT_DOCKER_MANIFEST if flavour == "schema2" else MT_OCI_MANIFEST
        blobs: dict[str, bytes | Path] = {sha256_digest(config_bytes): config_bytes}
        for layer in layers:
            blobs.update(layer.blobs)
        image = cls(
            flavour=flavour,
            media_type=media_type,
            manifest=b"",
            config=config_bytes,
            config_descriptor=descriptor(
                config_type, sha256_digest(config_bytes), len(config_bytes)
            ),
            layer_descriptors=tuple(
                descriptor(layer_media_type(x, flavour), x.digest, x.size)
                for x in layers
            ),
            layers=tuple(layers),
            blobs=blobs,
            platform=cfg.platform,
            body_media_type=media_type,
        )
        return image._rebuilt()

    def _rebuilt(self, **changes: Any) -> Image:
        """A copy with ``changes`` applied and the manifest bytes re-serialized."""
        new = replace(self, **changes)
        doc: dict[str, Any] = {"schemaVersion": 2}
        if new.body_media_type is not None:
            doc["mediaType"] = new.body_media_type
        doc["config"] = new.config_descriptor
        doc["layers"] = list(new.layer_descriptors)
        return replace(new, manifest=to_json_bytes(doc))

    # -- deliberately wrong artefacts -------------------------------------------------

    def with_descriptor(self, which: int | Literal["config"], **fields: Any) -> Image:
        """Override fields of one descriptor (``mediaType``, ``size``, ``urls``...).

        Args:
            which: a layer index, or ``"config"``.
            **fields: descriptor fields to set (JSON names).

        Returns:
            The changed image; blobs are untouched.
        """
        if which == "config":
            return self._rebuilt(config_descriptor={**self.config_descriptor, **fields})
        descs = list(self.layer_descriptors)
        descs[which] = {**descs[which], **fields}
        return self._rebuilt(layer_descriptors=tuple(descs))

    def with_digest_mismatch(self, which: int | Literal["config"] = 0) -> Image:
        """Store altered content under the descriptor's digest (FETCH-008).

        The last byte is flipped, so the size stays right and only the hash fails.
        """
        desc = (
            self.config_descriptor
            if which == "config"
            else self.layer_descriptors[which]
        )
        digest = str(desc["digest"])
        data = self.blobs[digest]
        raw = bytearray(data.read_bytes() if isinstance(data, Path) else data)
        raw[-1] ^= 0xFF
        return self._rebuilt(
            blobs={**self.blobs, digest: bytes(raw)},
            unverified=self.unverified | {digest},
        )

    def with_wrong_size(
        self, which: int | Literal["config"] = 0, delta: int = 1
    ) -> Image:
        """Announce a descriptor size off by ``delta`` bytes."""
        desc = (
            self.config_descriptor
            if which == "config"
            else self.layer_descriptors[which]
        )
        return self.with_descriptor(which, size=int(desc["size"]) + delta)

    def with_wrong_diff_ids(self, diff_ids: Sequence[str] | None = None) -> Image:
        """Replace ``rootfs.diff_ids`` (default: a wrong one per layer, PULL-004/005)."""
        doc = json.loads(self.config)
        count = len(doc["rootfs"]["diff_ids"])
        doc["rootfs"]["diff_ids"] = (
            list(diff_ids)
            if diff_ids is not None
            else [sha256_digest(f"wrong diff_id {i}".encode()) for i in range(count)]
        )
        config = to_json_bytes(doc)
        blobs = {k: v for k, v in self.blobs.items() if k != self.config_digest}
        blobs[sha256_digest(config)] = config
        desc = {
            **self.config_descriptor,
            "digest": sha256_digest(config),
            "size": len(config),
        }
        return self._rebuilt(config=config, config_descriptor=desc, blobs=blobs)

    def with_media_type(self, media_type: str, *, in_body: bool = True) -> Image:
        """Serve the manifest as ``media_type`` (and write it into the body's field).

        Args:
            media_type: the ``Content-Type`` the registry will send.
            in_body: also set the manifest's ``mediaType`` field (False keeps it).
        """
        body = media_type if in_body else self.body_media_type
        return self._rebuilt(media_type=media_type, body_media_type=body)

    def with_config_media_type(
        self, media_type: str = "application/octet-stream"
    ) -> Image:
        """A config descriptor with another media type (PULL-007 legacy octet-stream)."""
        return self.with_descriptor("config", mediaType=media_type)

    def without_media_type_field(self) -> Image:
        """Drop the body's ``mediaType`` field (valid for OCI, served type unchanged)."""
        return self._rebuilt(body_media_type=None)
