"""A failed one-shot pull leaves no partial download behind (PULL-015)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from refpull.content.store import ContentStore
from refpull.digest import sha256_digest

BLOB = b"x" * 4096
DIGEST = sha256_digest(BLOB)


def _partial(store: ContentStore, ref: str) -> None:
    with store.ingest(
        ref, expected_digest=DIGEST, expected_size=len(BLOB), keep_partial=True
    ) as ing:
        ing.write(BLOB[:1000])  # cut short: kept for a resume


@pytest.mark.behavior("PULL-015")
def test_partial_ingests_are_discarded(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    _partial(store, "layer-a")
    _partial(store, "layer-b")
    assert len(list((tmp_path / "ingest").iterdir())) == 2
    assert store.discard_partial_ingests() == 2
    assert list((tmp_path / "ingest").iterdir()) == []


@pytest.mark.behavior("PULL-015")
def test_an_ingest_in_progress_is_kept(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    _partial(store, "layer-a")
    started, release = threading.Event(), threading.Event()

    def writer() -> None:
        with store.ingest(
            "layer-b",
            expected_digest=DIGEST,
            expected_size=len(BLOB),
            keep_partial=True,
        ) as ing:
            ing.write(BLOB[:10])
            started.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert started.wait(10)
        assert store.discard_partial_ingests() == 1  # only layer-a's
        assert len(list((tmp_path / "ingest").iterdir())) == 1
    finally:
        release.set()
        thread.join()
