"""A content-addressed blob store with verified, atomic ingests (behaviors.md FETCH-005/008).

Layout (like containerd ``content/local``)::

    <root>/blobs/<algorithm>/<hex>      committed, verified blobs
    <root>/ingest/<key>/data            bytes of an ingest in progress (key = sha256(ref))
    <root>/ingest/<key>/ref             the ingest's ref and expected digest
    <root>/locks/<key>                  flock(2) file serialising writers of one ref

Rules:

* A blob is either complete and verified or absent: data is written to the ingest file,
  fsynced, checked for size and digest, then renamed into place.
* Two writers of the same ref (two pulls of one image) are serialised by an exclusive
  ``flock`` on the ref's lock file. The second waits (polling, up to ``lock_timeout``)
  and then finds the blob present: its :class:`Ingest` has ``already_exists`` set and
  ``commit`` is a no-op. Committing a digest that is already present is also a no-op.
* A partial ingest survives only when asked (``keep_partial=True``); the next ingest of
  the same ref and digest resumes at :meth:`Ingest.resume_offset` (``Range: bytes=N-``).
* Modes never come from the umask: the store directory is 0700 (:func:`state_dir`).
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from refpull.digest import Digest, DigestError, DigestVerifier
from refpull.errors import ManifestTooLarge, NotFoundInStore, SizeMismatch

__all__ = ["ContentStore", "Ingest", "state_dir"]

#: Mode of directories created above a state directory: traversable, not listable.
_PARENT_MODE = 0o711


def state_dir(path: Path, mode: int) -> Path:
    """Create *path* (and missing parents, 0711) and set its mode, whatever the umask.

    A umask of 0 would otherwise leave state world-writable (issue 12, finding 5).

    Args:
        path: the directory.
        mode: its permission bits, e.g. 0o700, or 0o711 where another user (a
            container's uid) must traverse it.

    Returns:
        *path*.
    """
    missing = []
    current = Path(path)
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(_PARENT_MODE)
            os.chmod(directory, _PARENT_MODE)
    os.chmod(path, mode)
    return Path(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _RefLock:
    """An exclusive flock on ``locks/<key>``, robust against the file being unlinked."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        # The holder before us may have unlinked the file: then we locked an orphan inode.
        try:
            same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self, *, unlink: bool) -> None:
        if self.fd is None:
            return
        if unlink:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        os.close(self.fd)  # closing drops the flock
        self.fd = None


