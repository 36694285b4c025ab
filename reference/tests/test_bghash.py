"""The diffID hash computed on a helper thread equals hashlib's, chunk order kept."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from refpull.unpack._bghash import BackgroundSHA256

_K = 1024


@pytest.mark.parametrize(
    "sizes",
    [
        pytest.param([], id="nothing"),
        pytest.param([10, 20, 30], id="small-only-inline"),
        pytest.param([64 * _K, 1024 * _K, 5, 1024 * _K, 3], id="small-then-large"),
        pytest.param([1024 * _K] * 20, id="more-chunks-than-the-queue-holds"),
    ],
)
def test_background_hash_equals_hashlib(sizes: list[int]) -> None:
    chunks = [os.urandom(n) for n in sizes]
    ours = BackgroundSHA256()
    for chunk in chunks:
        ours.update(chunk)
    assert ours.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()


def test_close_stops_the_helper_and_is_idempotent() -> None:
    ours = BackgroundSHA256()
    before = threading.active_count()
    chunk = os.urandom(512 * _K)
    ours.update(chunk)
    assert threading.active_count() == before + 1
    ours.close()
    ours.close()
    assert threading.active_count() == before
    ours.update(b"tail")  # after close: hashed inline, still in order
    assert ours.hexdigest() == hashlib.sha256(chunk + b"tail").hexdigest()
