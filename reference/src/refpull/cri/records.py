"""What a pull writes into the metadata store, as the CRI plugin writes it.

* :func:`repo_digest_and_tag` — cri ``getRepoDigestAndTag`` (behaviors.md CRI-002);
* :func:`create_image_reference` — cri ``createImageReference`` (CRI-003, CRI-004);
* :func:`record_pulled_image` — the record containerd's ``client.Pull`` itself writes
  under the pulled name (PULL-006, PULL-011);
* :func:`update_image` — cri ``updateImage``: the event/restart path that makes records
  created by other clients managed and visible (STORE-009).

Errors are raised as :class:`RecordError` whose message carries the seed's wrapping
text and whose ``__cause__`` is the typed error underneath (Go ``errors.Wrap``).
"""

from __future__ import annotations

from typing import Protocol

from refpull.content.manifests import Descriptor
from refpull.cri.images import (
    MANAGED_LABEL_KEY,
    MANAGED_LABEL_VALUE,
    Image,
    ImageRecords,
)
from refpull.errors import AlreadyExists, NotFoundInStore, RefpullError
from refpull.gocompat.gourl import go_quote
from refpull.gocompat.imageref import ImageRef
from refpull.profiles import Profile

__all__ = [
    "RecordError",
    "StoreIndex",
    "create_image_reference",
    "record_pulled_image",
    "repo_digest_and_tag",
    "update_image",
]

_MANAGED = {MANAGED_LABEL_KEY: MANAGED_LABEL_VALUE}


class RecordError(RefpullError):
    """A record step failed; the message has the seed's wrappers, the cause the type."""


class StoreIndex(Protocol):
    """The part of the in-memory index :func:`update_image` drives."""

    def update(self, ref: str) -> None: ...
    def image_id_of(self, target: Descriptor) -> str: ...


def _wrap(message: str, exc: Exception) -> RecordError:
    error = RecordError(f"{message}: {exc}")
    error.__cause__ = exc
    return error


def repo_digest_and_tag(
    ref: ImageRef, target_digest: str, is_schema1: bool
) -> tuple[str, str]:
    """Derive the repo digest and repo tag of a pull (behaviors.md CRI-002).

    Args:
        ref: the normalized reference that was pulled (tag or digest, never both).
        target_digest: the image target's digest (index digest for multi-arch).
        is_schema1: the image was converted from schema1.

    Returns:
        ``(repo_digest, repo_tag)``; an empty string where there is none.
    """
    # cri@ab6701bd pkg/server/helpers.go getRepoDigestAndTag.
    repo_tag = str(ref) if ref.tag is not None and ref.digest is None else ""
    if ref.digest is not None:
        repo_digest = str(ref)
    elif not is_schema1:
        repo_digest = f"{ref.name}@{target_digest}"
    else:
        # "digest is not actual repo digest for schema1 image."
        repo_digest = ""
    return repo_digest, repo_tag


def create_image_reference(
    store: ImageRecords, name: str, target: Descriptor, profile: Profile
) -> None:
    """Create or update the managed record *name* → *target* (CRI-003, CRI-004).

    Args:
        store: the metadata store.
        name: the record name (image ID, repo tag or repo digest).
        target: the image target descriptor.
        profile: ``relabel_patches_only_cri_label`` picks the update's field paths.

    Raises:
        NotFoundInStore: the record vanished between Create and Update (the race
            the seed's comment documents, F-28).
        StoreError: any other store failure.
    """
    image = Image(name=name, target=target, labels=_MANAGED)
    try:
        store.create(image)
        return
    except AlreadyExists:
        # upstream-issues F-28: the containerd client's Create answers AlreadyExists
        # with an empty image, so the seed's "same target and managed label" shortcut
        # compares against nothing and never fires: every re-pull issues an Update.
        old: Image | None = None
    if (
        old is not None
        and old.target.digest == target.digest
        and old.labels.get(MANAGED_LABEL_KEY) == MANAGED_LABEL_VALUE
    ):
        return  # pragma: no cover - the dead branch, kept to mirror the seed
    if profile.relabel_patches_only_cri_label:
        # behaviors.md CRI-004 Δ1.6 (containerd PR #5945): other labels survive.
        store.update(image, "target", f"labels.{MANAGED_LABEL_KEY}")
    else:
        # behaviors.md CRI-004 seed ⚠BUG: the whole label map is replaced.
        store.update(image, "target", "labels")


def record_pulled_image(store: ImageRecords, name: str, target: Descriptor) -> Image:
    """Write the record containerd's ``client.Pull`` writes under the pulled name.

    Create, and on AlreadyExists update with no field paths, which replaces the
    target and the whole label map (behaviors.md PULL-011; upstream-issues F-28: the
    tag reference loses foreign labels on re-pull even in 1.6).

    Args:
        store: the metadata store.
        name: the normalized reference that was pulled.
        target: the image target.

    Returns:
        The stored record.
    """
    image = Image(name=name, target=target, labels=_MANAGED)
    try:
        return store.create(image)
    except AlreadyExists:
        return store.update(image)


def update_image(
    store: ImageRecords, index: StoreIndex, name: str, profile: Profile
) -> None:
    """Reconcile *name* with the metadata store, making a foreign record managed.

    This is cri ``updateImage`` (STORE-009): a record without the managed label first
    gets a ``sha256:<image id>`` record, then the label; a missing record is dropped
    from the index.

    Args:
        store: the metadata store.
        index: the in-memory index.
        name: the record name an event (or the start-up scan) named.
        profile: passed to :func:`create_image_reference` (CRI-004).

    Raises:
        RecordError: with the seed's wrapping (``get image id: …``, ``create image id
            reference "<id>": …``, ``update image store for "<r>": …``).
    """
    try:
        image: Image | None = store.get(name)
    except NotFoundInStore:
        image = None  # "continue updating the cache, so the image can be removed"
    except Exception as exc:
        raise _wrap("get image by reference", exc) from exc
    if image is not None and not image.managed:
        try:
            image_id = index.image_id_of(image.target)
        except Exception as exc:
            raise _wrap("get image id", exc) from exc
        try:
            create_image_reference(store, image_id, image.target, profile)
        except Exception as exc:
            raise _wrap(f"create image id reference {go_quote(image_id)}", exc) from exc
        _index_update(index, image_id)
        try:
            create_image_reference(store, name, image.target, profile)
        except Exception as exc:
            raise _wrap("create managed label", exc) from exc
    _index_update(index, name)


def _index_update(index: StoreIndex, name: str) -> None:
    try:
        index.update(name)
    except Exception as exc:
        raise _wrap(f"update image store for {go_quote(name)}", exc) from exc
