"""The content store: verified atomic commits, resume, concurrent ingests (FETCH-005/008)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from refpull.content.store import ContentStore
from refpull.digest import DigestError, sha256_digest
from refpull.errors import (
    DigestMismatch,
    ManifestTooLarge,
    NotFoundInStore,
    SizeMismatch,
)

DATA = b"layer bytes " * 100
DIGEST = sha256_digest(DATA)


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "content")


def put(store: ContentStore, data: bytes = DATA, ref: str = "layer-x") -> None:
    with store.ingest(
        ref, expected_digest=sha256_digest(data), expected_size=len(data)
    ) as ing:
        ing.write(data)
        ing.commit()


def write_chunks(
    store: ContentStore, chunks: list[bytes], *, commit: bool = True
) -> None:
    with store.ingest(
        "layer-x", expected_digest=DIGEST, expected_size=len(DATA)
    ) as ing:
        for chunk in chunks:
            ing.write(chunk)
        if commit:
            ing.commit()


@pytest.mark.behavior("FETCH-008")
def test_committed_blob_is_readable_by_digest(store: ContentStore) -> None:
    put(store)
    assert store.has(DIGEST)
    assert store.size(DIGEST) == len(DATA)
    assert store.read_bytes(DIGEST) == DATA
    with store.open(DIGEST) as f:
        assert f.read() == DATA
    assert store.path(DIGEST) == store.root / "blobs" / "sha256" / DIGEST.split(":")[1]
    assert store.list() == [DIGEST]
    assert list((store.root / "ingest").iterdir()) == []


@pytest.mark.behavior("FETCH-008")
def test_digest_mismatch_leaves_no_blob_and_no_ingest(store: ContentStore) -> None:
    with pytest.raises(DigestMismatch) as info:
        write_chunks(store, [DATA[:-1] + b"!"])
    assert "unexpected commit digest" in str(info.value)
    assert str(info.value).endswith(f"expected {DIGEST}: failed precondition")
    assert not store.has(DIGEST)
    assert list((store.root / "ingest").iterdir()) == []


@pytest.mark.behavior("FETCH-008")
def test_short_content_fails_with_size_mismatch(store: ContentStore) -> None:
    with pytest.raises(SizeMismatch) as info:
        write_chunks(store, [DATA[:10]])
    assert str(info.value) == (
        f'failed commit on ref "layer-x": unexpected commit size 10, expected {len(DATA)}: '
        "failed precondition"
    )
    assert not store.has(DIGEST)


@pytest.mark.behavior("FETCH-008")
def test_oversized_content_is_refused_at_the_first_extra_byte(
    store: ContentStore,
) -> None:
    with pytest.raises(SizeMismatch):
        write_chunks(store, [DATA, b"x"], commit=False)
    assert not store.has(DIGEST)
    assert list((store.root / "ingest").iterdir()) == []


def test_unknown_size_is_verified_by_digest_only(store: ContentStore) -> None:
    with store.ingest("layer-x", expected_digest=DIGEST, expected_size=None) as ing:
        ing.write(DATA)
        ing.commit()
    assert store.has(DIGEST)


@pytest.mark.behavior("FETCH-008")
def test_present_content_is_not_written_again(store: ContentStore) -> None:
    put(store)
    mtime = store.path(DIGEST).stat().st_mtime_ns
    with store.ingest(
        "layer-y", expected_digest=DIGEST, expected_size=len(DATA)
    ) as ing:
        assert ing.already_exists
        ing.write(b"ignored")
        ing.commit()
    assert store.path(DIGEST).stat().st_mtime_ns == mtime
    assert store.read_bytes(DIGEST) == DATA


def test_leaving_without_commit_removes_the_ingest(store: ContentStore) -> None:
    with store.ingest(
        "layer-x", expected_digest=DIGEST, expected_size=len(DATA)
    ) as ing:
        ing.write(DATA[:5])
    assert list((store.root / "ingest").iterdir()) == []
    assert not store.has(DIGEST)


@pytest.mark.behavior("FETCH-005")
def test_kept_partial_is_resumed_at_its_offset(store: ContentStore) -> None:
    with store.ingest(
        "layer-x", expected_digest=DIGEST, expected_size=len(DATA), keep_partial=True
    ) as ing:
        ing.write(DATA[:100])
    with store.ingest(
        "layer-x", expected_digest=DIGEST, expected_size=len(DATA), keep_partial=True
    ) as ing:
        assert ing.resume_offset() == 100
        ing.write(DATA[100:])
        ing.commit()
    assert store.read_bytes(DIGEST) == DATA


@pytest.mark.behavior("FETCH-005")
def test_partial_of_other_content_is_not_resumed(store: ContentStore) -> None:
    other = sha256_digest(b"other")
    with store.ingest(
        "layer-x", expected_digest=other, expected_size=5, keep_partial=True
    ) as i:
        i.write(b"oth")
    with store.ingest(
        "layer-x", expected_digest=DIGEST, expected_size=len(DATA), keep_partial=True
    ) as ing:
        assert ing.resume_offset() == 0


def test_clean_ingests_removes_leftovers(store: ContentStore) -> None:
    with store.ingest(
        "a", expected_digest=DIGEST, expected_size=None, keep_partial=True
    ) as i:
        i.write(b"xx")
    assert len(store.clean_ingests()) == 1
    assert list((store.root / "ingest").iterdir()) == []


def test_concurrent_ingests_of_one_ref_are_serialised(store: ContentStore) -> None:
    results: list[bool] = []
    errors: list[BaseException] = []
    inside = threading.Event()

    def first() -> None:
        with store.ingest(
            "layer-x", expected_digest=DIGEST, expected_size=len(DATA)
        ) as ing:
            inside.set()
            time.sleep(0.2)
            ing.write(DATA)
            ing.commit()
            results.append(ing.already_exists)

    def second() -> None:
        inside.wait()
        try:
            with store.ingest(
                "layer-x", expected_digest=DIGEST, expected_size=len(DATA)
            ) as i:
                results.append(i.already_exists)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    assert results == [False, True]  # the second waited and found the blob committed


def test_lock_wait_times_out(tmp_path: Path) -> None:
    store = ContentStore(tmp_path, lock_timeout=0.05)
    with (
        store.ingest("r", expected_digest=DIGEST, expected_size=None),
        pytest.raises(TimeoutError),
        store.ingest("r", expected_digest=DIGEST, expected_size=None),
    ):
        pass


def test_missing_and_invalid_digests(store: ContentStore) -> None:
    with pytest.raises(NotFoundInStore, match=f"content digest {DIGEST}: not found"):
        store.read_bytes(DIGEST)
    with pytest.raises(DigestError):
        store.path("sha256:../../../etc/passwd")
    assert not store.has("sha256:../x")
    with pytest.raises(DigestError):
        store.ingest("r", expected_digest="md5:x", expected_size=None).__enter__()


def test_read_bytes_size_cap_and_delete(store: ContentStore) -> None:
    put(store)
    with pytest.raises(ManifestTooLarge):
        store.read_bytes(DIGEST, max_size=10)
    store.delete(DIGEST)
    assert not store.has(DIGEST)
    assert store.list() == []
