"""Manifests, indexes, image configs and platform selection (pure functions, no I/O).

Documents are decoded with Go ``encoding/json`` rules (``refpull.gocompat.gojson``) because that is
how containerd reads them: keys match case-insensitively, the last duplicate wins, unknown
keys are ignored. On top of that the reference validates every digest and size before any
of them can reach a URL or a path (upstream-issues.md §8, containers/image CVE-2024-3727).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from refpull import mediatypes
from refpull.content import _ocispec
from refpull.content._platforms import (
    Platform,
    matches,
    matches_exactly,
    platform_vector,
)
from refpull.digest import Digest, DigestError, sha256_digest
from refpull.errors import (
    InvalidArgument,
    NoMatchingPlatform,
    ResolveError,
    UnpackError,
    UnsupportedMediaType,
)
from refpull.gocompat.goencode import encode_value
from refpull.gocompat.goencode import marshal_indent as _marshal_indent
from refpull.gocompat.gojson import (
    GoJSONError,
    GoObject,
    decode_tree,
    decode_value,
    fold_key,
)
from refpull.profiles import Profile

__all__ = [
    "Descriptor",
    "ImageConfig",
    "ImageIndex",
    "ImageManifest",
    "Platform",
    "check_layer_count",
    "check_root_media_type",
    "parse_image_config",
    "parse_manifest",
    "rewrite_legacy_config",
    "select_platform",
    "transfer_entries",
]

_MAX_SIZE = 2**63 - 1  # Go int64


@dataclass(frozen=True, kw_only=True)
class Descriptor:
    """An OCI content descriptor. ``size == -1`` means "unknown" (schema1 blobs)."""

    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    platform: Platform | None = None
    annotations: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The OCI JSON object in Go field order (``omitempty`` fields left out)."""
        out: dict[str, Any] = {}
        if self.media_type:
            out["mediaType"] = self.media_type
        out["digest"] = self.digest
        out["size"] = self.size
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(sorted(self.annotations))
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        return out


@dataclass(frozen=True, kw_only=True)
class ImageManifest:
    """A single-platform image manifest (docker schema2 or OCI)."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    schema_version: int
    annotations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class ImageIndex:
    """A manifest list / OCI index."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    schema_version: int = 2
    annotations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class ImageConfig:
    """What the puller needs from an image config."""

    os: str
    architecture: str
    variant: str | None = None
    diff_ids: tuple[str, ...] = ()
    rootfs_type: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def _decode(data: bytes, kind: Any, what: str) -> Any:
    try:
        return decode_value(kind, decode_tree(data))
    except GoJSONError as exc:
        raise ResolveError(f"failed to unmarshal {what}: {exc}") from exc


def _descriptor(raw: dict[str, Any], where: str) -> Descriptor:
    digest = raw.get("digest", "")
    try:
        Digest.parse(digest)
    except DigestError as exc:
        # Deviation: containerd would use the string in a URL or path; we stop here.
        raise ResolveError(f"invalid digest {digest!r} in {where}: {exc}") from exc
    size = raw.get("size", 0)
    if not 0 <= size <= _MAX_SIZE:
        # Deviation: Go accepts negative sizes; a negative size is never valid content.
        raise ResolveError(f"invalid size {size} for {digest} in {where}")
    plat = raw.get("platform")
    platform = None
    if plat is not None:
        platform = Platform(
            os=plat.get("os", ""),
            architecture=plat.get("architecture", ""),
            variant=plat.get("variant") or None,
            os_version=plat.get("os.version") or None,
            os_features=tuple(plat.get("os.features") or ()),
        )
    return Descriptor(
        media_type=raw.get("mediaType", ""),
        digest=digest,
        size=size,
        urls=tuple(raw.get("urls") or ()),
        platform=platform,
        annotations=tuple(sorted((raw.get("annotations") or {}).items())),
    )


def _validate_document(data: bytes, media_type: str) -> Any:
    # containerd images/image.go validateMediaType (GHSA-5j5w-g665-5m35, 1.4.12/1.5.8/1.6.0).
    # Deviation: the seed had no such check; ambiguous documents are a security weakness,
    # so the reference rejects them in every profile.
    tree = decode_tree(data)
    if not isinstance(tree, GoObject):
        return tree  # the typed decode below reports the type error
    keys: dict[str, Any] = {}
    for key, value in tree.pairs:
        folded = fold_key(key)
        if folded is not None:
            keys[folded] = value  # Go: the last (case-insensitive) duplicate wins
    inner = keys.get("mediatype")
    inner = inner if isinstance(inner, str) else ""
    if "fslayers" in keys:
        raise ResolveError("media-type: schema 1 not supported")
    if mediatypes.is_manifest(media_type) and (
        "manifests" in keys or mediatypes.is_index(inner)
    ):
        raise ResolveError(
            f"media-type: expected manifest but found index ({media_type})"
        )
    if mediatypes.is_index(media_type) and (
        "config" in keys or "layers" in keys or mediatypes.is_manifest(inner)
    ):
        raise ResolveError(
            f"media-type: expected index but found manifest ({media_type})"
        )
    return tree


