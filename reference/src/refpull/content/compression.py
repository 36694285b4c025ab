"""Layer decompression by magic number (behaviors.md PULL-010, S1-007).

containerd ``archive/compression.DecompressStream`` looks at the first bytes: gzip
(``1f 8b 08``), zstd (``28 b5 2f fd``, 1.5.0+ only) or else "uncompressed". There is no
fallback: a zstd stream in a runtime without zstd support is read as a plain tar.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import BinaryIO, Final, Protocol

import zstandard

from refpull.content._gzipstream import GzipReader

__all__ = ["GZIP", "NONE", "ZSTD", "Reader", "detect", "open_decompressed"]

GZIP: Final = "gzip"
ZSTD: Final = "zstd"
NONE: Final = "none"

_GZIP_MAGIC: Final = b"\x1f\x8b\x08"
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"


class Reader(Protocol):
    """A decompressed stream: ``read(n)`` returns up to *n* bytes, b"" at the end."""

    def read(self, n: int, /) -> bytes: ...


def detect(head: bytes, *, zstd: bool) -> str:
    """Return the compression of a stream starting with *head*.

    Args:
        head: at least the first 4 bytes (fewer only for shorter streams).
        zstd: whether the runtime knows zstd (``Profile.zstd_layers``).
    """
    if head.startswith(_GZIP_MAGIC):
        return GZIP
    if zstd and head.startswith(_ZSTD_MAGIC):
        return ZSTD
    return NONE


@contextlib.contextmanager
def open_decompressed(fileobj: BinaryIO, *, zstd: bool) -> Iterator[tuple[str, Reader]]:
    """Open a decompressing reader over a seekable binary file.

    Yields:
        ``(compression, reader)``; the reader streams, it never holds the whole layer.
    """
    head = fileobj.read(4)
    fileobj.seek(-len(head), io.SEEK_CUR)
    kind = detect(head, zstd=zstd)
    if kind == GZIP:
        # Multi-member streams are read to the end, like Go's gzip.Reader (multistream);
        # GzipReader answers like gzip.GzipFile, with 1 MiB reads (refpull.content._gzipstream).
        yield kind, GzipReader(fileobj)
    elif kind == ZSTD:
        dctx = zstandard.ZstdDecompressor()
        with dctx.stream_reader(fileobj, read_across_frames=True, closefd=False) as zr:
            yield kind, zr
    else:
        yield kind, fileobj
