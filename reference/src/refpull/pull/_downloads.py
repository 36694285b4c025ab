"""Layer downloads that run ahead of the unpacker (behaviors.md PULL-002/003, Δ1.6).

containerd 1.6.20's unpacker starts the fetches of the layers it needs, bounded by
its own semaphore of ``max_concurrent_downloads``, and applies each layer as soon as
that layer's blob is in the content store (``unpacker.go``). :class:`Downloads` is
that schedule for the reference: the same blobs are requested, in layer order, with
the same concurrency bound; only the waiting moves from "all downloads" to "this
layer's download".

Errors keep the reference's determinism: whatever the unpacker hits, the error a pull
reports is the first failed download in layer order when there is one (as when every
download finished before unpacking), else the unpacker's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from refpull.content.manifests import Descriptor

__all__ = ["Downloads"]


class Downloads:
    """Background downloads of *blobs*, at most *limit* at once, started in order."""

    def __init__(
        self,
        blobs: Sequence[Descriptor],
        fetch: Callable[[Descriptor], None],
        *,
        limit: int,
    ) -> None:
        """Start the downloads.

        Args:
            blobs: the layer descriptors to fetch, in layer order.
            fetch: downloads one descriptor into the content store (raises on failure).
            limit: the most downloads running at once (>= 1).
        """
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(limit, len(blobs))))
        self._futures: list[Future[None]] = [
            self._pool.submit(fetch, desc) for desc in blobs
        ]
        self._by_digest: dict[str, Future[None]] = {}
        for desc, future in zip(blobs, self._futures, strict=True):
            self._by_digest.setdefault(desc.digest, future)

    def wait(self, desc: Descriptor) -> bool:
        """Wait for the download of *desc*.

        Returns:
            False when *desc* is not one of the scheduled blobs, else True once its
            blob is committed.

        Raises:
            PullError: that download failed.
        """
        future = self._by_digest.get(desc.digest)
        if future is None:
            return False
        future.result()
        return True

    def raise_first_error(self) -> None:
        """Wait for every download; raise the first failure in layer order, if any."""
        for future in self._futures:
            error = future.exception()
            if error is not None:
                raise error

    def close(self) -> None:
        """Wait for the downloads still running and release the threads."""
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Downloads:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
