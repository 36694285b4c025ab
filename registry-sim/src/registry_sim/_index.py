"""Docker manifest lists and OCI image indexes over built images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry_sim._content import MT_DOCKER_LIST, MT_OCI_INDEX
from registry_sim._image import Image, descriptor
from registry_sim._image_config import Platform, to_json_bytes
from registry_sim._layers import sha256_digest

__all__ = ["Index"]


@dataclass(frozen=True)
class Index:
    """A Docker manifest list or OCI image index over images (or nested indexes)."""

    media_type: str
    manifest: bytes
    children: tuple[Image | Index, ...]
    entries: tuple[dict[str, Any], ...]

    @property
    def digest(self) -> str:
        """Digest of the index bytes."""
        return sha256_digest(self.manifest)

    @property
    def size(self) -> int:
        """Length of the index bytes."""
        return len(self.manifest)

    @property
    def config_digest(self) -> None:
        """An index has no config; see :meth:`image_for`."""
        return None

    @property
    def blobs(self) -> dict[str, bytes | Path]:
        """Every child's blobs."""
        out: dict[str, bytes | Path] = {}
        for child in self.children:
            out.update(child.blobs)
        return out

    @property
    def unverified(self) -> frozenset[str]:
        """Children's deliberately mismatching digests."""
        return frozenset().union(*(c.unverified for c in self.children))

    @property
    def manifests(self) -> list[tuple[str, bytes]]:
        """Children's manifests (each once), then this index."""
        out: list[tuple[str, bytes]] = []
        for child in self.children:
            out.extend(m for m in child.manifests if m not in out)
        return [*out, (self.media_type, self.manifest)]

    def image_for(
        self, os: str, architecture: str, variant: str | None = None
    ) -> Image:
        """The first child image whose entry names this platform.

        Raises:
            LookupError: no entry matches.
        """
        for child, entry in zip(self.children, self.entries, strict=True):
            plat = entry.get("platform") or {}
            wanted = (os, architecture, variant)
            if (
                plat.get("os"),
                plat.get("architecture"),
                plat.get("variant"),
            ) == wanted and isinstance(child, Image):
                return child
        raise LookupError(f"no image for {os}/{architecture}/{variant}")

    @classmethod
    def docker_list(
        cls, entries: Sequence[Image | Index | tuple[Image | Index, Platform | None]]
    ) -> Index:
        """A Docker manifest list; an entry's platform defaults to its config's.

        Args:
            entries: children, or ``(child, platform)``; platform None = no field.

        Returns:
            The index.
        """
        return cls._build(MT_DOCKER_LIST, entries, None)

    @classmethod
    def oci(
        cls,
        entries: Sequence[Image | Index | tuple[Image | Index, Platform | None]],
        *,
        annotations: Mapping[str, str] | None = None,
    ) -> Index:
        """An OCI image index; an entry's platform defaults to its config's.

        Args:
            entries: children, or ``(child, platform)``; platform None = no field.
            annotations: index-level annotations.

        Returns:
            The index.
        """
        return cls._build(MT_OCI_INDEX, entries, annotations)

    @classmethod
    def _build(
        cls,
        media_type: str,
        entries: Sequence[Image | Index | tuple[Image | Index, Platform | None]],
        annotations: Mapping[str, str] | None,
    ) -> Index:
        children: list[Image | Index] = []
        descs: list[dict[str, Any]] = []
        for entry in entries:
            if isinstance(entry, tuple):
                child, platform = entry
            else:
                child = entry
                platform = child.platform if isinstance(child, Image) else None
            desc = descriptor(child.media_type, child.digest, child.size)
            if platform is not None:
                desc["platform"] = platform.to_json()
            children.append(child)
            descs.append(desc)
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
        doc["manifests"] = descs
        if annotations:
            doc["annotations"] = dict(annotations)
        return cls(media_type, to_json_bytes(doc), tuple(children), tuple(descs))
