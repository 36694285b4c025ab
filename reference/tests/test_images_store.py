"""The image metadata store: containerd's record semantics, persisted in SQLite."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from refpull.content.manifests import Descriptor, Platform
from refpull.cri.images import (
    MANAGED_LABEL_KEY,
    Image,
    ImageStore,
    InterleavingStore,
    InvalidImage,
)
from refpull.errors import AlreadyExists, NotFoundInStore

MT = "application/vnd.docker.distribution.manifest.v2+json"
A = Descriptor(media_type=MT, digest="sha256:" + "a" * 64, size=10)
B = Descriptor(media_type=MT, digest="sha256:" + "b" * 64, size=20)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImageStore]:
    s = ImageStore(tmp_path)
    yield s
    s.close()


def test_create_then_get_returns_the_record_with_timestamps(store: ImageStore) -> None:
    created = store.create(Image(name="x", target=A, labels={"k": "v"}))
    got = store.get("x")
    assert got == created
    assert got.target == A
    assert dict(got.labels) == {"k": "v"}
    assert got.created_at is not None
    assert got.created_at == got.updated_at


def test_create_of_an_existing_name_fails_with_already_exists(
    store: ImageStore,
) -> None:
    store.create(Image(name="x", target=A))
    with pytest.raises(AlreadyExists, match=r'^image "x": already exists$'):
        store.create(Image(name="x", target=B))
    assert store.get("x").target == A


@pytest.mark.parametrize(
    ("op", "args"),
    [
        pytest.param("get", ("gone",), id="get"),
        pytest.param("delete", ("gone",), id="delete"),
        pytest.param("update", (Image(name="gone", target=A),), id="update"),
    ],
)
def test_unknown_names_fail_with_not_found(
    store: ImageStore, op: str, args: tuple[object, ...]
) -> None:
    with pytest.raises(NotFoundInStore, match=r'^image "gone": not found$'):
        getattr(store, op)(*args)


@pytest.mark.behavior("PULL-011")
def test_update_without_field_paths_replaces_target_and_every_label(
    store: ImageStore,
) -> None:
    first = store.create(Image(name="x", target=A, labels={"team": "x", "a": "1"}))
    updated = store.update(
        Image(name="x", target=B, labels={MANAGED_LABEL_KEY: "managed"})
    )
    assert updated.target == B
    assert dict(updated.labels) == {MANAGED_LABEL_KEY: "managed"}
    assert updated.created_at == first.created_at
    assert store.get("x") == updated


@pytest.mark.parametrize(
    ("paths", "target", "labels"),
    [
        pytest.param(("target",), B, {"team": "x"}, id="target-only"),
        pytest.param(("labels",), A, {"new": "1"}, id="labels-replaced"),
        pytest.param(("labels.new",), A, {"team": "x", "new": "1"}, id="one-label"),
        pytest.param(
            ("labels.team",), A, {"team": ""}, id="absent-label-becomes-empty"
        ),
        pytest.param(("target", "labels.new"), B, {"team": "x", "new": "1"}, id="both"),
    ],
)
def test_update_with_field_paths_changes_only_those_fields(
    store: ImageStore,
    paths: tuple[str, ...],
    target: Descriptor,
    labels: dict[str, str],
) -> None:
    store.create(Image(name="x", target=A, labels={"team": "x"}))
    store.update(Image(name="x", target=B, labels={"new": "1"}), *paths)
    got = store.get("x")
    assert got.target == target
    assert dict(got.labels) == labels


def test_update_with_an_unknown_field_path_is_an_invalid_argument(
    store: ImageStore,
) -> None:
    store.create(Image(name="x", target=A))
    with pytest.raises(InvalidImage, match='cannot update "size" field'):
        store.update(Image(name="x", target=B), "size")
    assert store.get("x").target == A  # the transaction was rolled back


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(Image(name="", target=A), id="empty-name"),
        pytest.param(
            Image(
                name="x", target=Descriptor(media_type=MT, digest="sha256:a", size=1)
            ),
            id="bad-digest",
        ),
    ],
)
def test_invalid_records_are_refused(store: ImageStore, image: Image) -> None:
    with pytest.raises(InvalidImage, match=r"invalid argument$"):
        store.create(image)


def test_records_survive_reopening_and_list_is_sorted(tmp_path: Path) -> None:
    platform = Platform(os="linux", architecture="arm64", variant="v8")
    target = Descriptor(
        media_type=MT,
        digest=B.digest,
        size=5,
        urls=("http://u",),
        platform=platform,
        annotations=(("k", "v"),),
    )
    first = ImageStore(tmp_path)
    first.create(Image(name="b", target=target))
    first.create(Image(name="a", target=A))
    first.close()
    second = ImageStore(tmp_path)
    try:
        assert [i.name for i in second.list()] == ["a", "b"]
        assert second.get("b").target == target
    finally:
        second.close()


def test_concurrent_creates_of_one_name_let_exactly_one_win(store: ImageStore) -> None:
    results: list[str] = []

    def create(n: int) -> None:
        try:
            store.create(Image(name="same", target=A, labels={"n": str(n)}))
            results.append("ok")
        except AlreadyExists:
            results.append("exists")

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["exists"] * 7 + ["ok"]


def test_interleaving_store_runs_the_hook_between_already_exists_and_the_caller(
    store: ImageStore,
) -> None:
    seen: list[str] = []

    def vanish(name: str) -> None:
        seen.append(name)
        store.delete(name)

    wrapped = InterleavingStore(store, {"create:exists": vanish})
    wrapped.create(Image(name="x", target=A))
    assert seen == []
    with pytest.raises(AlreadyExists):
        wrapped.create(Image(name="x", target=A))
    assert seen == ["x"]
    with pytest.raises(NotFoundInStore):
        wrapped.update(Image(name="x", target=B))


def test_interleaving_store_rejects_unknown_hook_points(store: ImageStore) -> None:
    with pytest.raises(ValueError, match="unknown hook points"):
        InterleavingStore(store, {"create:later": lambda name: None})
