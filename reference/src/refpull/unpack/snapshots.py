"""Applying layers to snapshots (behaviors.md PULL-003/004/005/009/010).

A snapshot is a directory tree ``<root>/snapshots/<chain-id hex>/fs`` named by the OCI
ChainID of the layers below and including it. A child snapshot starts as its parent's
tree rebuilt from new directories and hard links to the parent's files
(:mod:`refpull.unpack._linkfarm`; a full copy per layer cost more than the download). The
extractor never writes through a shared inode: it unlinks before it creates, and copies
an inherited file up before a layer hard-links to it. The layer is extracted into a
temporary directory, renamed into place only when extraction and the diffID check
succeeded.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from refpull.content.compression import Reader, open_decompressed
from refpull.content.manifests import Descriptor, check_layer_count
from refpull.content.store import ContentStore
from refpull.digest import Digest, DigestError
from refpull.errors import DiffIDMismatch, NotFoundInStore, UnpackError, UnsafePath
from refpull.limits import DEFAULT_LIMITS, LimitExceeded, Limits
from refpull.mediatypes import is_layer
from refpull.profiles import Profile
from refpull.unpack._bghash import BackgroundSHA256
from refpull.unpack._linkfarm import link_tree
from refpull.unpack._tar import extract_tar

__all__ = ["SnapshotStore", "apply_layers", "chain_ids"]


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """OCI ChainIDs: ``C0 = D0``, ``Cn = sha256(C(n-1) + " " + Dn)`` (image-spec config.md).

    Raises:
        UnpackError: a diff_id is not a valid digest (they name directories).
    """
    out: list[str] = []
    for diff_id in diff_ids:
        try:
            Digest.parse(diff_id)
        except DigestError as exc:
            raise UnpackError(f"invalid diff id {diff_id!r}: {exc}") from exc
        if not out:
            out.append(diff_id)
        else:
            joined = f"{out[-1]} {diff_id}".encode()
            out.append("sha256:" + hashlib.sha256(joined).hexdigest())
    return out


class SnapshotStore:
    """Committed layer snapshots, one directory per chain ID."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "snapshots").mkdir(parents=True, exist_ok=True)

    def _dir(self, chain_id: str) -> Path:
        try:
            d = Digest.parse(chain_id)
        except DigestError as exc:
            raise UnpackError(f"invalid chain id {chain_id!r}: {exc}") from exc
        return self.root / "snapshots" / d.encoded

    def path(self, chain_id: str) -> Path:
        """The root file system directory of a snapshot."""
        return self._dir(chain_id) / "fs"

    def exists(self, chain_id: str) -> bool:
        """True when the snapshot was committed."""
        return self.path(chain_id).is_dir()

    def remove(self, chain_id: str) -> None:
        """Delete a snapshot (no error when absent)."""
        shutil.rmtree(self._dir(chain_id), ignore_errors=True)

    def list(self) -> builtins.list[str]:
        """Committed chain IDs, sorted."""
        return sorted(
            "sha256:" + p.name
            for p in (self.root / "snapshots").iterdir()
            if not p.name.startswith("tmp-") and (p / "fs").is_dir()
        )

    def notes(self, chain_id: str) -> builtins.list[str]:
        """Notes recorded while applying the layer (skipped device nodes etc.)."""
        path = self._dir(chain_id) / "notes.json"
        if not path.exists():
            return []
        data: list[str] = json.loads(path.read_text("utf-8"))
        return data

    def prepare(self, parent: str | None) -> Path:
        """Create a temporary snapshot directory holding *parent*'s tree (linked)."""
        tmp = self.root / "snapshots" / f"tmp-{uuid.uuid4().hex}"
        # Published by rename, so this is the snapshot's mode: never the umask's
        # (issue 12, finding 5); a container's uid must traverse to its rootfs.
        tmp.mkdir(0o700)
        os.chmod(tmp, 0o711)
        if parent:
            link_tree(self.path(parent), tmp / "fs")
        else:
            (tmp / "fs").mkdir(0o700)
            os.chmod(tmp / "fs", 0o755)
        return tmp

    def commit(self, tmp: Path, chain_id: str, notes: Sequence[str] = ()) -> None:
        """Atomically publish *tmp* as *chain_id* (a concurrent winner is kept)."""
        (tmp / "notes.json").write_text(json.dumps(list(notes)), "utf-8")
        final = self._dir(chain_id)
        try:
            os.rename(tmp, final)
        except OSError:
            if not self.exists(chain_id):
                raise
            shutil.rmtree(tmp, ignore_errors=True)


class _HashingReader:
    """Hashes everything read through it (the diffID covers the whole stream)."""

    def __init__(self, inner: Reader) -> None:
        self.inner = inner
        self.hash = (
            BackgroundSHA256()
        )  # refpull.unpack._bghash: overlaps the extraction
        self._pending = b""

    def at_eof(self) -> bool:
        """True for an empty stream (Go's tar reader sees io.EOF: an empty layer)."""
        if not self._pending:
            self._pending = self.inner.read(1 << 16)
            self.hash.update(self._pending)
        return not self._pending

    def read(self, n: int = -1) -> bytes:
        if self._pending:
            if n < 0 or n >= len(self._pending):
                data, self._pending = self._pending, b""
            else:
                data, self._pending = self._pending[:n], self._pending[n:]
            return data
        data = self.inner.read(n)
        self.hash.update(data)
        return data

    def drain(self) -> str:
        while self.read(1 << 20):
            pass
        return "sha256:" + self.hash.hexdigest()


