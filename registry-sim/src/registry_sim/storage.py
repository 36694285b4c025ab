"""Repositories, tags, manifests, blobs and upload sessions (thread-safe).

Layout: blobs are content-addressed files under ``<root>/blobs/<alg>/<hex>`` shared
by all repositories and *linked* into each repository that may serve them, as
distribution does; manifests are kept in memory per repository as ``(media type,
bytes)`` by digest and are also written as blobs (distribution stores them as blobs
too, which is what makes a ``GET /blobs/<manifest digest>`` work, behaviors.md
FETCH-001). Upload sessions append to files under ``<root>/uploads``.

Blobs are never read back whole: GET handlers answer with a ``FileBody`` over
:meth:`Storage.blob_path`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from registry_sim._content import DigestHasher, manifest_digest, split_digest

__all__ = [
    "DigestMismatch",
    "Storage",
    "StorageError",
    "UnsupportedDigest",
    "UploadOutOfOrder",
    "UploadUnknown",
]

_CHUNK = 1 << 20


class StorageError(Exception):
    """Base of the storage errors a handler turns into a wire error."""


class UploadUnknown(StorageError):
    """No upload session with that id."""


class UploadOutOfOrder(StorageError):
    """A chunk did not start where the upload ends."""

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"chunk starts at {got}, upload has {expected} bytes")
        self.expected = expected
        self.got = got


class DigestMismatch(StorageError):
    """Uploaded content does not hash to the digest the client named."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"content digest {actual} does not match {expected}")
        self.expected = expected
        self.actual = actual


class UnsupportedDigest(StorageError):
    """The digest is malformed or uses an algorithm we do not implement."""


@dataclass
class _Repo:
    tags: dict[str, str] = field(default_factory=dict)
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    blobs: set[str] = field(default_factory=set)

    def is_empty(self) -> bool:
        return not (self.tags or self.manifests or self.blobs)


