"""The in-memory image index: the CRI plugin's image store (behaviors.md §14).

Image ID (config digest) → :class:`IndexedImage` with its references, chain ID, size and
config, kept in step with the metadata store by :meth:`ImageIndex.update` (cri@ab6701bd
``pkg/store/image/image.go``). Lookups follow ``localResolve`` and ``digestset``
(STORE-005/006); the CRI view of an image is :func:`to_cri_image` (STORE-004).

Readiness (the seed's "READY image" comment, upstream-issues F-29): an image is served
only while its content (target, manifest, config, and the layers the profile keeps) and
its top snapshot exist. Deviation: both runtimes still load images whose top snapshot
is missing, with a warning (behaviors.md STORE-009); the reference never serves an image
that is not fully pulled and unpacked, and reports it through :meth:`problems` instead.
"""

from __future__ import annotations

import builtins
import json
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from refpull.content import manifests as mf
from refpull.content.manifests import Descriptor, Platform
from refpull.content.store import ContentStore
from refpull.cri.images import ImageRecords
from refpull.digest import Digest, DigestError
from refpull.errors import InvalidReference, NotFoundInStore, RefpullError
from refpull.gocompat.imageref import parse_for_profile, parse_normalized_named
from refpull.profiles import Profile
from refpull.unpack.snapshots import SnapshotStore, chain_ids

__all__ = [
    "AmbiguousImage",
    "CRIImage",
    "ImageFacts",
    "ImageIndex",
    "IndexedImage",
    "image_user",
    "sort_references",
    "to_cri_image",
]

# Stored manifests are read whole to be parsed. The resolve-time cap (RES-008,
# 4,393,216 bytes) applies to roots only, so this bound is a memory guard, not a rule.
_MANIFEST_LIMIT = 32 << 20
_INT64 = re.compile(r"[+-]?[0-9]+")
_HEX64 = re.compile(r"[a-f0-9]{64}")


class AmbiguousImage(RefpullError):
    """A lookup matched several image IDs (go-digest digestset ErrDigestAmbiguous)."""

    def __init__(self) -> None:
        super().__init__("ambiguous digest string")


@dataclass(frozen=True, kw_only=True)
class ImageFacts:
    """What a record's target leads to in the content store."""

    target: Descriptor
    manifest: Descriptor
    config: Descriptor
    layers: tuple[Descriptor, ...]
    diff_ids: tuple[str, ...]
    chain_id: str
    size: int
    #: the config document, verbatim (never a shared mutable object, F-30).
    config_json: bytes
    user: str


@dataclass(frozen=True, kw_only=True)
class IndexedImage:
    """One image of the index; ``id`` is the config digest (CRI-001)."""

    id: str
    references: tuple[str, ...]
    facts: ImageFacts

    @property
    def chain_id(self) -> str:
        """The top chain ID of the image's layers (``""`` without layers)."""
        return self.facts.chain_id

    @property
    def size(self) -> int:
        """STORE-004: target + chosen manifest + config + layers."""
        return self.facts.size

    def spec(self) -> dict[str, Any]:
        """A fresh decoded copy of the image config (callers may change it, F-30)."""
        data: dict[str, Any] = json.loads(self.facts.config_json)
        return data


@dataclass(frozen=True)
class CRIImage:
    """The CRI ``Image`` message of one image (STORE-004)."""

    id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    size: int
    uid: int | None
    username: str


def _go_digest_error(text: str) -> str | None:
    """go-digest ``Parse``: None when valid, else the error kind."""
    try:
        Digest.parse(text)
    except DigestError as exc:
        return exc.reason
    return None


