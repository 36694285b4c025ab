"""The image metadata store: containerd's ``images`` records, persisted in SQLite.

A record maps a *name* (``sha256:<config hex>``, a repo tag, a repo digest, or any name
another client chose) to a target descriptor and a label map, as containerd's
``metadata/images.go`` does. The semantics the CRI plugin relies on are kept:

* ``create`` fails with :class:`~refpull.errors.AlreadyExists` when the name exists
  (``image "<name>": already exists``);
* ``update(image, *field_paths)`` fails with :class:`~refpull.errors.NotFoundInStore`
  when it does not; field paths are ``target``, ``labels`` and ``labels.<key>``; no field
  path replaces target *and* the whole label map (behaviors.md PULL-011);
* ``get``/``delete`` of an unknown name fail with ``NotFoundInStore``.

Records live in ``<root>/metadata.db`` (WAL journal, ``synchronous=FULL``, one
transaction per call), so a crash never loses or half-writes a committed record
(upstream-issues F-29). One connection is shared by all threads behind a lock.

:class:`InterleavingStore` wraps a store and runs test hooks at fixed points, so the race
the seed documents on ``createImageReference`` (the record deleted between Create's
AlreadyExists and the Update) is reproduced deterministically (F-28).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from refpull.content.manifests import Descriptor, Platform
from refpull.digest import Digest, DigestError
from refpull.errors import AlreadyExists, NotFoundInStore, StoreError
from refpull.gocompat.gourl import go_quote

__all__ = [
    "HOOK_POINTS",
    "MANAGED_LABEL_KEY",
    "MANAGED_LABEL_VALUE",
    "Image",
    "ImageRecords",
    "ImageStore",
    "InterleavingStore",
    "InvalidImage",
]

# cri@ab6701bd pkg/server/service.go imageLabelKey / imageLabelValue.
MANAGED_LABEL_KEY = "io.cri-containerd.image"
MANAGED_LABEL_VALUE = "managed"

#: Where :class:`InterleavingStore` can run a hook (each receives the record name).
HOOK_POINTS = (
    "create:before",
    "create:exists",
    "update:before",
    "get:before",
    "delete:before",
)


class InvalidImage(StoreError):
    """A record or field path containerd would refuse (``…: invalid argument``)."""


@dataclass(frozen=True, kw_only=True)
class Image:
    """One image record (containerd ``images.Image``).

    ``created_at``/``updated_at`` are set by the store; values passed in are ignored.
    """

    name: str
    target: Descriptor
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        # Frozen all the way down: a record handed out can never be changed in place.
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))

    @property
    def managed(self) -> bool:
        """True when the record carries ``io.cri-containerd.image=managed``."""
        return self.labels.get(MANAGED_LABEL_KEY) == MANAGED_LABEL_VALUE


class ImageRecords(Protocol):
    """What the CRI code needs from a metadata store (the store or a wrapper)."""

    def create(self, image: Image) -> Image: ...
    def update(self, image: Image, *field_paths: str) -> Image: ...
    def get(self, name: str) -> Image: ...
    def delete(self, name: str) -> None: ...
    def list(self) -> list[Image]: ...


def _not_found(name: str) -> NotFoundInStore:
    # containerd metadata/images.go: errors.Wrapf(errdefs.ErrNotFound, "image %q", name)
    return NotFoundInStore(f"image {go_quote(name)}: not found", name=name)


def _validate(image: Image) -> None:
    # containerd metadata/images.go validateImage.
    if not image.name:
        raise InvalidImage("image name must not be empty: invalid argument", name="")
    try:
        Digest.parse(image.target.digest)
    except DigestError as exc:
        raise InvalidImage(
            f"Target.Digest {go_quote(image.target.digest)} invalid: {exc}: "
            "invalid argument",
            name=image.name,
        ) from exc


def _descriptor_json(desc: Descriptor) -> str:
    return json.dumps(desc.to_json(), sort_keys=True)


def _descriptor_from(text: str) -> Descriptor:
    raw: dict[str, Any] = json.loads(text)
    plat = raw.get("platform")
    platform = None
    if plat is not None:
        platform = Platform(
            os=plat["os"],
            architecture=plat["architecture"],
            variant=plat.get("variant"),
            os_version=plat.get("os.version"),
            os_features=tuple(plat.get("os.features", ())),
        )
    return Descriptor(
        media_type=raw.get("mediaType", ""),
        digest=raw["digest"],
        size=raw["size"],
        urls=tuple(raw.get("urls", ())),
        platform=platform,
        annotations=tuple(sorted(raw.get("annotations", {}).items())),
    )


def _now() -> datetime:
    return datetime.now(UTC)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    name TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    labels TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
"""


