"""The CRI ImageService of the reference: PullImage, ImageStatus, ListImages, RemoveImage.

``pull_image`` is the seed's ``PullImage`` (cri@ab6701bd): parse → pull and unpack →
for ``[imageID, repoTag, repoDigest]`` create the managed record and update the index
(behaviors.md CRI-001..004), with the seed's error wrapping (ERR-003). Every error is a
:class:`ServiceError` carrying the gRPC code containerd would answer (ERR-001), chosen
by :func:`grpc_code` alone.

PULL-006 decision. The seed's ``client.Pull`` writes the record for the pulled name
before unpack finishes, so a failed unpack leaves it behind and the CRI event monitor
can show it (STORE-009; the catalog's seed text: the image "can stay visible"). The
reference writes that early record at the same moment (the puller's ``recorded``
event) but drops it when the pull fails, and serves only READY images: nothing of a
failed pull is left or listed, in any profile (the project rule; a Deviation for the
seed, which the suite accepts because the catalog only says "can").

Concurrency: identical concurrent pulls (same reference and credentials) share one pull
(single flight, upstream-issues F-26); the record phase of a pull and a removal exclude
each other; garbage collection waits until no pull is running, and start-up collects
what a killed process left (ingests, unfinished snapshots, unreferenced blobs).

Cancellation (containerd passes the CRI call's context to ``client.Pull``): a pull
stops when every caller waiting for it has gone (its RPC cancelled or past its
deadline), when :meth:`ImageService.close` runs, or at its limits
(:class:`~refpull.budget.TransferLimits`); a stopped pull leaves no record.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from refpull import mediatypes
from refpull.budget import Cancel, PullBudget, PullCanceled, TransferLimits
from refpull.content.manifests import Descriptor, Platform
from refpull.content.store import ContentStore, state_dir
from refpull.cri._flights import Flights
from refpull.cri._grpc_codes import ServiceError, grpc_code
from refpull.cri._reachable import reachable
from refpull.cri.images import ImageRecords, ImageStore
from refpull.cri.index import (
    AmbiguousImage,
    CRIImage,
    ImageIndex,
    IndexedImage,
    to_cri_image,
)
from refpull.cri.records import (
    create_image_reference,
    record_pulled_image,
    repo_digest_and_tag,
)
from refpull.errors import (
    InvalidReference,
    NotFoundInStore,
    RefpullError,
    clip_reference,
)
from refpull.gocompat.gourl import go_quote
from refpull.gocompat.imageref import ImageRef, parse_for_profile
from refpull.limits import Limits
from refpull.profiles import Profile
from refpull.pull.puller import ProgressEvent, Puller, PullResult
from refpull.registry.transport import TransportSettings
from refpull.settings.config import RegistryConfig
from refpull.settings.credentials import AuthConfig
from refpull.unpack.snapshots import SnapshotStore

__all__ = [
    "FilesystemUsage",
    "ImageService",
    "PullerLike",
    "ServiceError",
    "grpc_code",
]


class PullerLike(Protocol):
    """What the service needs from a puller (tests pass fakes)."""

    def pull(self, ref: str, auth: AuthConfig | None = None) -> PullResult: ...


PullerFactory = Callable[[Callable[[ProgressEvent], None]], PullerLike]


@dataclass(frozen=True)
class FilesystemUsage:
    """``ImageFsInfo``: usage of the snapshot file system."""

    timestamp_ns: int
    mountpoint: str
    used_bytes: int
    inodes_used: int


class ImageService:
    """The reference CRI ImageService over one root directory.

    Layout: ``<root>/metadata.db`` (records), ``<root>/content``,
    ``<root>/snapshots`` (the :class:`~refpull.pull.puller.Puller` layout).
    """

    def __init__(
        self,
        root: Path,
        config: RegistryConfig,
        profile: Profile,
        *,
        environ: Mapping[str, str] | None = None,
        puller_factory: PullerFactory | None = None,
        platform: Platform | None = None,
        limits: TransferLimits | None = None,
        content_limits: Limits | None = None,
    ) -> None:
        """Open the root, collect leftovers of a crash and rebuild the index.

        Args:
            root: the state directory (created when missing).
            config: registry configuration for pulls.
            profile: the runtime generation to reproduce.
            environ: proxy variables for the puller (XPORT-001); None = none.
            puller_factory: builds a puller given a progress callback (default: a
                :class:`~refpull.pull.puller.Puller` on *root*).
            platform: the platform pulled from indexes (default linux/amd64).
            limits: overall deadline and minimum rate of every pull (budget.py).
            content_limits: bounds on what a registry may make a pull cost
                (limits.py; default DEFAULT_LIMITS).
        """
        # Modes never come from the umask: the root and snapshots are traversable
        # (0711, a container's uid walks to its rootfs), records are owner-only.
        self.root = state_dir(Path(root), 0o711)
        self.profile = profile
        self.platform = platform or Platform.default()
        self._db = ImageStore(self.root)
        for name in ("metadata.db", "metadata.db-wal", "metadata.db-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(self.root / name, 0o600)
        state_dir(self.root / "snapshots" / "snapshots", 0o711)
        state_dir(self.root / "snapshots", 0o711)
        #: the records the service writes (a test may wrap it, see InterleavingStore).
        self.store: ImageRecords = self._db
        self.content = ContentStore(self.root / "content")
        self.snapshots = SnapshotStore(self.root / "snapshots")
        self.index = ImageIndex(
            self.store, self.content, self.snapshots, profile, platform=self.platform
        )
        env = dict(environ or {})
        self.limits = limits or TransferLimits()
        #: fired by close(): every running pull stops.
        self._closing = Cancel()

        def default_factory(
            progress: Callable[[ProgressEvent], None], budget: PullBudget | None = None
        ) -> PullerLike:
            return Puller(
                root=self.root,
                config=config,
                profile=profile,
                environ=env,
                platform=self.platform,
                progress=progress,
                settings=TransportSettings(budget=budget),
                limits=content_limits,
            )

        self._custom_factory = puller_factory
        self._default_factory = default_factory
        self._flights = Flights()
        self._records_lock = threading.RLock()
        self._state = threading.Condition()
        self._active = 0
        self._gc_pending = False
        #: PULL-006 (seed): IDs of images a failed unpack left recorded; served while
        #: only their snapshot is missing (see the module docstring).
        #: what start-up found wrong (images not READY, unreadable records).
        self.startup_problems = self._start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the running pulls, drop their ingests and close the metadata store.

        Args:
            timeout: seconds to wait for the cancelled pulls to unwind.
        """
        self._closing.cancel()
        with self._state:
            self._state.wait_for(lambda: self._active == 0, timeout)
            idle = self._active == 0
        if idle:
            # Nothing is writing: a stopped server leaves no partial ingest behind
            # (start-up would drop them anyway, so they can never be resumed).
            self.content.clean_ingests()
        self._db.close()

    # -- start-up and garbage collection ------------------------------------------------

    def _start(self) -> list[str]:
        self.content.clean_ingests()
        for tmp in (self.snapshots.root / "snapshots").glob("tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)  # an unpack that never committed
        problems = self.index.rebuild()
        self.collect_garbage()
        return problems

    def problems(self) -> list[str]:
        """Why indexed images are not READY right now (one line each)."""
        return [p for image in self.index.list() for p in self.index.problems(image)]

    @contextlib.contextmanager
    def _pulling(self) -> Iterator[None]:
        with self._state:
            self._active += 1
        try:
            yield
        finally:
            with self._state:
                self._active -= 1
                run = self._active == 0 and self._gc_pending
                self._state.notify_all()
            if run and not self._closing.cancelled:
                self.collect_garbage()

    def collect_garbage(self) -> tuple[builtins.list[str], builtins.list[str]]:
        """Delete blobs and snapshots no record leads to (deferred while pulls run).

        Returns:
            The removed blob digests and snapshot chain IDs (empty when deferred).
        """
        with self._state:
            if self._active:
                self._gc_pending = True
                return [], []
            self._gc_pending = False
            blobs, chains = reachable(
                [record.target for record in self.store.list()], self.content
            )
            dead_blobs = [d for d in self.content.list() if d not in blobs]
            for digest in dead_blobs:
                with contextlib.suppress(NotFoundInStore):
                    self.content.delete(digest)
            dead_chains = [c for c in self.snapshots.list() if c not in chains]
            for chain in dead_chains:
                self.snapshots.remove(chain)
        return dead_blobs, dead_chains

    # -- PullImage ----------------------------------------------------------------------

    def pull_image(
        self, image: str, auth: AuthConfig | None = None, cancel: Cancel | None = None
    ) -> str:
        """Pull *image* and record it (the seed's ``PullImage``).

        Args:
            image: ``PullImageRequest.image.image``.
            auth: the request's AuthConfig, None when absent (AUTH-007).
            cancel: fires when the caller gives up (its RPC was cancelled or its
                deadline passed); the pull stops once no caller is waiting for it.

        Returns:
            The image ID, the config digest (CRI-001, F-32).

        Raises:
            ServiceError: ``failed to parse image reference "<x>": …``, ``failed to
                pull and unpack image "<ref>": …``, ``failed to create image reference
                "<r>": …`` or ``failed to update image store "<r>": …``.
        """
        try:
            ref = parse_for_profile(image, self.profile)
        except InvalidReference as exc:
            raise ServiceError(
                # PULL-015: a megabyte name must not become a megabyte gRPC status.
                f"failed to parse image reference {go_quote(clip_reference(image))}: "
                f"{exc.reason}",
                cause=exc,
            ) from exc
        name = str(ref)

        def gone(reason: str) -> ServiceError:
            cause = PullCanceled(reason)
            return ServiceError(
                f"failed to pull and unpack image {go_quote(name)}: {cause}",
                cause=cause,
            )

        return self._flights.run(
            (name, auth),
            lambda shared: self._pull(ref, auth, shared),
            cancel or Cancel(),
            gone,
        )

    def _pull(self, ref: ImageRef, auth: AuthConfig | None, cancel: Cancel) -> str:
        name = str(ref)
        with self._pulling():
            written: list[str] = []
            try:
                budget = PullBudget(self.limits, (cancel, self._closing))
                budget.check()  # closing already, or every caller gone
                progress = self._early_record(name, written)
                if self._custom_factory is not None:
                    puller = self._custom_factory(progress)
                else:
                    puller = self._default_factory(progress, budget)
                result = puller.pull(name, auth)
                budget.check()  # nobody is waiting for this image any more
                if self.profile.record_after_unpack:
                    # behaviors.md PULL-006 Δ1.6: client.Pull records after unpack.
                    record_pulled_image(self.store, name, result.target)
            except RefpullError as exc:
                self._forget(written)
                raise ServiceError(
                    f"failed to pull and unpack image {go_quote(name)}: {exc}",
                    cause=exc,
                ) from exc
            with self._records_lock:
                return self._record(ref, result)

    def _served(self, image: IndexedImage) -> bool:
        """Only READY images are served: content and snapshot complete.

        behaviors.md PULL-006 (seed): the record written before unpack ends can leave
        a failed pull's image visible ("can stay visible").
        Deviation: the reference keeps the seed's early record in its metadata store
        (so the record timing is modelled) but never lists or shows an image that did
        not unpack, in any profile -- the project's rule that nothing half-pulled is
        served wins over a quirk the catalog only permits.
        """
        return not self.index.problems(image)

    def _early_record(
        self, name: str, written: list[str]
    ) -> Callable[[ProgressEvent], None]:
        def on_progress(event: ProgressEvent) -> None:
            if event.kind != "recorded" or self.profile.record_after_unpack:
                return
            # behaviors.md PULL-006 (seed): the record is written before unpack ends,
            # and the CRI event monitor then reconciles it (STORE-009).
            target = self._sniff(event.digest, event.size)
            record_pulled_image(self.store, name, target)
            written.append(name)
            with contextlib.suppress(RefpullError):
                self.index.update(name)

        return on_progress

    def _forget(self, written: list[str]) -> None:
        """Drop the seed's early record of a pull that failed after writing it.

        Deviation: the seed leaves that record behind (PULL-006); the reference leaves
        nothing of a failed pull, so a later lookup (even ``""``, STORE-006) or listing
        never meets an image that did not unpack.
        """
        for name in written:
            with contextlib.suppress(NotFoundInStore):
                self.store.delete(name)
            with contextlib.suppress(RefpullError):
                self.index.update(name)

    def _sniff(self, digest: str, size: int) -> Descriptor:
        # The progress event names digest and size; the media type is the document's.
        media_type = mediatypes.DOCKER_MANIFEST
        with contextlib.suppress(RefpullError, ValueError):
            doc = json.loads(self.content.read_bytes(digest))
            if isinstance(doc, dict):
                fallback = mediatypes.OCI_INDEX if "manifests" in doc else media_type
                media_type = str(doc.get("mediaType") or fallback)
        return Descriptor(media_type=media_type, digest=digest, size=size)

    def _record(self, ref: ImageRef, result: PullResult) -> str:
        image_id = result.config.digest
        repo_digest, repo_tag = repo_digest_and_tag(
            ref, result.target.digest, result.is_schema1
        )
        for name in (image_id, repo_tag, repo_digest):  # behaviors.md CRI-003
            if not name:
                continue
            try:
                create_image_reference(self.store, name, result.target, self.profile)
            except RefpullError as exc:
                raise ServiceError(
                    f"failed to create image reference {go_quote(name)}: {exc}",
                    cause=exc,
                ) from exc
            try:
                self.index.update(name)
            except RefpullError as exc:
                raise ServiceError(
                    f"failed to update image store {go_quote(name)}: {exc}", cause=exc
                ) from exc
        return image_id

    # -- ImageStatus / ListImages / RemoveImage / ImageFsInfo ---------------------------

    def _resolve(self, image: str) -> IndexedImage | None:
        try:
            return self.index.resolve(image)
        except AmbiguousImage as exc:
            raise ServiceError(
                f"can not resolve {go_quote(image)} locally: {exc}", cause=exc
            ) from exc

    def image_status(
        self, image: str, verbose: bool = False
    ) -> tuple[CRIImage | None, dict[str, str]]:
        """``ImageStatus`` (behaviors.md STORE-005..007).

        Args:
            image: an ID, ID prefix, or reference.
            verbose: add ``info["info"]`` = ``{"chainID": …, "imageSpec": …}``.

        Returns:
            ``(None, {})`` for an unknown (or not served) image, else the CRI image and
            the info map.

        Raises:
            ServiceError: ``can not resolve "<x>" locally: ambiguous digest string``.
        """
        found = self._resolve(image)
        if found is None or not self._served(found):
            return None, {}
        info: dict[str, str] = {}
        if verbose:
            # cri verboseImageInfo; Go would render the struct in field order.
            body = {"chainID": found.chain_id, "imageSpec": found.spec()}
            info["info"] = json.dumps(body, separators=(",", ":"))
        return to_cri_image(found, self.profile), info

    def list_images(self, image_filter: str | None = None) -> builtins.list[CRIImage]:
        """``ListImages``: every served image; the filter is ignored (STORE-010)."""
        del image_filter  # behaviors.md STORE-010: the seed ignores the filter
        return [
            to_cri_image(i, self.profile) for i in self.index.list() if self._served(i)
        ]

    def remove_image(self, image: str) -> None:
        """``RemoveImage``: delete every reference of the image (STORE-008).

        Unknown images succeed. Content and snapshots no record needs any more are
        garbage-collected (now, or when the running pulls end).

        Raises:
            ServiceError: ambiguous prefix, or a reference that cannot be deleted.
        """
        with self._records_lock:
            found = self._resolve(image)
            if found is None:
                return
            for ref in found.references:
                try:
                    self.store.delete(ref)
                except NotFoundInStore:
                    pass  # "deleted by someone else before this point": success
                except RefpullError as exc:
                    raise ServiceError(
                        f"failed to delete image reference {go_quote(ref)} for "
                        f"{go_quote(found.id)}: {exc}",
                        cause=exc,
                    ) from exc
                try:
                    self.index.update(ref)
                except RefpullError as exc:
                    raise ServiceError(
                        f"failed to update image reference {go_quote(ref)} for "
                        f"{go_quote(found.id)}: {exc}",
                        cause=exc,
                    ) from exc
        self.collect_garbage()

    def image_fs_info(self) -> FilesystemUsage:
        """``ImageFsInfo``: bytes and inodes used under the snapshot directory."""
        used = inodes = 0
        for path in self.snapshots.root.rglob("*"):
            with contextlib.suppress(OSError):
                used += path.lstat().st_size
                inodes += 1
        return FilesystemUsage(
            timestamp_ns=time.time_ns(),
            mountpoint=str(self.snapshots.root),
            used_bytes=used,
            inodes_used=inodes,
        )