def _any_reference(
    ref: str, profile: Profile | None = None
) -> tuple[int, str, bool, bool] | None:
    """containerd ``reference.ParseAnyReference`` → (rank, string, tagged, canonical).

    Rank is containerd 1.6 ``sort.go`` ``refRank``: 1 name+tag+digest, 2 name+tag,
    3 name+digest, 4 name, 5 digest only. None: unparsable. A stored name is read with
    the grammar of *profile* (the one it was pulled under; REF-002/005/009 changed in
    1.7), the 1.6 grammar when None.
    """
    if _HEX64.fullmatch(ref):
        return 5, "sha256:" + ref, False, False
    if _go_digest_error(ref) is None:
        return 5, ref, False, False
    try:
        named = parse_normalized_named(ref, profile)
    except Exception:  # distribution's parse errors: the reference is unparsable
        return None
    tagged, digested = named.tag is not None, named.digest is not None
    rank = 1 if tagged and digested else 2 if tagged else 3 if digested else 4
    return rank, str(named), tagged, digested


def sort_references(
    references: Iterable[str], profile: Profile | None = None
) -> list[str]:
    """containerd 1.6 ``sortReferences`` (behaviors.md STORE-003 Δ1.6).

    Parsable references first, by rank then string; unparsable ones last, sorted.
    """
    parsed: list[tuple[int, str]] = []
    bad: list[str] = []
    for ref in references:
        any_ref = _any_reference(ref, profile)
        if any_ref is None:
            bad.append(ref)
        else:
            parsed.append((any_ref[0], any_ref[1]))
    return [text for _, text in sorted(parsed)] + sorted(bad)


def image_user(user: str) -> tuple[int | None, str]:
    """cri ``getUserFromImage``: config ``User`` → ``(uid, username)`` (STORE-004).

    The text before the first ``:`` is a uid when it is a decimal int64 (``-1``, ``+5``
    allowed, as Go ``strconv.ParseInt``), else a user name; ``""`` gives neither.
    """
    if not user:
        return None, ""
    name = user.split(":", 1)[0]
    if _INT64.fullmatch(name) and -(2**63) <= int(name) < 2**63:
        return int(name), ""
    return None, name


def to_cri_image(image: IndexedImage, profile: Profile | None = None) -> CRIImage:
    """The CRI view of *image* (cri ``toCRIImage`` + ``parseImageReferences``).

    ``repo_tags`` are the tagged references, ``repo_digests`` the canonical ones; the
    ``sha256:<id>`` reference is in neither (STORE-004).
    """
    tags: list[str] = []
    digests: list[str] = []
    for ref in image.references:
        parsed = _any_reference(ref, profile)
        if parsed is None:
            continue
        _, text, tagged, canonical = parsed
        if canonical:
            digests.append(text)
        elif tagged:
            tags.append(text)
    uid, username = image_user(image.facts.user)
    return CRIImage(image.id, tuple(tags), tuple(digests), image.size, uid, username)


def _short_match(entry: tuple[str, str], alg: str, hex_: str) -> bool:
    # go-digest digestset checkShortMatch.
    entry_hex, entry_alg = entry
    if len(entry_hex) == len(hex_):
        if entry_hex != hex_:
            return False
    elif not entry_hex.startswith(hex_):
        return False
    return not alg or entry_alg == alg


def digestset_lookup(ids: Iterable[str], text: str) -> str | None:
    """go-digest ``digestset.Set.Lookup`` over image IDs (STORE-005, STORE-006).

    Returns:
        The matching ID, or None (``ErrDigestNotFound``).

    Raises:
        AmbiguousImage: two IDs match the (short) string.
    """
    entries = sorted((i.partition(":")[2], i.partition(":")[0], i) for i in ids)
    if not entries:
        return None
    if _go_digest_error(text) == "invalid checksum digest format":
        alg, hex_ = "", text  # the raw string is searched as a hex prefix
        keys = [e[0] for e in entries]
        idx = next((n for n, k in enumerate(keys) if k >= text), len(entries))
    else:
        alg, _, hex_ = text.partition(":")
        idx = next(
            (n for n, e in enumerate(entries) if (e[0], e[1]) >= (hex_, alg)),
            len(entries),
        )
    if idx == len(entries) or not _short_match(entries[idx][:2], alg, hex_):
        return None
    if entries[idx][:2] == (hex_, alg):
        return entries[idx][2]
    if idx + 1 < len(entries) and _short_match(entries[idx + 1][:2], alg, hex_):
        raise AmbiguousImage()
    return entries[idx][2]


