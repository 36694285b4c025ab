"""The Puller: parse, resolve, fetch, convert, unpack -- the one place that runs requests.

The pull follows containerd's ``client.Pull`` as the CRI plugin calls it (cri@ab6701bd
``PullImage``; containerd@383f4a77 ``pull.go``, 1.6.20 ``pull.go`` and ``unpacker.go``):

1. ``parse_docker_ref`` → normalized reference (REF-*); ``registry_hosts`` (EP-*, HOST-*).
2. Resolve phase: one client and authorizer per endpoint (RES-*, CHAL-*, TOKEN-*).
3. Fetch phase, with *fresh* clients and authorizers (HOST-006): the root manifest, a
   platform from an index (PULL-001), schema1 conversion (S1-*), the config, then the
   layers -- the seed downloads all of them before unpacking, 1.6 lets the unpacker
   fetch only what it needs (PULL-003). At most ``max_concurrent_downloads`` blob
   downloads run at once (PULL-002).
4. ``apply_layers`` → chain ID (PULL-004/005).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from refpull import mediatypes
from refpull.content.manifests import (
    Descriptor,
    ImageIndex,
    ImageManifest,
    Platform,
    check_layer_count,
    parse_image_config,
    parse_manifest,
    rewrite_legacy_config,
    select_platform,
    transfer_entries,
)
from refpull.content.schema1 import (
    Schema1Converter,
    blob_state,
    check_requested_digest,
    strip_signature,
)
from refpull.content.store import ContentStore, state_dir
from refpull.errors import (
    InvalidArgument,
    InvalidReference,
    NotFound,
    PullError,
    UnsupportedMediaType,
    scrub_secrets,
)
from refpull.gocompat.imageref import (
    ImageRef,
    RepoLocation,
    parse_for_profile,
    split_registry_host,
)
from refpull.limits import DEFAULT_LIMITS, Limits
from refpull.profiles import Profile
from refpull.pull import _pipeline_io as io
from refpull.pull._downloads import Downloads
from refpull.registry.resolve import resolve_steps
from refpull.registry.transport import TransportSettings
from refpull.settings.config import RegistryConfig
from refpull.settings.credentials import AuthConfig
from refpull.settings.hosts import RegistryHost, registry_hosts
from refpull.unpack.snapshots import SnapshotStore, apply_layers, chain_ids

__all__ = ["ProgressEvent", "PullResult", "Puller"]

# containerd schema1 converter manifestSizeLimit (8 MB).
_SCHEMA1_LIMIT = 8_000_000


@dataclass(frozen=True)
class ProgressEvent:
    """Something the CLI may show.

    ``kind`` is one of ``resolved``, ``layer-started``, ``layer-bytes``, ``layer-done``,
    ``layer-exists``, ``recorded`` (when the runtime would create the image record,
    PULL-006) and ``unpacked``. ``done`` counts bytes so far for ``layer-bytes``.
    """

    kind: str
    reference: str
    digest: str = ""
    size: int = 0
    done: int = 0


@dataclass(frozen=True)
class PullResult:
    """What a successful pull produced."""

    reference: ImageRef
    #: the image target: the resolved descriptor, or the converted manifest (S1-009).
    target: Descriptor
    #: the single-platform manifest that was unpacked.
    manifest: Descriptor
    config: Descriptor
    layers: tuple[Descriptor, ...]
    diff_ids: tuple[str, ...]
    chain_id: str
    is_schema1: bool
    #: STORE-004: sizes of the target, the chosen manifest, the config and the layers.
    size: int

    @property
    def image_id(self) -> str:
        """The CRI image ID: the config digest (CRI-001)."""
        return self.config.digest


@dataclass
class _Image:
    target: Descriptor
    manifest: Descriptor
    config: Descriptor
    layers: tuple[Descriptor, ...]
    diff_ids: tuple[str, ...]
    is_schema1: bool
    size: int


def _secrets(auth: AuthConfig | None) -> list[str]:
    """The literal secrets of a request's AuthConfig (the username is not one)."""
    if auth is None:
        return []
    basic = f"{auth.username}:{auth.password}".encode()
    return [
        auth.password,
        auth.auth,
        auth.identity_token,
        auth.registry_token,
        base64.b64encode(basic).decode() if auth.password else "",
    ]