class ImageStore:
    """Image records in ``<root>/metadata.db``; safe to share between threads."""

    def __init__(self, root: Path) -> None:
        """Open (or create) the store.

        Args:
            root: the directory holding ``metadata.db`` (created when missing).
        """
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / "metadata.db"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before the call returns (kill -9 loses nothing).
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def _row(self, name: str) -> Image | None:
        row = self._db.execute(
            "SELECT name, target, labels, created_at, updated_at FROM images"
            " WHERE name = ?",
            (name,),
        ).fetchone()
        return None if row is None else _image_from_row(row)

    def _write(self, image: Image, *, insert: bool) -> None:
        assert image.created_at is not None
        assert image.updated_at is not None
        values = (
            _descriptor_json(image.target),
            json.dumps(dict(image.labels), sort_keys=True),
            image.created_at.isoformat(),
            image.updated_at.isoformat(),
            image.name,
        )
        if insert:
            self._db.execute(
                "INSERT INTO images (target, labels, created_at, updated_at, name)"
                " VALUES (?, ?, ?, ?, ?)",
                values,
            )
        else:
            self._db.execute(
                "UPDATE images SET target = ?, labels = ?, created_at = ?,"
                " updated_at = ? WHERE name = ?",
                values,
            )

    def create(self, image: Image) -> Image:
        """Create a record.

        Args:
            image: the record; its timestamps are set to now.

        Returns:
            The stored record.

        Raises:
            AlreadyExists: ``image "<name>": already exists``.
            InvalidImage: empty name or invalid target digest.
        """
        _validate(image)
        now = _now()
        stored = replace(image, created_at=now, updated_at=now)
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            if self._row(image.name) is not None:
                raise AlreadyExists(
                    f"image {go_quote(image.name)}: already exists", name=image.name
                )
            self._write(stored, insert=True)
        return stored

    def update(self, image: Image, *field_paths: str) -> Image:
        """Update a record (containerd ``images.Store.Update``).

        Args:
            image: the new values; ``image.name`` picks the record.
            field_paths: ``target``, ``labels``, ``labels.<key>`` (a key missing from
                ``image.labels`` is set to ``""``, as Go's map read gives). None:
                replace target and the whole label map (PULL-011).

        Returns:
            The stored record.

        Raises:
            NotFoundInStore: ``image "<name>": not found``.
            InvalidImage: an unknown field path, or an invalid target.
        """
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            current = self._row(image.name)
            if current is None:
                raise _not_found(image.name)
            updated = _apply_paths(current, image, field_paths)
            _validate(updated)
            updated = replace(updated, updated_at=_now())
            self._write(updated, insert=False)
        return updated

    def get(self, name: str) -> Image:
        """Return the record *name*. Raises NotFoundInStore when absent."""
        with self._lock:
            image = self._row(name)
        if image is None:
            raise _not_found(name)
        return image

    def delete(self, name: str) -> None:
        """Delete the record *name*. Raises NotFoundInStore when absent."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            deleted = self._db.execute("DELETE FROM images WHERE name = ?", (name,))
            if deleted.rowcount == 0:
                raise _not_found(name)

    def list(self) -> list[Image]:
        """Every record, sorted by name."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, target, labels, created_at, updated_at FROM images"
                " ORDER BY name"
            ).fetchall()
        return [_image_from_row(row) for row in rows]


def _image_from_row(row: tuple[str, str, str, str, str]) -> Image:
    name, target, labels, created, updated = row
    return Image(
        name=name,
        target=_descriptor_from(target),
        labels=json.loads(labels),
        created_at=datetime.fromisoformat(created),
        updated_at=datetime.fromisoformat(updated),
    )


def _apply_paths(current: Image, new: Image, paths: tuple[str, ...]) -> Image:
    # containerd metadata/images.go Update: no paths = the whole record is replaced.
    if not paths:
        return replace(new, created_at=current.created_at)
    target, labels = current.target, dict(current.labels)
    for path in paths:
        if path.startswith("labels."):
            key = path.removeprefix("labels.")
            labels[key] = new.labels.get(key, "")
        elif path == "labels":
            labels = dict(new.labels)
        elif path == "target":
            target = new.target
        else:
            raise InvalidImage(
                f"cannot update {go_quote(path)} field on image "
                f"{go_quote(new.name)}: invalid argument",
                name=new.name,
            )
    return replace(current, target=target, labels=labels)


class InterleavingStore:
    """A store wrapper that runs hooks at fixed points, to make races deterministic.

    ``hooks`` maps a point of :data:`HOOK_POINTS` to a callable receiving the record
    name. ``create:exists`` runs after the wrapped ``create`` failed with
    AlreadyExists and before that error reaches the caller: deleting the record there
    reproduces the seed's documented create/update race.
    """

    def __init__(
        self, store: ImageRecords, hooks: Mapping[str, Callable[[str], None]]
    ) -> None:
        """Args:
        store: the wrapped store.
        hooks: point name → hook.

        Raises:
            ValueError: a point name not in :data:`HOOK_POINTS`.
        """
        unknown = set(hooks) - set(HOOK_POINTS)
        if unknown:
            raise ValueError(f"unknown hook points: {sorted(unknown)}")
        self.store = store
        self.hooks = dict(hooks)

    def _run(self, point: str, name: str) -> None:
        hook = self.hooks.get(point)
        if hook is not None:
            hook(name)

    def create(self, image: Image) -> Image:
        """``create`` of the wrapped store, with ``create:*`` hooks."""
        self._run("create:before", image.name)
        try:
            return self.store.create(image)
        except AlreadyExists:
            self._run("create:exists", image.name)
            raise

    def update(self, image: Image, *field_paths: str) -> Image:
        """``update`` of the wrapped store, after the ``update:before`` hook."""
        self._run("update:before", image.name)
        return self.store.update(image, *field_paths)

    def get(self, name: str) -> Image:
        """``get`` of the wrapped store, after the ``get:before`` hook."""
        self._run("get:before", name)
        return self.store.get(name)

    def delete(self, name: str) -> None:
        """``delete`` of the wrapped store, after the ``delete:before`` hook."""
        self._run("delete:before", name)
        self.store.delete(name)

    def list(self) -> list[Image]:
        """``list`` of the wrapped store."""
        return self.store.list()