class Ingest:
    """One in-progress write of a blob; obtained from :meth:`ContentStore.ingest`."""

    def __init__(
        self,
        store: ContentStore,
        ref: str,
        directory: Path,
        verifier: DigestVerifier,
        *,
        already_exists: bool,
    ) -> None:
        self.store = store
        self.ref = ref
        self.directory = directory
        self.verifier = verifier
        #: True when the blob was already in the store; nothing needs to be written.
        self.already_exists = already_exists
        self.committed = already_exists
        self._file: BinaryIO | None = None

    @property
    def offset(self) -> int:
        """Bytes held by this ingest so far."""
        return self.verifier.size

    def resume_offset(self) -> int:
        """Where a download should continue (``Range: bytes=<offset>-``); 0 = from start."""
        return self.offset

    def _open(self, *, resume: bool) -> None:
        data = self.directory / "data"
        if resume and data.exists():
            with data.open("rb") as existing:
                for chunk in iter(lambda: existing.read(1 << 20), b""):
                    self.verifier.update(chunk)
            self._file = data.open("ab")
        else:
            self._file = data.open("wb")

    def write(self, chunk: bytes) -> None:
        """Append *chunk*.

        Raises:
            SizeMismatch: as soon as the data exceeds the expected size (the ingest is
                removed). Deviation: containerd writes the whole body before checking
                (behaviors.md FETCH-008 ⚠BUG); the reference stops at the first extra byte.
        """
        if self.committed or self._file is None:
            if self.already_exists:
                return
            raise RuntimeError("ingest is closed")
        expected = self.verifier.expected_size
        if expected is not None and self.offset + len(chunk) > expected:
            got = self.offset + len(chunk)
            self.abort()
            raise SizeMismatch(
                f'failed commit on ref "{self.ref}": unexpected commit size {got}, '
                f"expected {expected}: failed precondition",
                expected=str(expected),
                actual=str(got),
            )
        self._file.write(chunk)
        self.verifier.update(chunk)

    def commit(self) -> Path:
        """Verify size and digest, then move the data into place atomically.

        Returns:
            The committed blob's path.

        Raises:
            SizeMismatch, DigestMismatch: containerd's ``failed commit on ref`` messages;
                the ingest is removed.
        """
        target = self.store.path(str(self.verifier.expected))
        if self.committed:
            return target
        if self._file is None:
            raise RuntimeError("ingest is closed")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        try:
            self.verifier.verify()
        except Exception:
            self._remove()
            raise
        if target.exists():
            self._remove()  # committing present content is a no-op
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.directory / "data", target)
            _fsync_dir(target.parent)
            self._remove()
        self.committed = True
        return target

    def abort(self) -> None:
        """Discard the ingest and its data."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._remove()
        self.committed = True

    def _close_keep(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def _remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class ContentStore:
    """Blobs on disk, addressed by digest."""

    def __init__(self, root: Path, *, lock_timeout: float = 600.0) -> None:
        """Args:
        root: the store directory (created when missing).
        lock_timeout: how long a second writer of the same ref waits, in seconds.
        """
        self.root = state_dir(Path(root), 0o700)
        self.lock_timeout = lock_timeout
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "ingest").mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        """The blob path for *digest* (validated, so it can never leave the store).

        Raises:
            DigestError: invalid digest.
        """
        d = Digest.parse(digest)
        return self.root / "blobs" / d.algorithm / d.encoded

    def has(self, digest: str) -> bool:
        """True when the blob is committed."""
        try:
            return self.path(digest).is_file()
        except DigestError:
            return False

    def _existing(self, digest: str) -> Path:
        path = self.path(digest)
        if not path.is_file():
            # containerd content/local: "content digest <d>: not found".
            raise NotFoundInStore(f"content digest {digest}: not found", name=digest)
        return path

    def size(self, digest: str) -> int:
        """Size of a committed blob. Raises NotFoundInStore when absent."""
        return self._existing(digest).stat().st_size

    def open(self, digest: str) -> BinaryIO:
        """Open a committed blob for reading. Raises NotFoundInStore when absent."""
        return self._existing(digest).open("rb")

    def read_bytes(self, digest: str, max_size: int | None = None) -> bytes:
        """Read a whole blob.

        Raises:
            NotFoundInStore: absent.
            ManifestTooLarge: larger than *max_size*.
        """
        path = self._existing(digest)
        size = path.stat().st_size
        if max_size is not None and size > max_size:
            raise ManifestTooLarge(f"content {digest} is {size} bytes, over {max_size}")
        return path.read_bytes()

    def delete(self, digest: str) -> None:
        """Remove a committed blob. Raises NotFoundInStore when absent."""
        self._existing(digest).unlink()

    def list(self) -> list[str]:
        """All committed digests, sorted."""
        out = []
        for algo_dir in sorted((self.root / "blobs").iterdir()):
            for blob in sorted(algo_dir.iterdir()):
                digest = f"{algo_dir.name}:{blob.name}"
                if self.has(digest):
                    out.append(digest)
        return out

    def discard_partial_ingests(self) -> int:
        """Remove every partial ingest no writer holds; returns how many went.

        ``refpull pull`` calls this after a failed pull: a one-shot command has no
        later pull to resume them, so they would only hold disk (a hostile registry
        that cuts every layer short fills it). Ingests locked by a running pull stay.
        """
        removed = 0
        for directory in sorted((self.root / "ingest").iterdir()):
            lock = _RefLock(self.root / "locks" / directory.name)
            if not lock.try_acquire():
                continue
            try:
                shutil.rmtree(directory, ignore_errors=True)
                removed += 1
            finally:
                lock.release(unlink=True)
        return removed

    def _key(self, ref: str) -> str:
        return hashlib.sha256(ref.encode("utf-8", "surrogatepass")).hexdigest()

    def _lock(self, ref: str) -> _RefLock:
        lock = _RefLock(self.root / "locks" / self._key(ref))
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.005
        while not lock.try_acquire():
            if time.monotonic() > deadline:
                raise TimeoutError(f"ref {ref!r} is locked by another ingest")
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
        return lock

    @contextlib.contextmanager
    def ingest(
        self,
        ref: str,
        *,
        expected_digest: str,
        expected_size: int | None,
        keep_partial: bool = False,
    ) -> Iterator[Ingest]:
        """Open an exclusive ingest for *ref* (e.g. ``layer-sha256:…``).

        Args:
            ref: the ingest reference (containerd ``remotes.MakeRefKey``).
            expected_digest: the digest the content must have.
            expected_size: its size, or ``None`` when unknown (schema1 blobs).
            keep_partial: keep written bytes when the context exits without commit, and
                resume a partial of the same ref and digest left by an earlier ingest.

        Yields:
            An :class:`Ingest`; ``already_exists`` tells that no download is needed.

        Raises:
            DigestError: invalid *expected_digest*.
            TimeoutError: another ingest of *ref* held the lock for ``lock_timeout``.
        """
        verifier = DigestVerifier(expected_digest, expected_size, ref=ref)
        directory = self.root / "ingest" / self._key(ref)
        lock = self._lock(ref)
        ingest = Ingest(self, ref, directory, verifier, already_exists=False)
        try:
            if self.has(expected_digest):
                ingest = Ingest(self, ref, directory, verifier, already_exists=True)
            else:
                ingest = self._prepare(ingest, ref, expected_digest, keep_partial)
            yield ingest
        finally:
            if not ingest.committed:
                if keep_partial:
                    ingest._close_keep()
                else:
                    ingest.abort()
            lock.release(unlink=not directory.exists())

    def _prepare(self, ingest: Ingest, ref: str, digest: str, keep: bool) -> Ingest:
        marker = f"{ref}\n{digest}\n"
        directory = ingest.directory
        resume = keep and (directory / "ref").is_file()
        if resume and (directory / "ref").read_text("utf-8", "replace") != marker:
            resume = False  # a partial of other content: never mix bytes
        if not resume:
            shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "ref").write_text(marker, "utf-8", "surrogatepass")
        ingest._open(resume=resume)
        return ingest

    def clean_ingests(self) -> builtins.list[str]:
        """Remove ingests nobody is writing (call at start-up).

        Returns:
            The ingest keys removed.
        """
        removed = []
        for directory in sorted((self.root / "ingest").iterdir()):
            lock = _RefLock(self.root / "locks" / directory.name)
            if not lock.try_acquire():
                continue
            try:
                shutil.rmtree(directory, ignore_errors=True)
                removed.append(directory.name)
            finally:
                lock.release(unlink=True)
        return removed