def parse_manifest(
    data: bytes, media_type: str, *, digest: str | None = None
) -> ImageManifest | ImageIndex:
    """Parse a manifest or index of *media_type*.

    Args:
        data: the document bytes (already digest-verified by the fetcher).
        media_type: the descriptor's media type (it decides the document kind).
        digest: the document digest for error messages (default: sha256 of *data*).

    Returns:
        An :class:`ImageManifest` or :class:`ImageIndex`.

    Raises:
        UnsupportedMediaType: schema1 (use :mod:`refpull.content.schema1`) or an unknown type,
            with containerd's wording (behaviors.md PULL-008).
        ResolveError: malformed JSON, wrong types, invalid digests or sizes.
    """
    check_root_media_type(media_type, digest or sha256_digest(data))
    try:
        tree = _validate_document(data, media_type)
        if mediatypes.is_index(media_type):
            raw = decode_value(_ocispec.INDEX, tree)
        else:
            raw = decode_value(_ocispec.manifest(True), tree)
    except GoJSONError as exc:
        raise ResolveError(f"failed to unmarshal {media_type}: {exc}") from exc
    annotations = tuple(sorted((raw.get("annotations") or {}).items()))
    version = raw.get("schemaVersion", 0)
    if mediatypes.is_index(media_type):
        return ImageIndex(
            media_type=media_type,
            manifests=tuple(
                _descriptor(d, "index") for d in raw.get("manifests") or ()
            ),
            schema_version=version,
            annotations=annotations,
        )
    return ImageManifest(
        media_type=media_type,
        config=_descriptor(raw.get("config") or {}, "manifest config"),
        layers=tuple(
            _descriptor(d, "manifest layers") for d in raw.get("layers") or ()
        ),
        schema_version=version,
        annotations=annotations,
    )


def check_root_media_type(media_type: str, digest: str) -> None:
    """Reject root/child media types containerd cannot unpack (behaviors.md PULL-008).

    Raises:
        UnsupportedMediaType: ``<schema1 type> not supported`` for schema1 reached from an
            index, else ``unexpected media type <mt> for <digest>: not found``.
    """
    if mediatypes.is_manifest(media_type) or mediatypes.is_index(media_type):
        return
    if not media_type:
        # behaviors.md RES-004: a root served without Content-Type has media type "";
        # containerd's image store refuses such a record (validateImage) before any
        # unpack, in both generations -- observed as InvalidArgument on 1.6.20.
        raise InvalidArgument("Target.MediaType must be set: invalid argument")
    if mediatypes.is_schema1(media_type):
        raise UnsupportedMediaType(f"{media_type} not supported", media_type=media_type)
    # containerd images/image.go Manifest: default case of the media type switch.
    raise UnsupportedMediaType(
        f"unexpected media type {media_type} for {digest}: not found",
        media_type=media_type,
    )


def select_platform(
    index: ImageIndex, platform: Platform, profile: Profile
) -> Descriptor:
    """Pick the one manifest of *index* that a pull for *platform* downloads.

    Entries without ``platform`` are kept but sort last; matches are ordered by the
    preference vector, ties keep index order (containerd ``images.LimitManifests``).

    Args:
        index: the parsed index.
        platform: the host platform (normally :meth:`Platform.default`).
        profile: ``amd64_platform_fallbacks`` adds 386 and amd64 variant fallbacks.

    Returns:
        The selected descriptor.

    Raises:
        NoMatchingPlatform: ``no match for platform in manifest: not found``.
    """
    vector = platform_vector(platform, profile)
    ranked: list[tuple[int, int, Descriptor]] = []
    for pos, desc in enumerate(index.manifests):
        if desc.platform is None:
            ranked.append((len(vector), pos, desc))
            continue
        rank = next(
            (
                i
                for i, want in enumerate(vector)
                if matches(want, desc.platform, profile)
            ),
            None,
        )
        if rank is not None:
            ranked.append((rank, pos, desc))
    if not ranked:
        raise NoMatchingPlatform("no match for platform in manifest: not found")
    return min(ranked, key=lambda item: (item[0], item[1]))[2]