class Puller:
    """Pulls images into a content store and a snapshot store under *root*."""

    def __init__(
        self,
        *,
        root: Path,
        config: RegistryConfig,
        profile: Profile,
        environ: Mapping[str, str] | None = None,
        platform: Platform | None = None,
        progress: Callable[[ProgressEvent], None] | None = None,
        settings: TransportSettings | None = None,
        limits: Limits | None = None,
    ) -> None:
        """Create a puller.

        Args:
            root: directory for ``content/`` and ``snapshots/``.
            config: mirrors, per-endpoint configs, headers, max_concurrent_downloads.
            profile: the runtime generation whose behaviour to reproduce.
            environ: proxy variables (read by the CLI, XPORT-001); None = no proxy.
            platform: the host platform for index selection (default: this host).
            progress: called with :class:`ProgressEvent` values, from worker threads too.
            settings: transport timeouts and limits.
            limits: what a registry's content may cost (refpull.limits).
        """
        self._config = config
        self._profile = profile
        self._environ = dict(environ or {})
        self._platform = platform or Platform.default()
        self._progress = progress or (lambda event: None)
        self._settings = settings
        self.limits = limits or DEFAULT_LIMITS
        # Modes never come from the umask (issue 12): snapshots are traversable.
        state_dir(root / "snapshots" / "snapshots", 0o711)
        state_dir(root / "snapshots", 0o711)
        state_dir(root, 0o711)
        self.content = ContentStore(root / "content")
        self.snapshots = SnapshotStore(root / "snapshots")

    def pull(self, ref: str, auth: AuthConfig | None = None) -> PullResult:
        """Pull and unpack *ref*.

        Args:
            ref: an image reference (normalized first, REF-*).
            auth: the CRI AuthConfig, or None when the request carried none (AUTH-007).

        Returns:
            The :class:`PullResult`.

        Raises:
            InvalidReference, ConfigError: before any request.
            PullError: ``failed to resolve reference "<ref>": …`` for resolution, the
                fetch/unpack errors as containerd words them otherwise; never with a
                credential in the message.
        """
        try:
            return self._pull(ref, auth)
        except PullError as exc:
            # ERR-003: a server may have reflected a credential into any text the
            # error quotes; none of the request's secrets leaves in a message.
            message = scrub_secrets(str(exc), _secrets(auth), patterns=False)
            if message == str(exc):
                raise
            raise io.prefixed(exc, message) from exc

    def _pull(self, ref: str, auth: AuthConfig | None) -> PullResult:
        if len(ref) > self.limits.max_name_length:
            # Refused before parsing: the reference would be quoted back (PULL-015).
            raise InvalidReference(
                ref[:64] + "…",
                f"longer than {self.limits.max_name_length} characters "
                "(raise it with --max-name-length)",
            )
        image_ref = parse_for_profile(ref, self._profile)
        name = str(image_ref)
        location = split_registry_host(image_ref)
        hosts = registry_hosts(location.host, self._config, auth, self._profile)
        with self._phase(hosts, location) as phase:
            try:
                target = io.drive(
                    resolve_steps(
                        image_ref,
                        location,
                        hosts,
                        self._profile,
                        strip_signature=strip_signature,
                    ),
                    phase,
                )
            except PullError as exc:
                # behaviors.md ERR-003: the client layer's wrapper.
                message = f'failed to resolve reference "{name}": {exc}'
                raise io.prefixed(exc, message, name) from exc
        self._emit("resolved", name, target.digest, target.size)
        # behaviors.md HOST-006: the fetch phase builds its hosts (and tokens) afresh.
        with self._phase(hosts, location) as phase:
            try:
                image = self._fetch(
                    phase, target, location.repository, name, pinned=image_ref.digest
                )
                chain_id = self._unpack(phase, image, location.repository, name)
            except PullError as exc:
                raise io.prefixed(exc, str(exc), name) from exc
        return PullResult(
            reference=image_ref,
            target=image.target,
            manifest=image.manifest,
            config=image.config,
            layers=image.layers,
            diff_ids=image.diff_ids,
            chain_id=chain_id,
            is_schema1=image.is_schema1,
            size=image.size,
        )

    def _phase(self, hosts: Sequence[RegistryHost], location: RepoLocation) -> io.Phase:
        return io.Phase(
            hosts,
            repository=location.repository,
            profile=self._profile,
            settings=self._settings,
            environ=self._environ,
            limits=self.limits,
        )

    def _emit(self, kind: str, name: str, digest: str = "", size: int = 0) -> None:
        self._progress(ProgressEvent(kind, name, digest, size))

    def _fetch(
        self,
        phase: io.Phase,
        target: Descriptor,
        repo: str,
        name: str,
        *,
        pinned: str | None = None,
    ) -> _Image:
        if mediatypes.is_schema1(target.media_type):
            return self._schema1(phase, target, repo, name, pinned=pinned)
        raw = io.read_blob(phase, self.content, target, repo)
        root, total, manifest_desc = target, target.size, target
        doc = parse_manifest(raw, target.media_type, digest=target.digest)
        nested = 0  # indexes below the root one (PULL-015)
        while isinstance(doc, ImageIndex):
            if manifest_desc is not root:
                nested += 1
                self.limits.check_index_depth(nested)
            # behaviors.md PULL-001: one platform; only its blobs are downloaded.
            manifest_desc = select_platform(doc, self._platform, self._profile)
            if self._profile.transfer_fetches_exact_platform_entries:
                self._transfer_entries(phase, doc, manifest_desc, repo, name)
            if mediatypes.is_schema1(manifest_desc.media_type):
                raise UnsupportedMediaType(
                    f"{manifest_desc.media_type} not supported",
                    media_type=manifest_desc.media_type,
                )
            raw = io.read_blob(phase, self.content, manifest_desc, repo)
            total += manifest_desc.size
            doc = parse_manifest(
                raw, manifest_desc.media_type, digest=manifest_desc.digest
            )
        if manifest_desc is root:
            # behaviors.md PULL-007: a legacy octet-stream config rewrites the target.
            new_desc, new_raw = rewrite_legacy_config(raw, manifest_desc, self._profile)
            if new_desc != manifest_desc:
                io.put_bytes(self.content, new_desc, new_raw)
                doc = parse_manifest(
                    new_raw, new_desc.media_type, digest=new_desc.digest
                )
                root = manifest_desc = new_desc
                total = new_desc.size
        assert isinstance(doc, ImageManifest)
        config_raw = io.read_blob(phase, self.content, doc.config, repo)
        config = parse_image_config(config_raw)
        total += doc.config.size + sum(layer.size for layer in doc.layers)
        return _Image(
            root, manifest_desc, doc.config, doc.layers, config.diff_ids, False, total
        )

    def _transfer_entries(
        self,
        phase: io.Phase,
        index: ImageIndex,
        chosen: Descriptor,
        repo: str,
        name: str,
    ) -> None:
        """Download what 2.3's transfer service fetches of *index* (PULL-001 Δ2.3).

        Every exact-platform and platform-less entry is fetched, layers included; the
        CRI then looks *chosen* up with its own matcher (``platforms.Default()``, the
        1.6 order with fallbacks), which may name an entry that was never fetched.
        """
        entries = transfer_entries(index, self._platform)
        for desc in entries:
            if desc is chosen or not mediatypes.is_manifest(desc.media_type):
                continue  # the chosen one is read by the caller; nested indexes stop
            raw = io.read_blob(phase, self.content, desc, repo)
            doc = parse_manifest(raw, desc.media_type, digest=desc.digest)
            if isinstance(doc, ImageManifest):
                io.read_blob(phase, self.content, doc.config, repo)
                self._download(phase, list(doc.layers), repo, name)
        if not any(desc is chosen for desc in entries):
            # v2.3.4 internal/cri/server/images/image_pull.go: the image config of the
            # chosen manifest is looked up in content that was never downloaded.
            raise NotFound(
                f"get image config descriptor: content digest {chosen.digest}: not found"
            )

    def _schema1(
        self,
        phase: io.Phase,
        target: Descriptor,
        repo: str,
        name: str,
        *,
        pinned: str | None = None,
    ) -> _Image:
        if not self._profile.schema1_pull:
            # catalog S1-001 Δ2.0: containerd 2.x refuses schema1 before reading it.
            raise InvalidArgument("schema 1 image manifests are no longer supported")
        raw = io.read_unverified(phase, target, repo, limit=_SCHEMA1_LIMIT)
        if pinned is not None:
            # catalog S1-004 (SECURITY): checked before anything in it is used.
            check_requested_digest(raw, pinned)
        converter = Schema1Converter.parse(raw, self._profile)
        blobs = converter.blobs_to_fetch()
        self._download(phase, blobs, repo, name)
        diff_ids: dict[str, str] = {}
        sizes: dict[str, int] = {}
        empty: set[str] = set()
        for blob in blobs:
            with self.content.open(blob.digest) as fileobj:
                state = blob_state(fileobj, self._profile)  # behaviors.md S1-007
            diff_ids[blob.digest] = state.diff_id
            sizes[blob.digest] = self.content.size(blob.digest)
            if state.empty:
                empty.add(blob.digest)
        image = converter.build(diff_ids, sizes, empty_blobs=empty)
        io.put_bytes(self.content, image.config_desc, image.config_bytes)
        io.put_bytes(self.content, image.manifest_desc, image.manifest_bytes)
        size = (
            image.manifest_desc.size
            + image.config_desc.size
            + sum(layer.size for layer in image.layers)
        )
        # behaviors.md S1-009: the converted manifest becomes the image target.
        return _Image(
            image.manifest_desc,
            image.manifest_desc,
            image.config_desc,
            image.layers,
            image.diff_ids,
            True,
            size,
        )

    def _unpack(self, phase: io.Phase, image: _Image, repo: str, name: str) -> str:
        check_layer_count(image.layers, image.diff_ids)  # behaviors.md PULL-004
        self.limits.check_layers(len(image.layers))  # PULL-015, before any download
        if not self._profile.deferred_layer_download:
            # Seed: every layer is downloaded first (PULL-003), then recorded (PULL-006).
            self._download(phase, list(image.layers), repo, name)
            self._emit("recorded", name, image.target.digest, image.target.size)
            chain_id = self._apply(phase, image, repo, name, ahead=None)
        else:
            # behaviors.md PULL-003 (1.6 unpacker): downloads start at the first layer
            # whose chain snapshot is missing; layers below it are never fetched. They
            # run in the background while the unpacker applies each layer as soon as
            # its blob is committed (1.6.20 unpacker.go fetches and unpacks together).
            chains = chain_ids(image.diff_ids)
            first = next(
                (i for i, c in enumerate(chains) if not self.snapshots.exists(c)),
                len(chains),
            )
            with self._start_downloads(
                phase, image.layers[first:], repo, name
            ) as ahead:
                chain_id = self._apply(phase, image, repo, name, ahead=ahead)
        self._emit("unpacked", name, chain_id)
        if self._profile.record_after_unpack:
            # behaviors.md PULL-006 Δ1.6: the record appears only after a full success.
            self._emit("recorded", name, image.target.digest, image.target.size)
        return chain_id

    def _apply(
        self,
        phase: io.Phase,
        image: _Image,
        repo: str,
        name: str,
        *,
        ahead: Downloads | None,
    ) -> str:
        def fetch_missing(desc: Descriptor) -> None:
            if ahead is None or not ahead.wait(desc):
                self._download(phase, [desc], repo, name)

        try:
            chain_id = apply_layers(
                self.content,
                self.snapshots,
                list(image.layers),
                list(image.diff_ids),
                self._profile,
                fetch_missing=fetch_missing,
                limits=self.limits,
            )
        except BaseException:
            if ahead is not None:
                ahead.raise_first_error()  # a failed download wins, as before
            raise
        if ahead is not None:
            ahead.raise_first_error()
        return chain_id

    def _start_downloads(
        self, phase: io.Phase, blobs: Sequence[Descriptor], repo: str, name: str
    ) -> Downloads:
        limit = self._config.max_concurrent_downloads
        return Downloads(
            blobs,
            lambda desc: self._fetch_one(phase, desc, repo, name),
            limit=limit if limit > 0 else len(blobs),  # n <= 0: unlimited (PULL-002)
        )

    def _download(
        self, phase: io.Phase, blobs: Sequence[Descriptor], repo: str, name: str
    ) -> None:
        """Fetch *blobs* with at most ``max_concurrent_downloads`` at once (PULL-002)."""
        if not blobs:
            return
        limit = self._config.max_concurrent_downloads
        workers = limit if limit > 0 else len(blobs)  # n <= 0: unlimited
        with ThreadPoolExecutor(max_workers=min(workers, len(blobs))) as pool:
            futures = [
                pool.submit(self._fetch_one, phase, b, repo, name) for b in blobs
            ]
            errors = [f.exception() for f in futures]
        for error in errors:
            if error is not None:
                raise error

    def _fetch_one(
        self, phase: io.Phase, desc: Descriptor, repo: str, name: str
    ) -> None:
        self._emit("layer-started", name, desc.digest, desc.size)
        done = 0

        def on_bytes(n: int) -> None:
            nonlocal done
            done += n
            self._progress(
                ProgressEvent("layer-bytes", name, desc.digest, desc.size, done)
            )

        fetched = io.fetch_into_store(
            phase, self.content, desc, repo, on_bytes=on_bytes
        )
        # done == size: the whole blob is in the content store (refpull/cli/_progress.py).
        kind = "layer-done" if fetched else "layer-exists"
        self._progress(ProgressEvent(kind, name, desc.digest, desc.size, desc.size))
