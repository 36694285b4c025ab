"""A layer that inflates past its bound is refused before it fills the disk (PULL-014)."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from refpull import mediatypes as mt
from refpull.content.manifests import Descriptor
from refpull.content.store import ContentStore
from refpull.digest import sha256_digest
from refpull.limits import LimitExceeded, Limits
from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.unpack.snapshots import SnapshotStore, apply_layers

MIB = 1 << 20
#: Small bounds so the tests inflate a few MiB, not GiB.
TIGHT = Limits(max_layer_size=64 * MIB, max_layer_ratio=100, ratio_floor=4 * MIB)


def zero_file_tar(size: int, *, files: int = 1) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for i in range(files):
            info = tarfile.TarInfo(f"zeros-{i}")
            info.size = size // files
            tar.addfile(info, io.BytesIO(bytes(info.size)))
    return buf.getvalue()


def sparse_tar(size: int) -> bytes:
    """A GNU sparse member (old format, type 'S') claiming *size* bytes with none stored."""
    info = tarfile.TarInfo("sparse")
    info.type = tarfile.GNUTYPE_SPARSE
    info.size = 0
    header = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
    # realsize at offset 483 (12 bytes octal); no sparse entries = one hole.
    header[483:495] = f"{size:011o}\0".encode()
    header[148:156] = b"        "
    header[148:156] = f"{sum(header):06o}\0 ".encode()
    return bytes(header) + bytes(1024)


class Store:
    def __init__(self, root: Path) -> None:
        self.content = ContentStore(root / "content")
        self.snapshots = SnapshotStore(root / "snap")

    def apply(
        self, tar: bytes, blob: bytes, limits: Limits, profile: Profile = CONTAINERD_16
    ) -> str:
        digest = sha256_digest(blob)
        with self.content.ingest(
            "l-" + digest, expected_digest=digest, expected_size=len(blob)
        ) as ing:
            ing.write(blob)
            ing.commit()
        desc = Descriptor(media_type=mt.DOCKER_LAYER, digest=digest, size=len(blob))
        return apply_layers(
            self.content,
            self.snapshots,
            [desc],
            [sha256_digest(tar)],
            profile,
            limits=limits,
        )


def _snapshot_bytes(store: Store) -> int:
    total = 0
    for dirpath, _, files in os.walk(store.snapshots.root):
        total += sum(os.lstat(os.path.join(dirpath, f)).st_size for f in files)
    return total


@pytest.mark.behavior("PULL-014")
@pytest.mark.parametrize(
    ("compress", "files"),
    [
        pytest.param(lambda t: gzip.compress(t, 9), 1, id="gzip-one-file"),
        pytest.param(lambda t: gzip.compress(t, 9), 32, id="gzip-many-files"),
        pytest.param(zstandard.ZstdCompressor(level=19).compress, 1, id="zstd"),
    ],
)
def test_a_layer_inflating_past_its_ratio_is_refused(
    tmp_path: Path,
    compress: Callable[[bytes], bytes],
    files: int,
) -> None:
    tar = zero_file_tar(32 * MIB, files=files)
    store = Store(tmp_path)
    with pytest.raises(LimitExceeded, match=r"--max-layer-ratio"):
        store.apply(tar, compress(tar), TIGHT)
    assert store.snapshots.list() == []
    assert _snapshot_bytes(store) == 0  # the partial snapshot is removed


@pytest.mark.behavior("PULL-014")
def test_a_layer_inflating_past_the_size_limit_is_refused(tmp_path: Path) -> None:
    tar = zero_file_tar(8 * MIB)
    limits = Limits(max_layer_size=4 * MIB, max_layer_ratio=10**6, ratio_floor=MIB)
    with pytest.raises(LimitExceeded, match=r"--max-layer-size"):
        Store(tmp_path).apply(tar, tar, limits)  # uncompressed: the ratio is 1


@pytest.mark.behavior("PULL-014")
def test_a_sparse_member_counts_at_its_full_size(tmp_path: Path) -> None:
    tar = sparse_tar(8 * MIB)
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        assert archive.getmembers()[0].size == 8 * MIB
    limits = Limits(max_layer_size=4 * MIB, max_layer_ratio=10**6, ratio_floor=MIB)
    with pytest.raises(
        LimitExceeded,
        match=r"'sparse' bringing the layer's files to 8388608 bytes exceeds the limit",
    ):
        Store(tmp_path).apply(tar, tar, limits)


@pytest.mark.behavior("PULL-014")
@pytest.mark.parametrize("profile", [SEED, CONTAINERD_16], ids=["seed", "1.6"])
def test_layers_within_the_limits_apply(tmp_path: Path, profile: Profile) -> None:
    tar = zero_file_tar(3 * MIB)  # under the floor: any ratio is fine
    assert Store(tmp_path).apply(tar, gzip.compress(tar), TIGHT, profile)


@pytest.mark.behavior("PULL-015")
def test_an_image_with_too_many_layers_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path)
    layer = Descriptor(media_type=mt.DOCKER_LAYER, digest="sha256:" + "a" * 64, size=1)
    with pytest.raises(LimitExceeded, match=r"--max-layers"):
        apply_layers(
            store.content,
            store.snapshots,
            [layer] * 3,
            ["sha256:" + "b" * 64] * 3,
            CONTAINERD_16,
            limits=Limits(max_layers=2),
        )


@pytest.mark.behavior("PULL-014")
def test_many_small_layers_add_up_to_the_image_limit(tmp_path: Path) -> None:
    store = Store(tmp_path)
    tars = [zero_file_tar(3 * MIB + i * 512) for i in range(3)]  # distinct diff_ids
    blobs = [gzip.compress(t) for t in tars]
    descs = []
    for blob in blobs:
        digest = sha256_digest(blob)
        with store.content.ingest(
            "l-" + digest, expected_digest=digest, expected_size=len(blob)
        ) as ing:
            ing.write(blob)
            ing.commit()
        descs.append(
            Descriptor(media_type=mt.DOCKER_LAYER, digest=digest, size=len(blob))
        )
    limits = Limits(max_image_size=7 * MIB, max_layer_ratio=10**6, ratio_floor=MIB)
    with pytest.raises(LimitExceeded, match=r"--max-image-size"):
        apply_layers(
            store.content,
            store.snapshots,
            descs,
            [sha256_digest(t) for t in tars],
            CONTAINERD_16,
            limits=limits,
        )
    assert len(store.snapshots.list()) == 2  # the first two fit