def transfer_entries(index: ImageIndex, platform: Platform) -> list[Descriptor]:
    """The entries of *index* containerd 2.3's transfer service downloads (PULL-001).

    v2.3.4 core/transfer/image/imagestore.go:198-207 ``ImageFilter``: ``FilterPlatforms``
    with ``platforms.Ordered(DefaultSpec())`` keeps every entry without ``platform`` and
    every entry whose platform is the host's exactly; no ``LimitManifests`` cuts that to
    one, so all of them are fetched, configs and layers included, in index order.
    """
    return [
        desc
        for desc in index.manifests
        if desc.platform is None or matches_exactly(platform, desc.platform)
    ]


def parse_image_config(data: bytes) -> ImageConfig:
    """Parse the parts of an image config the puller uses.

    Raises:
        UnpackError: malformed JSON, wrong types, or an invalid ``rootfs.diff_ids`` entry
            (they become snapshot keys, so they are validated before use).
    """
    try:
        raw = decode_value(_ocispec.image(True), decode_tree(data))
    except GoJSONError as exc:
        raise UnpackError(f"failed to unmarshal image config: {exc}") from exc
    rootfs = raw.get("rootfs") or {}
    diff_ids = tuple(rootfs.get("diff_ids") or ())
    for diff_id in diff_ids:
        try:
            Digest.parse(diff_id)
        except DigestError as exc:
            raise UnpackError(
                f"invalid diff_id {diff_id!r} in image config: {exc}"
            ) from exc
    return ImageConfig(
        os=raw.get("os", ""),
        architecture=raw.get("architecture", ""),
        variant=raw.get("variant") or None,
        diff_ids=diff_ids,
        rootfs_type=rootfs.get("type", ""),
        raw=raw,
    )


def check_layer_count(layers: Sequence[Descriptor], diff_ids: Sequence[str]) -> None:
    """Require one diff_id per layer (behaviors.md PULL-004).

    Raises:
        UnpackError: ``number of layers and diffIDs don't match: <n> != <m>``.
    """
    if len(layers) != len(diff_ids):
        # containerd rootfs/apply.go / unpacker.go: layers first, diffIDs second.
        raise UnpackError(
            f"number of layers and diffIDs don't match: {len(layers)} != {len(diff_ids)}"
        )


def rewrite_legacy_config(
    data: bytes, desc: Descriptor, profile: Profile
) -> tuple[Descriptor, bytes]:
    """Handle a manifest whose config is ``application/octet-stream`` (PULL-007).

    The seed (``docker.ConvertManifest``) rewrites the config media type to the docker
    config type, re-serialises the manifest with ``json.MarshalIndent(m, "", "   ")`` and
    makes that new digest the image target. In 1.6.20 layers are downloaded by the
    unpacker, which never runs for such manifests, so unpacking needs layer content that
    was never fetched (containerd#10628).

    Args:
        data: the manifest bytes as served.
        desc: the manifest descriptor (its media type is kept).
        profile: ``deferred_layer_download`` selects the 1.6 outcome.

    Returns:
        ``(desc, data)`` unchanged when the config type is not octet-stream, else the
        synthetic descriptor and bytes.

    Raises:
        UnpackError: 1.6 with layers: ``content digest <first layer>: not found``.
        ResolveError: malformed manifest.
    """
    if not mediatypes.is_manifest(desc.media_type):
        return desc, data
    spec11 = profile.schema1_config_image_spec_11  # same image-spec generation switch
    kind = _ocispec.manifest(spec11)
    raw = _decode(data, kind, "data into manifest")
    config = raw.get("config") or {}
    if config.get("mediaType") != mediatypes.OCTET_STREAM:
        return desc, data
    layers = raw.get("layers") or []
    if profile.deferred_layer_download and layers:
        raise UnpackError(f"content digest {layers[0].get('digest', '')}: not found")
    raw["config"] = {**config, "mediaType": mediatypes.DOCKER_CONFIG}
    new = _marshal_indent(
        encode_value(kind, raw),
        short_control_escapes=profile.json_short_control_escapes,
    )
    new_desc = Descriptor(
        media_type=desc.media_type,
        digest=sha256_digest(new),
        size=len(new),
        urls=desc.urls,
        platform=desc.platform,
        annotations=desc.annotations,
    )
    return new_desc, new
