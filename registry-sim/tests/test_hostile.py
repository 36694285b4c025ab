"""Hostile layer builders: entries stay in order, bombs inflate as announced."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import pytest
import zstandard

from registry_sim.hostile import MIB, Entry, bomb_layer, index_chain, ordered_tar
from registry_sim.images import Image, Layer


def test_ordered_tar_keeps_order_and_duplicates() -> None:
    data = ordered_tar(
        [
            Entry("a", "dir"),
            Entry("a/x", "file", b"1"),
            Entry("a", "symlink", link="/t"),
        ]
    )
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = [(m.name, m.type) for m in tar]
    assert members == [
        ("a", tarfile.DIRTYPE),
        ("a/x", tarfile.REGTYPE),
        ("a", tarfile.SYMTYPE),
    ]


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
@pytest.mark.parametrize("files", [1, 4])
def test_a_bomb_inflates_to_its_size_with_the_announced_diff_id(
    compression: str, files: int
) -> None:
    layer = bomb_layer(16 * MIB, compression, files)
    blob = layer.read_bytes()
    assert layer.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    if compression == "gzip":
        raw = gzip.decompress(blob)
    else:
        reader = zstandard.ZstdDecompressor().stream_reader(
            io.BytesIO(blob), read_across_frames=True
        )
        raw = reader.read()
    assert layer.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert len(blob) * 100 < len(raw)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        assert sum(m.size for m in tar) == 16 * MIB


def test_an_index_chain_nests_to_its_depth() -> None:
    base = Image.schema2([Layer.from_files({"f": "x"})], nonce="chain")
    chain = index_chain(base, 3)
    assert len(chain.manifests) == len(base.manifests) + 3
    top = json.loads(chain.manifests[-1][1])
    below = hashlib.sha256(chain.manifests[-2][1]).hexdigest()
    assert top["manifests"][0]["digest"] == f"sha256:{below}"
    assert (
        chain.digest == "sha256:" + hashlib.sha256(chain.manifests[-1][1]).hexdigest()
    )
