"""Layers a hostile registry serves: ordered tar entries and bounded decompression bombs.

:func:`registry_sim.images.Layer.from_files` sorts its entries; the attacks here depend
on the *order* (declare a directory, fill it, then replace it with a symlink), so
:func:`ordered_layer` writes entries exactly as listed, duplicates included.

:func:`bomb_layer` builds a layer that inflates to ``size`` bytes from a blob about a
thousandth of that, without ever holding or compressing the inflated stream: gzip
members (RFC 1952 §2.2, a gzip file is a series of members) and zstd frames (RFC 8878
§3.1) may be concatenated, so one compressed MiB of zeros is repeated. Only the
diff_id needs the whole stream, and hashing a GiB of zeros takes about a second.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import zstandard

from registry_sim._content import MT_OCI_INDEX
from registry_sim._image import Image
from registry_sim._image_config import to_json_bytes
from registry_sim._layers import Compression, Layer, sha256_digest

__all__ = [
    "MIB",
    "BombCompression",
    "Entry",
    "bomb_layer",
    "ordered_layer",
    "ordered_tar",
]

MIB = 1 << 20
BombCompression = Literal["gzip", "zstd"]
EntryKind = Literal["file", "dir", "symlink", "hardlink"]
_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
}


@dataclass(frozen=True)
class Entry:
    """One tar entry, written verbatim (names and link targets may be hostile)."""

    name: str
    kind: EntryKind = "file"
    data: bytes = b""
    link: str = ""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 1_500_000_000


def ordered_tar(entries: Sequence[Entry]) -> bytes:
    """A PAX tar of *entries* in the given order.

    Args:
        entries: the entries; a name may repeat (a later entry replaces an earlier one).

    Returns:
        The uncompressed archive.
    """
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = _TYPES[e.kind]
            info.mode, info.uid, info.gid, info.mtime = e.mode, e.uid, e.gid, e.mtime
            info.uname = info.gname = ""
            info.linkname = e.link
            info.size = len(e.data) if e.kind == "file" else 0
            tar.addfile(info, io.BytesIO(e.data))
    return out.getvalue()


def ordered_layer(entries: Sequence[Entry], compression: Compression = "gzip") -> Layer:
    """A layer whose tar holds *entries* in order (see :func:`ordered_tar`)."""
    return Layer.from_tar(ordered_tar(entries), compression)


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 1_500_000_000
    return info.tobuf(format=tarfile.GNU_FORMAT)  # GNU: sizes above 8 GiB still fit


def _pieces(size: int, files: int) -> Iterator[bytes | int]:
    """The tar as raw bytes and counts of zero MiB; every piece 512-byte aligned."""
    per_file = size // files // MIB * MIB
    if per_file <= 0:
        raise ValueError(f"a {size}-byte bomb cannot hold {files} files of whole MiB")
    for i in range(files):
        yield _header(f"bomb-{i:05d}.bin", per_file)
        yield per_file // MIB
    yield bytes(1024)  # two zero blocks end the archive


def _member(data: bytes, compression: BombCompression) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, compresslevel=9, mtime=0)
    return zstandard.ZstdCompressor(level=19).compress(data)


@functools.lru_cache(maxsize=8)
def bomb_layer(
    size: int, compression: BombCompression = "gzip", files: int = 1
) -> Layer:
    """A layer of *files* zero-filled files totalling about *size* bytes.

    The blob is about ``size / 1000`` bytes for gzip (deflate's ceiling) and far
    less for zstd. Cached: the same bomb is built once per process.

    Args:
        size: bytes the files hold together (rounded down to whole MiB per file).
        compression: ``"gzip"`` (concatenated members) or ``"zstd"`` (frames).
        files: how many files share the size (one big file, or many).

    Returns:
        The layer, with the diff_id of the whole inflated tar.

    Raises:
        ValueError: *size* is too small for *files* files of at least a MiB.
    """
    zero_member = _member(bytes(MIB), compression)
    blob = io.BytesIO()
    diff = hashlib.sha256()
    zero_mib = bytes(MIB)
    for piece in _pieces(size, files):
        if isinstance(piece, bytes):
            blob.write(_member(piece, compression))
            diff.update(piece)
        else:
            blob.write(zero_member * piece)
            for _ in range(piece):
                diff.update(zero_mib)
    data = blob.getvalue()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return Layer(data, compression, digest, len(data), "sha256:" + diff.hexdigest())


@dataclass(frozen=True)
class IndexChain:
    """An OCI index naming an index naming … *depth* deep, then an image.

    :class:`registry_sim.images.Index` nests by recursion (a thousand levels pass
    Python's limit); this builds the chain iteratively, in ``RegistrySim.push``'s shape.
    """

    blobs: dict[str, bytes | Path]
    manifests: list[tuple[str, bytes]]
    config_digest: None = None

    @property
    def media_type(self) -> str:
        return self.manifests[-1][0]

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifests[-1][1])

    @property
    def size(self) -> int:
        return len(self.manifests[-1][1])


def index_chain(base: Image, depth: int) -> IndexChain:
    """*depth* OCI indexes, each naming the next (linux/amd64), the last naming *base*.

    Args:
        base: the image at the bottom.
        depth: how many indexes (1 = a plain index over *base*).

    Returns:
        The chain; push it like any built image.
    """
    manifests = list(base.manifests)
    media_type, digest, size = base.media_type, base.digest, base.size
    platform = {"architecture": "amd64", "os": "linux"}
    for _ in range(depth):
        entry = {
            "mediaType": media_type,
            "digest": digest,
            "size": size,
            "platform": platform,
        }
        doc = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": [entry]}
        data = to_json_bytes(doc)
        manifests.append((MT_OCI_INDEX, data))
        media_type, digest, size = MT_OCI_INDEX, sha256_digest(data), len(data)
    return IndexChain(dict(base.blobs), manifests)
