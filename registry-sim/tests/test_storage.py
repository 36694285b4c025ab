"""Storage: content-addressed blobs on disk, manifests, tags, uploads."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry_sim.storage import (
    DigestMismatch,
    Storage,
    UnsupportedDigest,
    UploadOutOfOrder,
    UploadUnknown,
)

MT_OCI = "application/vnd.oci.image.manifest.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def storage() -> Iterator[Storage]:
    with Storage() as store:
        yield store


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda tmp: b"payload", id="bytes"),
        pytest.param(lambda tmp: io.BytesIO(b"payload"), id="stream"),
        pytest.param(
            lambda tmp: (tmp / "f").write_bytes(b"payload") and tmp / "f", id="path"
        ),
    ],
)
def test_put_blob_stores_content_under_its_sha256(
    storage: Storage, tmp_path: Path, make: object
) -> None:
    assert callable(make)
    digest = storage.put_blob("a/b", make(tmp_path))
    assert digest == sha(b"payload")
    path = storage.blob_path(digest)
    assert path is not None
    assert path.read_bytes() == b"payload"
    assert path.is_relative_to(storage.root)
    assert storage.blob_size(digest) == 7


def test_blobs_are_linked_per_repository(storage: Storage) -> None:
    digest = storage.put_blob("one", b"x")
    assert storage.has_blob("one", digest)
    assert not storage.has_blob("two", digest)
    assert storage.blob_path(digest) is not None  # content is global


def test_large_stream_is_copied_in_chunks(storage: Storage) -> None:
    data = bytes(range(256)) * 20_000  # 5 MB, several chunks
    digest = storage.put_blob("big", io.BytesIO(data))
    assert digest == sha(data)
    assert storage.blob_size(digest) == len(data)


def test_explicit_digest_is_trusted_for_broken_fixtures(storage: Storage) -> None:
    wrong = sha(b"what the manifest says")
    assert storage.put_blob("r", b"other bytes", digest=wrong) == wrong
    path = storage.blob_path(wrong)
    assert path is not None
    assert path.read_bytes() == b"other bytes"


def test_malformed_explicit_digest_is_refused(storage: Storage) -> None:
    with pytest.raises(UnsupportedDigest):
        storage.put_blob("r", b"x", digest="md5:abc")


def test_mount_links_a_blob_into_another_repository(storage: Storage) -> None:
    digest = storage.put_blob("src", b"layer")
    assert storage.mount_blob("src", "dst", digest)
    assert storage.has_blob("dst", digest)
    assert not storage.mount_blob("nowhere", "dst2", digest)


def test_blob_file_is_removed_when_no_repository_links_it(storage: Storage) -> None:
    digest = storage.put_blob("one", b"shared")
    storage.mount_blob("one", "two", digest)
    path = storage.blob_path(digest)
    assert path is not None
    assert storage.delete_blob("one", digest)
    assert path.exists()
    assert storage.delete_blob("two", digest)
    assert not path.exists()
    assert storage.blob_path(digest) is None
    assert not storage.delete_blob("two", digest)


def test_manifest_put_by_tag_stores_by_digest_and_tags(storage: Storage) -> None:
    digest = storage.put_manifest("r", "v1", b"{}", MT_OCI)
    assert digest == sha(b"{}")
    assert storage.get_manifest("r", "v1") == (MT_OCI, b"{}", digest)
    assert storage.get_manifest("r", digest) == (MT_OCI, b"{}", digest)
    assert storage.tags("r") == ["v1"]
    assert storage.has_blob("r", digest)  # manifests are blobs too


def test_manifest_put_by_digest_uses_the_digest_as_given(storage: Storage) -> None:
    claimed = sha(b"not these bytes")
    assert storage.put_manifest("r", claimed, b"{}", MT_OCI) == claimed
    assert storage.get_manifest("r", claimed) == (MT_OCI, b"{}", claimed)
    assert storage.tags("r") == []


def test_tags_are_sorted_and_retaggable(storage: Storage) -> None:
    first = storage.put_manifest("r", "b", b"1", MT_OCI)
    second = storage.put_manifest("r", "a", b"2", MT_OCI)
    assert storage.tags("r") == ["a", "b"]
    assert storage.tag("r", "b", second)
    assert storage.resolve("r", "b") == second
    assert storage.resolve("r", first) == first
    assert not storage.tag("r", "c", sha(b"unknown"))


def test_delete_by_tag_untags_and_by_digest_removes_all_tags(storage: Storage) -> None:
    digest = storage.put_manifest("r", "one", b"{}", MT_OCI)
    storage.tag("r", "two", digest)
    assert storage.delete_manifest("r", "one")
    assert storage.get_manifest("r", digest) is not None
    assert storage.delete_manifest("r", digest)
    assert storage.tags("r") == []
    assert storage.get_manifest("r", "two") is None
    assert not storage.delete_manifest("r", digest)


def test_repositories_are_listed_in_order(storage: Storage) -> None:
    storage.put_blob("zeta", b"1")
    storage.put_manifest("alpha/beta", "t", b"{}", MT_OCI)
    assert storage.repositories() == ["alpha/beta", "zeta"]
    assert storage.has_repository("zeta")
    assert not storage.has_repository("gamma")


def test_chunked_upload_is_verified_and_stored(storage: Storage) -> None:
    session = storage.start_upload("r")
    assert storage.append_upload(session, b"abc", 0) == 3
    assert storage.append_upload(session, b"def") == 6
    assert storage.upload_repo(session) == "r"
    assert storage.finish_upload(session, sha(b"abcdef")) == sha(b"abcdef")
    assert storage.has_blob("r", sha(b"abcdef"))
    with pytest.raises(UploadUnknown):
        storage.upload_size(session)


def test_sha512_uploads_are_verified_with_sha512(storage: Storage) -> None:
    digest = "sha512:" + hashlib.sha512(b"data").hexdigest()
    session = storage.start_upload("r")
    storage.append_upload(session, b"data")
    assert storage.finish_upload(session, digest) == digest
    assert storage.has_blob("r", digest)


def test_out_of_order_chunk_is_refused(storage: Storage) -> None:
    session = storage.start_upload("r")
    storage.append_upload(session, b"abc")
    with pytest.raises(UploadOutOfOrder) as info:
        storage.append_upload(session, b"x", 5)
    assert (info.value.expected, info.value.got) == (3, 5)
    assert storage.upload_size(session) == 3


def test_mismatched_upload_is_refused_and_dropped(storage: Storage) -> None:
    session = storage.start_upload("r")
    storage.append_upload(session, b"abc")
    with pytest.raises(DigestMismatch) as info:
        storage.finish_upload(session, sha(b"xyz"))
    assert info.value.actual == sha(b"abc")
    assert not storage.has_blob("r", sha(b"abc"))
    with pytest.raises(UploadUnknown):
        storage.append_upload(session, b"more")


def test_unknown_upload_is_reported(storage: Storage) -> None:
    with pytest.raises(UploadUnknown):
        storage.append_upload("no-such-id", b"x")
    assert not storage.cancel_upload("no-such-id")


def test_reset_forgets_everything(storage: Storage) -> None:
    digest = storage.put_manifest("r", "t", b"{}", MT_OCI)
    session = storage.start_upload("r")
    storage.reset()
    assert storage.repositories() == []
    assert storage.blob_path(digest) is None
    with pytest.raises(UploadUnknown):
        storage.upload_size(session)
    assert storage.put_blob("r", b"again") == sha(b"again")


def test_close_removes_a_private_root_but_not_a_given_one(tmp_path: Path) -> None:
    private = Storage()
    private.put_blob("r", b"x")
    private.close()
    assert not private.root.exists()
    given = Storage(tmp_path / "store")
    given.put_blob("r", b"x")
    given.close()
    assert (tmp_path / "store").exists()


def test_concurrent_pushes_of_the_same_blob_agree(storage: Storage) -> None:
    data = b"same content" * 1000
    results: list[str] = []

    def push(index: int) -> None:
        results.append(storage.put_blob(f"repo{index}", data))

    threads = [threading.Thread(target=push, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [sha(data)] * 16
    path = storage.blob_path(sha(data))
    assert path is not None
    assert path.read_bytes() == data
    assert all(storage.has_blob(f"repo{i}", sha(data)) for i in range(16))
