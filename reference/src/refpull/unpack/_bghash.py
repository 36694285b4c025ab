"""A SHA-256 computed on a helper thread, so hashing overlaps decompression and writes.

The diffID of a layer is the SHA-256 of its whole uncompressed tar (behaviors.md
PULL-005). Hashing is the largest single cost of applying a layer (about as much as
decompressing and writing together), and ``hashlib`` releases the GIL for large
inputs, so the unpacker hands chunks to one helper thread through a small bounded
queue (at most ``_DEPTH`` chunks, so memory stays bounded) instead of hashing inline.
Small inputs are hashed inline until the first large chunk arrives; order is kept
because, once the thread runs, every later chunk goes through its queue.
"""

from __future__ import annotations

import hashlib
import queue
import threading

__all__ = ["BackgroundSHA256"]

# Chunks at least this large start the helper thread (tiny layers never pay for it).
_THRESHOLD = 256 * 1024
_DEPTH = 8


class BackgroundSHA256:
    """``update`` in stream order; ``hexdigest`` waits for the helper and answers."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] | None = None
        self._thread: threading.Thread | None = None

    def update(self, data: bytes) -> None:
        """Add *data* (in order) to the digest."""
        if self._queue is None:
            if len(data) < _THRESHOLD:
                self._hash.update(data)
                return
            self._queue = queue.Queue(maxsize=_DEPTH)
            self._thread = threading.Thread(
                target=self._run, args=(self._queue,), daemon=True
            )
            self._thread.start()
        self._queue.put(data)

    def _run(self, chunks: queue.Queue[bytes | None]) -> None:
        while (chunk := chunks.get()) is not None:
            self._hash.update(chunk)

    def close(self) -> None:
        """Stop the helper after it has hashed everything queued (idempotent)."""
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join()
        self._queue, self._thread = None, None

    def hexdigest(self) -> str:
        """The digest of everything passed to :meth:`update`."""
        self.close()
        return self._hash.hexdigest()
