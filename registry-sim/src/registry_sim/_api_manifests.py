"""Manifest rules: content negotiation on GET and validation on PUT (pure functions)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from registry_sim._content import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    MT_DOCKER_LIST,
    MT_DOCKER_MANIFEST,
    MT_OCI_INDEX,
    MT_OCI_MANIFEST,
    MT_SCHEMA1,
    MT_SCHEMA1_SIGNED,
    SCHEMA1_TYPES,
    is_digest,
)
from registry_sim.storage import Storage
from registry_sim.wire import Response
from registry_sim.wire_errors import ErrorCode, error

__all__ = ["AcceptPolicy", "Chosen", "negotiate", "validate_manifest"]

_KNOWN_TYPES = MANIFEST_TYPES | INDEX_TYPES | SCHEMA1_TYPES
_GENERIC_TYPES = frozenset({"", "application/json", "application/octet-stream"})


class AcceptPolicy(StrEnum):
    """How a manifest GET/HEAD reacts to an ``Accept`` list without the stored type.

    * ``distribution`` — distribution v3 ``GetManifest``: OCI manifests/indexes the
      client did not accept are ``MANIFEST_UNKNOWN`` (by tag or digest); a Docker
      manifest list asked for by tag without the list type is replaced by its
      linux/amd64 child; everything else is served as stored.
    * ``distribution-2`` — the same checks only for tag requests (distribution 2.8).
    * ``ignore`` — always serve what is stored.
    """

    DISTRIBUTION = "distribution"
    DISTRIBUTION_2 = "distribution-2"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Chosen:
    """The manifest to answer with after negotiation."""

    media_type: str
    data: bytes
    digest: str


def negotiate(
    storage: Storage,
    repo: str,
    stored: tuple[str, bytes, str],
    *,
    accepted: set[str],
    by_tag: bool,
    policy: str,
) -> Chosen | Response:
    """Pick what to serve for a stored manifest, or the error distribution sends.

    https://github.com/distribution/distribution/blob/v3.0.0/registry/handlers/manifests.go
    (``GetManifest``); the OCI spec leaves negotiation to the registry.
    """
    media_type, data, digest = stored
    checks = policy == AcceptPolicy.DISTRIBUTION or (
        policy == AcceptPolicy.DISTRIBUTION_2 and by_tag
    )
    if not checks:
        return Chosen(media_type, data, digest)
    # "OCI manifest found, but accept header does not support OCI manifests"
    if media_type == MT_OCI_MANIFEST and MT_OCI_MANIFEST not in accepted:
        return error(
            ErrorCode.MANIFEST_UNKNOWN,
            message="OCI manifest found, but accept header does not support OCI manifests",
        )
    if media_type == MT_OCI_INDEX and MT_OCI_INDEX not in accepted:
        return error(
            ErrorCode.MANIFEST_UNKNOWN,
            message="OCI index found, but accept header does not support OCI indexes",
        )
    if by_tag and media_type == MT_DOCKER_LIST and MT_DOCKER_LIST not in accepted:
        return _default_platform_child(storage, repo, data, accepted)
    # Deviation: distribution 2.x rewrote an unaccepted schema2 manifest into a newly
    # signed schema1 document; v3 (and we) serve schema2 as stored.
    return Chosen(media_type, data, digest)


def _default_platform_child(
    storage: Storage, repo: str, data: bytes, accepted: set[str]
) -> Chosen | Response:
    # distribution: "Find the image manifest corresponding to the default platform"
    # (linux/amd64) and serve it instead of the list to an old client.
    try:
        entries = json.loads(data).get("manifests", [])
        child = next(
            e["digest"]
            for e in entries
            if isinstance(e, dict)
            and isinstance(e.get("platform"), dict)
            and e["platform"].get("os") == "linux"
            and e["platform"].get("architecture") == "amd64"
        )
    except (ValueError, AttributeError, StopIteration, KeyError, TypeError):
        return error(ErrorCode.MANIFEST_UNKNOWN)
    found = storage.get_manifest(repo, child) if isinstance(child, str) else None
    if found is None:
        return error(ErrorCode.MANIFEST_UNKNOWN, detail=f"unknown revision {child}")
    if found[0] == MT_DOCKER_MANIFEST and MT_DOCKER_MANIFEST not in accepted:
        return error(
            ErrorCode.MANIFEST_INVALID,
            message="Schema 2 manifest not supported by client",
        )
    return Chosen(*found)


def _effective_type(content_type: str, document: dict[str, Any]) -> str | None:
    declared = document.get("mediaType")
    if content_type in _KNOWN_TYPES:
        return content_type
    if content_type not in _GENERIC_TYPES:
        return None
    if isinstance(declared, str) and declared in _KNOWN_TYPES:
        return declared
    if document.get("schemaVersion") == 1:
        return MT_SCHEMA1_SIGNED if "signatures" in document else MT_SCHEMA1
    return None


def validate_manifest(
    content_type: str,
    data: bytes,
    *,
    has_blob: Callable[[str], bool],
    has_manifest: Callable[[str], bool],
) -> str | Response:
    """Check a pushed manifest the way distribution does before storing it.

    https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pushing-manifests
    "If the manifest is invalid ... the registry MUST respond with 400 ...
     MANIFEST_INVALID"; "...references a blob ... unknown ... MANIFEST_BLOB_UNKNOWN".

    Args:
        content_type: the request's ``Content-Type`` without parameters.
        data: the body.
        has_blob: whether a blob digest is linked in the target repository.
        has_manifest: whether a manifest digest is stored in the target repository.

    Returns:
        The media type to store the manifest under, or the error response.
    """
    try:
        document = json.loads(data)
    except ValueError:
        return error(ErrorCode.MANIFEST_INVALID, detail="manifest is not valid JSON")
    if not isinstance(document, dict):
        return error(ErrorCode.MANIFEST_INVALID, detail="manifest is not a JSON object")
    media_type = _effective_type(content_type, document)
    if media_type is None:
        return error(
            ErrorCode.MANIFEST_INVALID,
            detail=f"unsupported manifest media type {content_type!r}",
        )
    declared = document.get("mediaType")
    if declared is not None and declared != media_type:
        return error(
            ErrorCode.MANIFEST_INVALID,
            detail=f"mediaType {declared!r} does not match {media_type!r}",
        )
    if media_type in SCHEMA1_TYPES:
        # Deviation: schema1 signatures and fsLayers are not verified; the simulator
        # only stores such documents (distribution v3 refuses them altogether).
        return _expect_version(document, 1) or media_type
    problem = _expect_version(document, 2)
    if problem is not None:
        return problem
    if media_type in INDEX_TYPES:
        return _check_refs(document, ("manifests",), has_manifest) or media_type
    return _check_refs(document, ("config", "layers"), has_blob) or media_type


def _expect_version(document: dict[str, Any], version: int) -> Response | None:
    found = document.get("schemaVersion")
    if found != version or isinstance(found, bool):
        return error(
            ErrorCode.MANIFEST_INVALID,
            detail=f"schemaVersion must be {version}, got {found!r}",
        )
    return None


def _descriptors(document: dict[str, Any], key: str) -> list[Any] | None:
    value = document.get(key)
    if key == "config":
        return [value] if isinstance(value, dict) else None
    return value if isinstance(value, list) else None


def _check_refs(
    document: dict[str, Any], keys: tuple[str, ...], exists: Callable[[str], bool]
) -> Response | None:
    for key in keys:
        entries = _descriptors(document, key)
        if entries is None:
            return error(ErrorCode.MANIFEST_INVALID, detail=f"missing or bad {key!r}")
        for entry in entries:
            problem = _check_descriptor(entry, exists)
            if problem is not None:
                return problem
    return None


def _check_descriptor(entry: Any, exists: Callable[[str], bool]) -> Response | None:
    if not isinstance(entry, dict):
        return error(ErrorCode.MANIFEST_INVALID, detail="descriptor is not an object")
    digest, size = entry.get("digest"), entry.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return error(ErrorCode.MANIFEST_INVALID, detail=f"bad size {size!r}")
    if not isinstance(digest, str) or not is_digest(digest):
        return error(ErrorCode.DIGEST_INVALID, detail=f"bad digest {digest!r}")
    # Foreign layers (with "urls") need not be in the registry.
    if entry.get("urls"):
        return None
    if not exists(digest):
        return error(ErrorCode.MANIFEST_BLOB_UNKNOWN, detail=digest)
    return None
