"""A forward-only byte stream for :class:`tarfile.TarFile`, cheap for big and small reads.

``tarfile.open(mode="r|")`` wraps its input in ``tarfile._Stream``, which copies its whole
read-ahead buffer on every read: with the default 10 KiB buffer a 512 MiB layer costs
~100 000 Python-level reads, and with a large buffer every 512-byte header read copies
up to the buffer size. :class:`TarStream` keeps the same contract -- ``read(n)`` returns
at most *n* bytes (fewer only at the end), ``seek`` moves forward only and raises
``StreamError("seeking backwards is not allowed")`` otherwise, ``tell`` counts bytes
consumed -- so ``TarFile(fileobj=TarStream(...))`` parses exactly like stream mode, while
consuming from a buffer by offset and copying file contents straight to a descriptor.
"""

from __future__ import annotations

import os
import tarfile
from typing import Protocol

__all__ = ["CHUNK", "Readable", "TarStream"]

#: Size of the reads from the (decompressed) layer stream.
CHUNK = 1 << 20


class Readable(Protocol):
    """Anything with ``read(n) -> bytes``, returning b"" at the end."""

    def read(self, n: int, /) -> bytes: ...


class TarStream:
    """Buffered, forward-only reader over *inner* (see the module docstring)."""

    def __init__(self, inner: Readable, *, chunk: int = CHUNK) -> None:
        self._inner = inner
        self._chunk = chunk
        self._buf = b""
        self._at = 0  # bytes of _buf already consumed
        self.pos = 0

    def _fill(self) -> bool:
        """Replace the (fully consumed) buffer with the next chunk; False at the end."""
        data = self._inner.read(self._chunk)
        self._buf, self._at = data, 0
        return bool(data)

    def read(self, size: int, /) -> bytes:
        """Return the next *size* bytes (fewer only at the end of the stream)."""
        start = self._at
        if len(self._buf) - start < size:
            # Gather enough chunks, join once, and keep the rest consumed by offset.
            parts = [self._buf[start:]]
            have = len(parts[0])
            while have < size:
                data = self._inner.read(self._chunk)
                if not data:
                    break
                parts.append(data)
                have += len(data)
            self._buf, start = b"".join(parts), 0
        out = self._buf[start : start + size]
        self._at = start + len(out)
        self.pos += len(out)
        return out

    def tell(self) -> int:
        """Bytes consumed so far."""
        return self.pos

    def seek(self, pos: int, /) -> int:
        """Skip forward to *pos* (or to the end, if the stream is shorter).

        Raises:
            tarfile.StreamError: *pos* is behind the current position.
        """
        if pos < self.pos:
            # The wording of tarfile._Stream, so errors read the same as in mode "r|".
            raise tarfile.StreamError("seeking backwards is not allowed")
        remaining = pos - self.pos
        while remaining:
            available = len(self._buf) - self._at
            if not available and not self._fill():
                break
            step = min(remaining, len(self._buf) - self._at)
            self._at += step
            self.pos += step
            remaining -= step
        return self.pos

    def copy_to(self, fd: int, size: int) -> int:
        """Write the next *size* bytes to the file descriptor *fd*.

        Returns:
            The bytes copied; fewer than *size* only when the stream ended.
        """
        done = 0
        while done < size:
            if self._at >= len(self._buf) and not self._fill():
                break
            take = min(size - done, len(self._buf) - self._at)
            view = memoryview(self._buf)[self._at : self._at + take]
            _write_all(fd, view)
            self._at += take
            self.pos += take
            done += take
        return done

    def write(self, data: bytes, /) -> int:
        """Not supported: the stream is read-only."""
        raise tarfile.StreamError("the layer stream is read-only")

    def close(self) -> None:
        """Drop the buffer (the inner stream belongs to the caller)."""
        self._buf = b""
        self._at = 0


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        written = os.write(fd, view)
        view = view[written:]
