"""A gzip reader with large reads, answering like :class:`gzip.GzipFile`.

``gzip.GzipFile`` in Python 3.11 feeds zlib 8 KiB at a time and computes the CRC in a
separate pass: about 65 000 Python-level rounds for a 512 MiB layer. This reader feeds
1 MiB at a time and otherwise follows ``gzip._GzipReader`` step by step, so a layer is
accepted or rejected exactly as before, with the same exception types and messages:

* members are read until the end of the input (multi-member streams, like Go's
  ``gzip.Reader``); zero bytes after a member are skipped (``gzip`` FAQ 8);
* a next member not starting with ``1f 8b`` → ``BadGzipFile("Not a gzipped file
  (<magic>)")``, a method other than deflate → ``BadGzipFile("Unknown compression
  method")``;
* a wrong CRC-32 or ISIZE → ``BadGzipFile("CRC check failed 0x.. != 0x..")`` /
  ``BadGzipFile("Incorrect length of data produced")``, checked when the reader
  moves past the member, as ``GzipFile`` does;
* input ending inside a member → ``EOFError("Compressed file ended before the
  end-of-stream marker was reached")``; corrupt deflate data → ``zlib.error``.

Memory stays bounded: each ``read(n)`` returns at most *n* bytes (``max_length``), so
a highly compressible member is never inflated whole.
"""

from __future__ import annotations

import struct
import zlib
from gzip import BadGzipFile
from typing import BinaryIO

__all__ = ["GzipReader"]

_INPUT = 1 << 20
_FTEXT, _FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 1, 2, 4, 8, 16
_TRUNCATED = "Compressed file ended before the end-of-stream marker was reached"


class _Input:
    """The compressed bytes: a file read in large chunks, with push-back."""

    def __init__(self, fileobj: BinaryIO) -> None:
        self._file = fileobj
        self._buf = b""
        self._at = 0

    def chunk(self) -> bytes:
        """The pushed-back bytes if any, else one large read of the file."""
        if self._at < len(self._buf):
            out, self._buf, self._at = self._buf[self._at :], b"", 0
            return out
        return self._file.read(_INPUT)

    def read(self, size: int) -> bytes:
        """*size* bytes, fewer only at the end (``gzip._PaddedFile.read``)."""
        held = len(self._buf) - self._at
        if held >= size:
            out = self._buf[self._at : self._at + size]
            self._at += size
            return out
        if held > 0:
            rest, self._buf, self._at = self._buf[self._at :], b"", 0
            return rest + self._file.read(size - held)
        return self._file.read(size)

    def exact(self, size: int) -> bytes:
        """Exactly *size* bytes, or EOFError (``gzip._read_exact``)."""
        data = self.read(size)
        while len(data) < size:
            more = self.read(size - len(data))
            if not more:
                raise EOFError(_TRUNCATED)
            data += more
        return data

    def prepend(self, data: bytes) -> None:
        """Push *data* back in front of the unread input."""
        rest = self._buf[self._at :]
        self._buf, self._at = data + rest, 0


def _read_header(src: _Input) -> bool:
    """Parse a member header like ``gzip._read_gzip_header``; False at the end."""
    magic = src.read(2)
    if magic == b"":
        return False
    if magic != b"\x1f\x8b":
        raise BadGzipFile(f"Not a gzipped file ({magic!r})")
    method, flag, _mtime = struct.unpack("<BBIxx", src.exact(8))
    if method != 8:
        raise BadGzipFile("Unknown compression method")
    if flag & _FEXTRA:
        (extra_len,) = struct.unpack("<H", src.exact(2))
        src.exact(extra_len)
    for field in (_FNAME, _FCOMMENT):
        if flag & field:  # zero-terminated; the end of input also ends it
            while True:
                byte = src.read(1)
                if not byte or byte == b"\x00":
                    break
    if flag & _FHCRC:
        src.exact(2)
    return True


class GzipReader:
    """Decompresses a (multi-member) gzip stream; ``read(n)`` like ``GzipFile.read``."""

    def __init__(self, fileobj: BinaryIO) -> None:
        """Args:
        fileobj: the compressed input, positioned at the first member.
        """
        self._src = _Input(fileobj)
        self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        self._new_member = True
        self._crc = 0
        self._size = 0
        self._done = False

    def read(self, size: int = -1) -> bytes:
        """Return up to *size* decompressed bytes (all of them for a negative size).

        Raises:
            BadGzipFile, EOFError, zlib.error: see the module docstring.
        """
        if size < 0:
            return b"".join(iter(lambda: self.read(_INPUT), b""))
        while size and not self._done:
            if self._inflate.eof:
                self._finish_member()
            if self._new_member:
                self._crc, self._size = 0, 0
                if not _read_header(self._src):
                    self._done = True
                    break
                self._new_member = False
            data = self._inflate_some(size)
            if data:
                return data
        return b""

    def _inflate_some(self, size: int) -> bytes:
        chunk = self._src.chunk()
        data = self._inflate.decompress(chunk, size)
        leftover = self._inflate.unconsumed_tail or self._inflate.unused_data
        if leftover:
            self._src.prepend(leftover)
        if not data and not chunk:
            raise EOFError(_TRUNCATED)
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        return data

    def _finish_member(self) -> None:
        """Check the trailer, skip zero padding, and prepare for the next member."""
        crc, isize = struct.unpack("<II", self._src.exact(8))
        if crc != self._crc:
            raise BadGzipFile(f"CRC check failed {hex(crc)} != {hex(self._crc)}")
        if isize != self._size & 0xFFFFFFFF:
            raise BadGzipFile("Incorrect length of data produced")
        byte = b"\x00"
        while byte == b"\x00":
            byte = self._src.read(1)
        if byte:
            self._src.prepend(byte)
        self._new_member = True
        self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
