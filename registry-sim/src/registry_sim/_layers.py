"""Deterministic layer blobs: tar archives from a file map, compressed or not.

Same inputs, same bytes: entries are sorted, owners and times are fixed, and the
gzip header carries mtime 0 and no file name. Hostile entries (``../evil``,
absolute paths, links that escape) are written verbatim for unpacking-safety tests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Literal, Protocol, cast

import zstandard

__all__ = [
    "EMPTY_GZIP_LAYER",
    "HOSTILE",
    "Compression",
    "FileSpec",
    "Layer",
    "sha256_digest",
]

Compression = Literal["gzip", "none", "zstd"]
EntryKind = Literal["file", "dir", "symlink", "hardlink", "whiteout", "opaque", "fifo"]

#: The 32-byte gzip of a 1024-zero "empty tar" that Docker put in schema1 images
#: for empty layers (sha256:a3ed95ca…); behaviors.md S1-007 treats it as empty.
EMPTY_GZIP_LAYER = bytes.fromhex(
    "1f8b080000096e8800ff621805a360148c5800080000ffff2eafb5ef00040000"
)
#: Above this size Layer.random writes to a file instead of memory.
RANDOM_IN_MEMORY_LIMIT = 16 * 1024 * 1024
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"


def sha256_digest(data: bytes) -> str:
    """The OCI digest string of ``data``.

    Args:
        data: content bytes.

    Returns:
        ``"sha256:<64 hex>"``.
    """
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class FileSpec:
    """One tar entry. Build with the class methods; ``mode``/``mtime`` None = default."""

    kind: EntryKind = "file"
    data: bytes = b""
    target: str = ""
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    mtime: int | None = None

    @classmethod
    def file(cls, data: bytes | str = b"", *, mode: int = 0o644) -> FileSpec:
        """A regular file (text is UTF-8 encoded)."""
        raw = data.encode() if isinstance(data, str) else data
        return cls("file", raw, mode=mode)

    @classmethod
    def dir(cls, *, mode: int = 0o755) -> FileSpec:
        """A directory."""
        return cls("dir", mode=mode)

    @classmethod
    def symlink(cls, target: str) -> FileSpec:
        """A symbolic link to ``target`` (written verbatim, may escape the root)."""
        return cls("symlink", target=target, mode=0o777)

    @classmethod
    def hardlink(cls, target: str) -> FileSpec:
        """A hard link to the archive member ``target`` (written verbatim)."""
        return cls("hardlink", target=target)

    @classmethod
    def whiteout(cls) -> FileSpec:
        """Deletes the keyed path of lower layers (entry ``dir/.wh.name``)."""
        return cls("whiteout")

    @classmethod
    def opaque(cls) -> FileSpec:
        """Hides lower-layer contents of the keyed directory (``dir/.wh..wh..opq``)."""
        return cls("opaque")

    @classmethod
    def fifo(cls) -> FileSpec:
        """A named pipe (a device-like entry unpackers may refuse)."""
        return cls("fifo", mode=0o644)


FileMap = Mapping[str, "bytes | str | FileSpec"]

#: Deliberately hostile archives for unpacking-safety tests (name → file map).
HOSTILE: dict[str, dict[str, bytes | str | FileSpec]] = {
    "dotdot": {"../evil": "escaped via .."},
    "dotdot-nested": {"a/../../evil": "escaped via a/../.."},
    "absolute": {"/evil": "absolute path"},
    "symlink-escape": {"link": FileSpec.symlink("../../.."), "link/evil": "via link"},
    "absolute-symlink": {"link": FileSpec.symlink("/"), "link/evil": "via link"},
    "hardlink-escape": {"hard": FileSpec.hardlink("../../evil-target")},
}


def _entry_name(path: str, spec: FileSpec) -> str:
    pure = PurePosixPath(path)
    if spec.kind == "whiteout":
        return str(pure.parent / (_WHITEOUT + pure.name)).removeprefix("./")
    if spec.kind == "opaque":
        return str(pure / _OPAQUE)
    return path


def _tar_info(name: str, spec: FileSpec, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.uid, info.gid, info.uname, info.gname = spec.uid, spec.gid, "", ""
    info.mtime = mtime if spec.mtime is None else spec.mtime
    kinds = {
        "dir": (tarfile.DIRTYPE, 0o755),
        "symlink": (tarfile.SYMTYPE, 0o777),
        "hardlink": (tarfile.LNKTYPE, 0o644),
        "fifo": (tarfile.FIFOTYPE, 0o644),
    }
    info.type, default_mode = kinds.get(spec.kind, (tarfile.REGTYPE, 0o644))
    info.mode = default_mode if spec.mode is None else spec.mode
    info.linkname = spec.target
    info.size = len(spec.data) if info.type == tarfile.REGTYPE else 0
    return info


def _parents(name: str) -> list[str]:
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts:
        return []  # hostile names stay exactly as written, without helpers
    return [str(p) for p in pure.parents if str(p) != "."]


def tar_bytes(files: FileMap, *, mtime: int = 0, parents: bool = True) -> bytes:
    """A deterministic tar of ``files``: sorted entries, uid/gid 0, fixed mtime.

    Args:
        files: path → content (bytes/str) or FileSpec.
        mtime: the modification time of every entry without its own.
        parents: add missing parent directories of ordinary relative paths.

    Returns:
        The uncompressed tar archive.
    """
    specs: dict[str, FileSpec] = {}
    for path, value in files.items():
        spec = value if isinstance(value, FileSpec) else FileSpec.file(value)
        specs[_entry_name(path, spec)] = spec
    if parents:
        for name in list(specs):
            for parent in _parents(name):
                specs.setdefault(parent, FileSpec.dir())
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(specs):
            spec = specs[name]
            tar.addfile(_tar_info(name, spec, mtime), io.BytesIO(spec.data))
    return out.getvalue()


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


class _HashingWriter:
    """Write-through sink that hashes and counts what passes."""

    def __init__(self, sink: _Sink | None) -> None:
        self.sink, self.hash, self.size = sink, hashlib.sha256(), 0

    def write(self, data: bytes, /) -> int:
        self.hash.update(data)
        self.size += len(data)
        if self.sink is not None:
            self.sink.write(data)
        return len(data)

    def flush(self) -> None:
        pass  # the sink is flushed (or not) by its owner

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def _compressed_stream(
    out: _Sink, compression: Compression, fill: Callable[[BinaryIO], None]
) -> tuple[str, int, str]:
    """Run ``fill(writer)`` through compression into ``out``.

    Returns (digest, size, diff_id) of the compressed and uncompressed streams.
    """
    outer = _HashingWriter(out)
    packer: Any = outer
    if compression == "gzip":
        # gzip header: mtime 0 and an empty FNAME keep the bytes reproducible
        packer = gzip.GzipFile(filename="", mode="wb", fileobj=outer, mtime=0)
    elif compression == "zstd":
        packer = zstandard.ZstdCompressor(level=3).stream_writer(
            cast(Any, outer), closefd=False
        )
    inner = _HashingWriter(packer)
    fill(cast(BinaryIO, inner))
    if packer is not outer:
        packer.close()
    return outer.digest, outer.size, inner.digest


class _RandomReader:
    """A file-like source of ``size`` reproducible pseudo-random bytes."""

    def __init__(self, size: int, seed: int | str) -> None:
        self.left, self.rng = size, random.Random(str(seed))

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return self.rng.randbytes(n)


@dataclass(frozen=True)
class Layer:
    """A layer blob: content (bytes, or a file for large ones) plus its identities.

    ``digest``/``size`` describe the blob as stored, ``diff_id`` the uncompressed
    tar. ``media_type`` overrides the type image builders would pick.
    """

    data: bytes | Path
    compression: Compression
    digest: str
    size: int
    diff_id: str
    media_type: str | None = None

    @property
    def blobs(self) -> dict[str, bytes | Path]:
        """Digest → content of the one blob."""
        return {self.digest: self.data}

    def read_bytes(self) -> bytes:
        """The blob content (reads the file for file-backed layers)."""
        return self.data.read_bytes() if isinstance(self.data, Path) else self.data

    @classmethod
    def from_tar(cls, tar: bytes, compression: Compression = "gzip") -> Layer:
        """Compress an existing tar archive into a layer.

        Args:
            tar: the uncompressed archive (its sha256 is the diff_id).
            compression: ``"gzip"``, ``"zstd"`` or ``"none"``.

        Returns:
            The layer.
        """

        def fill(writer: BinaryIO) -> None:
            writer.write(tar)

        out = io.BytesIO()
        digest, size, diff_id = _compressed_stream(out, compression, fill)
        return cls(out.getvalue(), compression, digest, size, diff_id)

    @classmethod
    def from_files(
        cls,
        files: FileMap,
        compression: Compression = "gzip",
        mtime: int = 0,
        *,
        parents: bool = True,
    ) -> Layer:
        """Build a layer from a path → content map (see :func:`tar_bytes`).

        Args:
            files: path → bytes, str or FileSpec.
            compression: ``"gzip"``, ``"zstd"`` or ``"none"``.
            mtime: entry modification time.
            parents: add missing parent directories.

        Returns:
            The layer.
        """
        return cls.from_tar(tar_bytes(files, mtime=mtime, parents=parents), compression)

    @classmethod
    def hostile(cls, name: str, compression: Compression = "gzip") -> Layer:
        """One of the :data:`HOSTILE` archives.

        Raises:
            KeyError: unknown name.
        """
        return cls.from_files(HOSTILE[name], compression, parents=False)

    @classmethod
    def raw(cls, data: bytes, *, media_type: str | None = None) -> Layer:
        """A blob taken as is (not necessarily a tar); diff_id = sha256(data)."""
        digest = sha256_digest(data)
        return cls(data, "none", digest, len(data), digest, media_type)

    @classmethod
    def empty_gzip(cls) -> Layer:
        """Docker's 32-byte empty layer (gzip of 1024 zero bytes)."""
        diff_id = sha256_digest(bytes(1024))
        digest = sha256_digest(EMPTY_GZIP_LAYER)
        return cls(EMPTY_GZIP_LAYER, "gzip", digest, len(EMPTY_GZIP_LAYER), diff_id)

    @classmethod
    def random(
        cls,
        size: int,
        seed: int | str,
        *,
        compression: Compression = "gzip",
        directory: Path | None = None,
    ) -> Layer:
        """A tar with one file of ``size`` incompressible, reproducible bytes.

        Streams through compression in 1 MiB chunks; never holds the data in
        memory when it goes to a file.

        Args:
            size: bytes of random file content.
            seed: the PRNG seed (same seed, same bytes).
            compression: ``"gzip"``, ``"zstd"`` or ``"none"``.
            directory: where to write the blob file; required above 16 MiB.

        Returns:
            The layer (``data`` is a Path when ``directory`` is given).

        Raises:
            ValueError: a large layer was asked for without a directory.
        """
        if directory is None and size > RANDOM_IN_MEMORY_LIMIT:
            raise ValueError(f"a {size}-byte random layer needs a directory")

        def fill(writer: BinaryIO) -> None:
            with tarfile.open(
                fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT
            ) as t:
                info = _tar_info("random.bin", FileSpec.file(), 0)
                info.size = size
                t.addfile(info, cast(BinaryIO, _RandomReader(size, seed)))

        if directory is None:
            out = io.BytesIO()
            digest, n, diff_id = _compressed_stream(out, compression, fill)
            return cls(out.getvalue(), compression, digest, n, diff_id)
        fd, name = tempfile.mkstemp(dir=directory, suffix=".partial")
        partial = Path(name)
        with os.fdopen(fd, "wb") as fh:
            digest, n, diff_id = _compressed_stream(fh, compression, fill)
        final = directory / digest.replace(":", "-")
        partial.replace(final)
        return cls(final, compression, digest, n, diff_id)
