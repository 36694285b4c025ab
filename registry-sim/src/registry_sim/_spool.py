"""Upload bodies spooled to disk instead of memory (issue 12, finding 8).

A chunked PATCH of 1 GiB used to be joined in memory (2 GiB peak RSS). The connection
now copies an upload body in 1 MiB blocks into an unlinked temp file of the server's
own spool directory; :class:`SpooledBody` stands in for ``Request.body`` and
``storage.append_upload`` copies it on in blocks. Nothing is left on disk: the file has
no name, and closing it frees the space.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import BinaryIO

from registry_sim import _http1
from registry_sim._http1 import MessageError
from registry_sim._sockio import LineReader

__all__ = ["SpooledBody", "spool_body"]

_COPY_BLOCK = 1024 * 1024


class SpooledBody:
    """A request body in an unlinked temp file: ``len()``, ``read()``, ``close()``.

    It stands in for ``Request.body`` (bytes) on upload requests; the storage copies
    it in blocks (``storage.append_upload``). Nothing is left on disk: the file has
    no name, and closing it frees the space.
    """

    def __init__(self, fileobj: BinaryIO, length: int) -> None:
        self._file = fileobj
        self.length = length
        fileobj.seek(0)

    def __len__(self) -> int:
        return self.length

    def __bool__(self) -> bool:
        return self.length > 0

    def __eq__(self, other: object) -> bool:
        if isinstance(other, bytes | bytearray) and len(other) == 0:
            return self.length == 0
        return other is self

    __hash__ = None  # type: ignore[assignment]

    def read(self, size: int = -1) -> bytes:
        """Read up to *size* bytes (all that is left when negative)."""
        return self._file.read(size)

    def close(self) -> None:
        """Drop the file."""
        self._file.close()


def spool_body(
    reader: LineReader, *, chunked: bool, length: int, limit: int, directory: Path
) -> SpooledBody:
    """Copy a request body (chunked, or *length* bytes) into a file in *directory*.

    Raises:
        MessageError: malformed chunked framing, or more than *limit* bytes.
    """
    # Outlives this call: SpooledBody.close() (after the response) closes it.
    fileobj = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115
    try:
        total = 0
        if chunked:
            while size := _http1.parse_chunk_size(reader.readline()):
                total += size
                if total > limit:
                    raise MessageError("chunked body too large", 413)
                _copy(reader, size, fileobj)
                if reader.readline() not in (b"\r\n", b"\n"):
                    raise MessageError("chunk data not followed by CRLF")
            while reader.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailer fields are read and dropped
        else:
            _copy(reader, length, fileobj)
            total = length
        return SpooledBody(fileobj, total)
    except BaseException:
        fileobj.close()
        raise


def _copy(reader: LineReader, count: int, out: BinaryIO) -> None:
    while count:
        block = reader.read_exact(min(count, _COPY_BLOCK))
        out.write(block)
        count -= len(block)
