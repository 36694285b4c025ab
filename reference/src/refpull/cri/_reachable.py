"""What the garbage collector must keep: everything reachable from an image record.

containerd's GC keeps every blob a record's target leads to (index → manifests →
config and layers) and every chain snapshot below an image's top layer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from refpull.content import manifests as mf
from refpull.content.manifests import Descriptor
from refpull.content.store import ContentStore
from refpull.errors import RefpullError
from refpull.unpack.snapshots import chain_ids

__all__ = ["reachable"]


def reachable(
    targets: Iterable[Descriptor], content: ContentStore
) -> tuple[set[str], set[str]]:
    """Blob digests and snapshot chain IDs reachable from *targets*."""
    blobs: set[str] = set()
    chains: set[str] = set()
    for target in targets:
        _mark(target, content, blobs, chains)
    return blobs, chains


def _mark(
    desc: Descriptor, content: ContentStore, blobs: set[str], chains: set[str]
) -> None:
    blobs.add(desc.digest)
    if not content.has(desc.digest):
        return
    try:
        doc = mf.parse_manifest(
            content.read_bytes(desc.digest), desc.media_type, digest=desc.digest
        )
    except RefpullError:
        return
    if isinstance(doc, mf.ImageIndex):
        for child in doc.manifests:
            _mark(child, content, blobs, chains)
        return
    blobs.add(doc.config.digest)
    blobs.update(layer.digest for layer in doc.layers)
    with contextlib.suppress(RefpullError):
        config = mf.parse_image_config(content.read_bytes(doc.config.digest))
        chains.update(chain_ids(config.diff_ids))