class _BoundedReader:
    """Counts inflated bytes and stops a layer that inflates past its bound (PULL-014).

    The bound is checked before the bytes reach the extractor, so a decompression
    bomb is refused after at most *bound* bytes, never after filling the disk.
    """

    def __init__(self, inner: Reader, bound: int, flag: str, diff_id: str) -> None:
        self.inner, self.bound, self.flag, self.diff_id = inner, bound, flag, diff_id
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        self.count += len(data)
        if self.count > self.bound:
            raise LimitExceeded(
                f"the inflated size of layer {self.diff_id}",
                limit=self.bound,
                flag=self.flag,
            )
        return data


def _drop_cached(blob: BinaryIO) -> None:
    """Let the kernel drop the blob's cached pages: it was committed (fsynced) and is
    now read once; keeping hundreds of MiB of it cached only evicts other data, and
    the freed pages serve the next layer's writes."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        with contextlib.suppress(OSError):
            advise(blob.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def _apply_one(
    content: ContentStore,
    tmp_fs: Path,
    layer: Descriptor,
    diff_id: str,
    profile: Profile,
    bound: tuple[int, str],
) -> tuple[list[str], int]:
    """Extract one layer into *tmp_fs*; returns its notes and its inflated size."""
    notes: list[str] = []
    with (
        content.open(layer.digest) as blob,
        open_decompressed(blob, zstd=profile.zstd_layers) as (_, reader),
    ):
        bounded = _BoundedReader(reader, *bound, diff_id)
        hashing = _HashingReader(bounded)
        try:
            if not hashing.at_eof():
                result = extract_tar(hashing, tmp_fs, max_bytes=bound)
                notes = result.notes
            calculated = hashing.drain()
        except (UnsafePath, LimitExceeded):
            raise
        except Exception as exc:
            # containerd diff/apply: "failed to extract layer <diffid>: <err>".
            raise UnpackError(f"failed to extract layer {diff_id}: {exc}") from exc
        finally:
            hashing.hash.close()
            _drop_cached(blob)
    if calculated != diff_id:
        # behaviors.md PULL-005: seed quotes the calculated digest, 1.6 the expected.
        shown = diff_id if profile.diffid_error_quotes_expected else calculated
        raise DiffIDMismatch(
            f'wrong diff id calculated on extraction "{shown}"',
            expected=diff_id,
            actual=calculated,
        )
    return notes, bounded.count


def apply_layers(
    content: ContentStore,
    snapshots: SnapshotStore,
    layers: Sequence[Descriptor],
    diff_ids: Sequence[str],
    profile: Profile,
    *,
    fetch_missing: Callable[[Descriptor], None] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> str:
    """Unpack *layers* into snapshots, bottom-up, and return the top chain ID.

    Layers whose chain snapshot already exists are not applied again (and their diff_id
    is not checked), in both runtimes. With ``deferred_layer_download`` (1.6, PULL-003)
    only the blobs of layers that still need applying are fetched; the seed fetches
    every missing blob first.

    Args:
        content: where the layer blobs are (or will be, via *fetch_missing*).
        snapshots: the snapshot store.
        layers: the manifest's layer descriptors.
        diff_ids: the config's ``rootfs.diff_ids``.
        profile: ``deferred_layer_download``, ``zstd_layers``, ``diffid_error_quotes_expected``.
        fetch_missing: called with a descriptor whose blob is not in *content*.
        limits: how far a layer may inflate and how many layers there may be.

    Returns:
        The top chain ID, ``""`` for an image without layers (PULL-009).

    Raises:
        UnpackError: layer count mismatch (PULL-004), extraction failures, a layer
            whose media type is not a layer type (PULL-008, after its download).
        DiffIDMismatch: PULL-005.
        UnsafePath: a layer entry would leave its snapshot.
        LimitExceeded: a layer inflates past ``limits`` (PULL-014), or the image has
            more than ``limits.max_layers`` layers (PULL-015).
        NotFoundInStore: a blob is missing and *fetch_missing* is not given.
    """
    check_layer_count(layers, diff_ids)
    limits.check_layers(len(layers))
    chains = chain_ids(diff_ids)
    if not chains:
        return ""

    def ensure(desc: Descriptor) -> None:
        if not content.has(desc.digest):
            if fetch_missing is None:
                raise NotFoundInStore(
                    f"content digest {desc.digest}: not found", name=desc.digest
                )
            fetch_missing(desc)

    if not profile.deferred_layer_download:
        for desc in layers:  # seed: every blob is downloaded before unpacking
            ensure(desc)
    left = limits.max_image_size  # PULL-014: what this pull may still inflate
    for i, (layer, diff_id, chain) in enumerate(
        zip(layers, diff_ids, chains, strict=True)
    ):
        if snapshots.exists(chain):
            continue
        ensure(layer)
        if not is_layer(layer.media_type):
            # behaviors.md PULL-008: content of an unknown type is fetched and stored,
            # then the pull fails; containerd v1.6.20 diff/apply fsApplier.Apply finds
            # no stream processor for the type (diff/stream.go ErrNoProcessor).
            raise UnpackError(
                f"failed to extract layer {diff_id}: failed to get stream processor "
                f"for {layer.media_type}: no processor for media-type"
            )
        tmp = snapshots.prepare(chains[i - 1] if i else None)
        try:
            bound = limits.inflate_bound(layer.size)
            if left < bound[0]:
                bound = (left, "--max-image-size")
            notes, inflated = _apply_one(
                content, tmp / "fs", layer, diff_id, profile, bound
            )
            left -= inflated
            snapshots.commit(tmp, chain, notes)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return chains[-1]