@dataclass
class _Upload:
    repo: str
    path: Path
    size: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Storage:
    """In-process registry storage with blobs on disk.

    Args:
        root: directory to keep blobs and uploads in; a private temporary directory
            (removed by :meth:`close`) when ``None``.
    """

    def __init__(self, root: Path | None = None) -> None:
        self._owns_root = root is None
        self._root = (
            Path(tempfile.mkdtemp(prefix="registry-sim-")) if root is None else root
        )
        (self._root / "blobs").mkdir(parents=True, exist_ok=True)
        (self._root / "uploads").mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._repos: dict[str, _Repo] = {}
        self._sizes: dict[str, int] = {}
        self._uploads: dict[str, _Upload] = {}

    @property
    def root(self) -> Path:
        """The directory holding blob files."""
        return self._root

    # -- lifecycle -------------------------------------------------------------

    def close(self) -> None:
        """Forget everything; remove the directory when it is a private temp dir."""
        with self._lock:
            self._repos.clear()
            self._sizes.clear()
            self._uploads.clear()
        if self._owns_root:
            shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> Storage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def reset(self) -> None:
        """Delete every repository, blob and upload session (between tests)."""
        with self._lock:
            self._repos.clear()
            self._sizes.clear()
            self._uploads.clear()
            for sub in ("blobs", "uploads"):
                shutil.rmtree(self._root / sub, ignore_errors=True)
                (self._root / sub).mkdir(parents=True, exist_ok=True)

    # -- blobs -----------------------------------------------------------------

    def _path_for(self, digest: str) -> Path:
        parts = split_digest(digest)
        if parts is None:
            raise UnsupportedDigest(digest)
        return self._root / "blobs" / parts[0] / parts[1]

    def _commit(self, repo: str, temp: Path, digest: str, size: int) -> None:
        target = self._path_for(digest)
        with self._lock:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, target)
            self._sizes[digest] = size
            self._repos.setdefault(repo, _Repo()).blobs.add(digest)

    def _temp_file(self) -> tuple[int, Path]:
        fd, name = tempfile.mkstemp(dir=self._root / "uploads", prefix="blob-")
        return fd, Path(name)

    def put_blob(
        self,
        repo: str,
        data: bytes | BinaryIO | Path,
        *,
        digest: str | None = None,
    ) -> str:
        """Store a blob and link it into ``repo``.

        Args:
            repo: the repository to link the blob into.
            data: the content: bytes, a readable binary stream, or a file to copy.
            digest: store under this digest *without checking it* — only for
                deliberately broken fixtures (a layer whose bytes do not match the
                manifest). The algorithm of this digest is also the one computed
                when it is omitted (sha256).

        Returns:
            The digest the blob is stored under.

        Raises:
            UnsupportedDigest: ``digest`` is malformed.
        """
        if digest is not None and split_digest(digest) is None:
            raise UnsupportedDigest(digest)
        hasher = DigestHasher("sha256")
        fd, temp = self._temp_file()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in _chunks(data):
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            stored = digest or hasher.digest()
            self._commit(repo, temp, stored, size)
        finally:
            temp.unlink(missing_ok=True)
        return stored

    def blob_path(self, digest: str) -> Path | None:
        """The file holding ``digest``'s bytes, or ``None`` when not stored."""
        with self._lock:
            if digest not in self._sizes:
                return None
            return self._path_for(digest)

    def blob_size(self, digest: str) -> int | None:
        """The size of a stored blob, or ``None``."""
        with self._lock:
            return self._sizes.get(digest)

    def has_blob(self, repo: str, digest: str) -> bool:
        """Whether ``digest`` is stored and linked into ``repo``."""
        with self._lock:
            found = self._repos.get(repo)
            return found is not None and digest in found.blobs and digest in self._sizes

    def mount_blob(self, from_repo: str, to_repo: str, digest: str) -> bool:
        """Link a blob of ``from_repo`` into ``to_repo``; ``False`` if it has none."""
        with self._lock:
            if not self.has_blob(from_repo, digest):
                return False
            self._repos.setdefault(to_repo, _Repo()).blobs.add(digest)
            return True

    def delete_blob(self, repo: str, digest: str) -> bool:
        """Unlink a blob from ``repo``; the file goes when no repository links it."""
        with self._lock:
            found = self._repos.get(repo)
            if found is None or digest not in found.blobs:
                return False
            found.blobs.discard(digest)
            if found.is_empty():
                del self._repos[repo]
            if not any(digest in r.blobs for r in self._repos.values()):
                self._sizes.pop(digest, None)
                self._path_for(digest).unlink(missing_ok=True)
            return True

    # -- manifests -------------------------------------------------------------

    def put_manifest(
        self, repo: str, reference: str, data: bytes, media_type: str
    ) -> str:
        """Store a manifest by digest and, when ``reference`` is a tag, tag it.

        The digest is computed from ``data`` (for signed schema1 from its payload)
        unless ``reference`` is itself a digest: then it is used *as given*, so a
        fixture can serve bytes that do not match the digest they are served under.
        Request validation is the handlers' job, not the storage's.

        Args:
            repo: the repository.
            reference: a tag, or the digest to store under.
            data: the manifest bytes, served back verbatim.
            media_type: the ``Content-Type`` to serve it with.

        Returns:
            The digest the manifest is stored under.
        """
        given = split_digest(reference)
        digest = reference if given else manifest_digest(data, media_type)
        self.put_blob(repo, data, digest=digest)
        with self._lock:
            found = self._repos.setdefault(repo, _Repo())
            found.manifests[digest] = (media_type, data)
            if not given:
                found.tags[reference] = digest
        return digest

    def resolve(self, repo: str, reference: str) -> str | None:
        """The digest ``reference`` (tag or digest) names in ``repo``, if stored."""
        with self._lock:
            found = self._repos.get(repo)
            if found is None:
                return None
            digest = found.tags.get(reference, reference)
            return digest if digest in found.manifests else None

    def get_manifest(self, repo: str, reference: str) -> tuple[str, bytes, str] | None:
        """``(media_type, data, digest)`` for a tag or digest, or ``None``."""
        with self._lock:
            digest = self.resolve(repo, reference)
            if digest is None:
                return None
            media_type, data = self._repos[repo].manifests[digest]
            return media_type, data, digest

    def tag(self, repo: str, tag: str, digest: str) -> bool:
        """Point ``tag`` at a stored manifest; ``False`` if the manifest is unknown."""
        with self._lock:
            found = self._repos.get(repo)
            if found is None or digest not in found.manifests:
                return False
            found.tags[tag] = digest
            return True

    def delete_manifest(self, repo: str, reference: str) -> bool:
        """Delete a tag, or a manifest (by digest) together with every tag on it.

        Returns:
            Whether anything was deleted.
        """
        with self._lock:
            found = self._repos.get(repo)
            if found is None:
                return False
            if reference in found.tags:
                del found.tags[reference]
                return True
            if found.manifests.pop(reference, None) is None:
                return False
            for name in [t for t, d in found.tags.items() if d == reference]:
                del found.tags[name]
            return True

    def tags(self, repo: str) -> list[str]:
        """The tags of ``repo`` in lexical order (empty for unknown repositories)."""
        with self._lock:
            found = self._repos.get(repo)
            return sorted(found.tags) if found else []

    def manifest_digests(self, repo: str) -> list[str]:
        """The digests of every manifest stored in ``repo``."""
        with self._lock:
            found = self._repos.get(repo)
            return sorted(found.manifests) if found else []

    def has_repository(self, repo: str) -> bool:
        """Whether ``repo`` holds any blob, manifest or tag."""
        with self._lock:
            return repo in self._repos

    def repositories(self) -> list[str]:
        """Every repository name in lexical order."""
        with self._lock:
            return sorted(self._repos)

    # -- uploads ---------------------------------------------------------------

    def start_upload(self, repo: str) -> str:
        """Open an upload session for ``repo``; returns its id."""
        session = str(uuidlib.uuid4())
        path = self._root / "uploads" / session
        path.touch()
        with self._lock:
            self._uploads[session] = _Upload(repo, path)
        return session

    def _upload(self, session: str) -> _Upload:
        with self._lock:
            found = self._uploads.get(session)
        if found is None:
            raise UploadUnknown(session)
        return found

    def upload_repo(self, session: str) -> str:
        """The repository an upload belongs to. Raises :class:`UploadUnknown`."""
        return self._upload(session).repo

    def upload_size(self, session: str) -> int:
        """Bytes received so far. Raises :class:`UploadUnknown`."""
        return self._upload(session).size

    def append_upload(
        self, session: str, data: bytes | BinaryIO, start: int | None = None
    ) -> int:
        """Append a chunk to an upload session.

        Args:
            session: the upload id.
            data: the chunk, or a readable file of it (a large body the server
                spooled to disk), copied in blocks.
            start: where the client says the chunk starts; must equal the size so far.

        Returns:
            The new size of the upload.

        Raises:
            UploadUnknown: no such session.
            UploadOutOfOrder: ``start`` is not the current size.
        """
        upload = self._upload(session)
        with upload.lock:
            if start is not None and start != upload.size:
                raise UploadOutOfOrder(upload.size, start)
            written = 0
            with upload.path.open("ab") as out:
                for chunk in _chunks(data):
                    out.write(chunk)
                    written += len(chunk)
            upload.size += written
            return upload.size

    def finish_upload(self, session: str, digest: str) -> str:
        """Verify an upload against ``digest`` and store it as a blob.

        The session ends either way (distribution cancels a mismatched upload).

        Raises:
            UploadUnknown: no such session.
            UnsupportedDigest: ``digest`` is malformed or of an unknown algorithm.
            DigestMismatch: the content hashes to something else.
        """
        upload = self._upload(session)
        parts = split_digest(digest)
        if parts is None:
            raise UnsupportedDigest(digest)
        with upload.lock:
            with self._lock:
                self._uploads.pop(session, None)
            hasher = DigestHasher(parts[0])
            with upload.path.open("rb") as src:
                for chunk in iter(lambda: src.read(_CHUNK), b""):
                    hasher.update(chunk)
            try:
                if hasher.digest() != digest:
                    raise DigestMismatch(digest, hasher.digest())
                self._commit(upload.repo, upload.path, digest, upload.size)
            finally:
                upload.path.unlink(missing_ok=True)
        return digest

    def cancel_upload(self, session: str) -> bool:
        """Drop an upload session; ``False`` if it did not exist."""
        with self._lock:
            upload = self._uploads.pop(session, None)
        if upload is None:
            return False
        upload.path.unlink(missing_ok=True)
        return True


def _chunks(data: bytes | BinaryIO | Path) -> Iterator[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        yield bytes(data)
    elif isinstance(data, Path):
        with data.open("rb") as stream:
            yield from iter(lambda: stream.read(_CHUNK), b"")
    else:
        yield from iter(lambda: data.read(_CHUNK), b"")