class ImageIndex:
    """The CRI image store, rebuilt from and reconciled with the metadata store."""

    def __init__(
        self,
        store: ImageRecords,
        content: ContentStore,
        snapshots: SnapshotStore,
        profile: Profile,
        *,
        platform: Platform | None = None,
    ) -> None:
        """Args:
        store: the metadata store (source of truth).
        content: blobs the records' targets point into.
        snapshots: unpacked layers.
        profile: ``sorted_references`` (STORE-003), ``deferred_layer_download``.
        platform: the platform picked from an index (default linux/amd64).
        """
        self.store = store
        self.content = content
        self.snapshots = snapshots
        self.profile = profile
        self.platform = platform or Platform.default()
        self._lock = threading.RLock()
        self._images: dict[str, IndexedImage] = {}
        self._refs: dict[str, str] = {}

    # -- the content walk (containerd images.Image Config/RootFS/Size) -------------

    def describe(self, target: Descriptor) -> ImageFacts:
        """Walk *target* in the content store: platform manifest, config, layers.

        Raises:
            NotFoundInStore: ``content digest <d>: not found``.
            ResolveError, UnpackError: an unusable manifest or config.
        """
        raw = self.content.read_bytes(target.digest, max_size=_MANIFEST_LIMIT)
        doc = mf.parse_manifest(raw, target.media_type, digest=target.digest)
        manifest, size = target, target.size
        while isinstance(doc, mf.ImageIndex):
            manifest = mf.select_platform(doc, self.platform, self.profile)
            raw = self.content.read_bytes(manifest.digest, max_size=_MANIFEST_LIMIT)
            doc = mf.parse_manifest(raw, manifest.media_type, digest=manifest.digest)
            size += manifest.size
        config_json = self.content.read_bytes(doc.config.digest)
        config = mf.parse_image_config(config_json)
        mf.check_layer_count(doc.layers, config.diff_ids)
        chains = chain_ids(config.diff_ids)
        user = (config.raw.get("config") or {}).get("User") or ""
        return ImageFacts(
            target=target,
            manifest=manifest,
            config=doc.config,
            layers=doc.layers,
            diff_ids=config.diff_ids,
            chain_id=chains[-1] if chains else "",
            size=size + doc.config.size + sum(layer.size for layer in doc.layers),
            config_json=config_json,
            user=str(user),
        )

    def image_id_of(self, target: Descriptor) -> str:
        """The image ID (config digest) a target leads to (cri ``image.Config``)."""
        return self.describe(target).config.digest

    # -- reconcile (pkg/store/image Update) ------------------------------------------

    def update(self, ref: str) -> None:
        """Reconcile *ref* with the metadata store (behaviors.md STORE-001).

        A missing record detaches *ref* from its image (the image goes with its last
        reference, STORE-002); a present one attaches *ref* to the image its target
        leads to, detaching it from a previous image if the reference moved.

        Raises:
            NotFoundInStore, ResolveError, UnpackError: the record's content cannot be
                read (``get image info from containerd``).
        """
        try:
            record = self.store.get(ref)
        except NotFoundInStore:
            with self._lock:
                old = self._refs.pop(ref, None)
                if old is not None:
                    self._detach(old, ref)
            return
        facts = self.describe(record.target)
        image_id = facts.config.digest
        with self._lock:
            old = self._refs.get(ref)
            if old == image_id:
                return
            if old is not None:
                self._detach(old, ref)
            self._refs[ref] = image_id
            self._attach(image_id, ref, facts)

    def _attach(self, image_id: str, ref: str, facts: ImageFacts) -> None:
        current = self._images.get(image_id)
        if current is None:
            refs: Sequence[str] = [ref]
        else:
            # cri util.MergeStringSlices: new references are appended.
            refs = [*current.references, *([] if ref in current.references else [ref])]
            facts = current.facts
        if self.profile.sorted_references:
            refs = sort_references(refs, self.profile)  # behaviors.md STORE-003 Δ1.6
        self._images[image_id] = IndexedImage(
            id=image_id, references=tuple(refs), facts=facts
        )

    def _detach(self, image_id: str, ref: str) -> None:
        current = self._images.get(image_id)
        if current is None:
            return
        refs = tuple(r for r in current.references if r != ref)
        if refs:
            self._images[image_id] = IndexedImage(
                id=image_id, references=refs, facts=current.facts
            )
        else:
            del self._images[image_id]  # STORE-002: gone with its last reference

    def forget(self, image_id: str) -> None:
        """Drop an image and its references from the index (after a removal)."""
        with self._lock:
            image = self._images.pop(image_id, None)
            for ref in image.references if image else ():
                self._refs.pop(ref, None)

    # -- lookups ------------------------------------------------------------------

    def get(self, image_id: str) -> IndexedImage | None:
        """Resolve an ID or unique ID prefix (digest-set lookup), None when unknown.

        Raises:
            AmbiguousImage: the prefix matches several images.
        """
        with self._lock:
            found = digestset_lookup(self._images, image_id)
            return None if found is None else self._images[found]

    def resolve(self, name: str) -> IndexedImage | None:
        """cri ``localResolve`` (behaviors.md STORE-005, STORE-006 ⚠BUG).

        A valid digest is an ID; else the name is normalized and looked up among the
        references; else it is taken as an ID prefix, ``""`` included (a prefix of
        every ID: the only image, or ambiguous).

        Raises:
            AmbiguousImage: ``ambiguous digest string``.
        """
        image_id = name if _go_digest_error(name) is None else ""
        if not image_id:
            try:
                normalized = str(parse_for_profile(name, self.profile))
            except InvalidReference:
                normalized = ""
            with self._lock:
                image_id = self._refs.get(normalized, "") if normalized else ""
        return self.get(image_id or name)

    def list(self) -> list[IndexedImage]:
        """Every indexed image (ready or not), by ID."""
        with self._lock:
            return [self._images[k] for k in sorted(self._images)]

    def references(self) -> dict[str, str]:
        """A copy of the reference cache: reference → image ID."""
        with self._lock:
            return dict(self._refs)

    # -- readiness ------------------------------------------------------------------

    def content_problems(self, image: IndexedImage) -> builtins.list[str]:
        """Content *image* needs but the store lacks (empty when complete).

        Target, manifest and config always; layer blobs only where the profile
        downloads every layer (seed) — containerd 1.6 skips the blobs of layers whose
        snapshot exists (PULL-003).
        """
        facts = image.facts
        needed = [facts.target, facts.manifest, facts.config]
        if not self.profile.deferred_layer_download:
            needed += facts.layers
        return [
            f"{image.id}: content {d.digest} is missing"
            for d in dict.fromkeys(needed)
            if not self.content.has(d.digest)
        ]

    def problems(self, image: IndexedImage) -> builtins.list[str]:
        """Why *image* is not READY (empty when it is): content, then top snapshot."""
        out = self.content_problems(image)
        chain = image.facts.chain_id
        if chain and not self.snapshots.exists(chain):
            out.append(f"{image.id}: snapshot {chain} is missing")
        return out

    def ready(self) -> builtins.list[IndexedImage]:
        """The images that are served (no :meth:`problems`), by ID."""
        return [image for image in self.list() if not self.problems(image)]

    # -- start-up -------------------------------------------------------------------

    def rebuild(self) -> builtins.list[str]:
        """Reload the index from the metadata store (cri ``restart.go`` loadImages).

        Every record goes through :func:`~refpull.cri.records.update_image`, so records
        other clients created become managed (STORE-009). Nothing is raised: records
        whose content cannot be read, and images that are not READY, are reported.

        Returns:
            One line per problem (empty when every image is READY).
        """
        from refpull.cri.records import RecordError, update_image

        with self._lock:
            self._images.clear()
            self._refs.clear()
        problems: builtins.list[str] = []
        for record in self.store.list():
            try:
                update_image(self.store, self, record.name, self.profile)
            except RecordError as exc:
                problems.append(f"{record.name}: {exc}")
        for image in self.list():
            problems += self.problems(image)
        return problems
