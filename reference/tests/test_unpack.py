"""Layer application: chain IDs, diffID checks, whiteouts and confinement (PULL-003..010)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import re
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from refpull import mediatypes as mt
from refpull.content.manifests import Descriptor
from refpull.content.store import ContentStore
from refpull.digest import sha256_digest
from refpull.errors import DiffIDMismatch, NotFoundInStore, UnpackError, UnsafePath
from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.unpack.snapshots import SnapshotStore, apply_layers, chain_ids

PROFILES = pytest.mark.parametrize(
    "profile", [SEED, CONTAINERD_16], ids=["seed", "containerd-1.6"]
)


@dataclass(frozen=True)
class E:
    """One tar entry: kind is file, dir, symlink, hardlink, fifo or char."""

    name: str
    kind: str = "file"
    data: bytes = b""
    link: str = ""
    mode: int = 0o644
    uid: int = 0


def make_tar(*entries: E) -> bytes:
    buf = io.BytesIO()
    types = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
        "fifo": tarfile.FIFOTYPE,
        "char": tarfile.CHRTYPE,
    }
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = types[e.kind]
            info.mode = 0o755 if e.kind == "dir" else e.mode
            info.linkname = e.link
            info.uid = info.gid = e.uid
            info.mtime = 1_600_000_000
            info.size = len(e.data) if e.kind == "file" else 0
            tar.addfile(info, io.BytesIO(e.data) if e.kind == "file" else None)
    return buf.getvalue()


class Env:
    def __init__(self, root: Path) -> None:
        self.content = ContentStore(root / "content")
        self.snapshots = SnapshotStore(root / "snap")
        self.outside = root / "outside"
        self.outside.mkdir()
        (self.outside / "secret").write_text("keep")

    def add(self, blob: bytes, *, store: bool = True) -> Descriptor:
        digest = sha256_digest(blob)
        if store:
            with self.content.ingest(
                "layer-" + digest, expected_digest=digest, expected_size=len(blob)
            ) as ing:
                ing.write(blob)
                ing.commit()
        return Descriptor(media_type=mt.DOCKER_LAYER, digest=digest, size=len(blob))

    def apply(
        self,
        tars: list[bytes],
        profile: Profile = CONTAINERD_16,
        *,
        compress: Callable[[bytes], bytes] = gzip.compress,
        diff_ids: list[str] | None = None,
    ) -> str:
        layers = [self.add(compress(t)) for t in tars]
        diffs = diff_ids or [sha256_digest(t) for t in tars]
        return apply_layers(self.content, self.snapshots, layers, diffs, profile)

    def outside_untouched(self) -> bool:
        return sorted(os.listdir(self.outside)) == ["secret"] and (
            (self.outside / "secret").read_text() == "keep"
        )


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def test_chain_ids_follow_the_oci_definition() -> None:
    d = ["sha256:" + c * 64 for c in "abc"]
    c1 = "sha256:" + hashlib.sha256(f"{d[0]} {d[1]}".encode()).hexdigest()
    c2 = "sha256:" + hashlib.sha256(f"{c1} {d[2]}".encode()).hexdigest()
    assert chain_ids(d) == [d[0], c1, c2]
    assert chain_ids([]) == []
    with pytest.raises(UnpackError):
        chain_ids(["sha256:../../x"])


@PROFILES
def test_layers_are_applied_bottom_up(env: Env, profile: Profile) -> None:
    l1 = make_tar(E("etc", "dir"), E("etc/a", data=b"1"), E("bin", "dir"))
    l2 = make_tar(E("etc/a", data=b"2"), E("etc/link", "symlink", link="/etc/a"))
    top = env.apply([l1, l2], profile)
    fs = env.snapshots.path(top)
    assert (fs / "etc/a").read_bytes() == b"2"
    assert os.readlink(fs / "etc/link") == "/etc/a"
    lower = env.snapshots.path(chain_ids([sha256_digest(l1)])[0])
    assert (lower / "etc/a").read_bytes() == b"1"  # the parent snapshot is unchanged
    assert env.snapshots.list() == sorted(
        chain_ids([sha256_digest(l1), sha256_digest(l2)])
    )


def test_metadata_is_applied(env: Env) -> None:
    top = env.apply([make_tar(E("x", data=b"x", mode=0o640, uid=1234))])
    st = os.lstat(env.snapshots.path(top) / "x")
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_mtime == 1_600_000_000
    # Ownership is applied only when running as root (never needs privileges).
    assert st.st_uid == (1234 if os.geteuid() == 0 else os.getuid())


def test_whiteouts_remove_lower_entries(env: Env) -> None:
    l1 = make_tar(
        E("a", "dir"),
        E("a/old", data=b"o"),
        E("a/sub", "dir"),
        E("a/sub/f"),
        E("c", data=b"c"),
    )
    l2 = make_tar(
        E("a", "dir"),
        E("a/.wh..wh..opq"),
        E("a/new", data=b"n"),
        E(".wh.c"),
        E(".wh.nothere"),
    )
    fs = env.snapshots.path(env.apply([l1, l2]))
    assert sorted(os.listdir(fs / "a")) == ["new"]
    assert not (fs / "c").exists()
    assert not any(
        name.startswith(".wh.") for _, _, files in os.walk(fs) for name in files
    )


def test_opaque_marker_keeps_entries_of_the_same_layer(env: Env) -> None:
    l1 = make_tar(E("a", "dir"), E("a/old"))
    l2 = make_tar(E("a", "dir"), E("a/d", "dir"), E("a/d/x"), E("a/.wh..wh..opq"))
    fs = env.snapshots.path(env.apply([l1, l2]))
    assert sorted(os.listdir(fs / "a")) == ["d"]
    assert (fs / "a/d/x").exists()


@pytest.mark.behavior("PULL-012")
@pytest.mark.parametrize(
    "entries",
    [
        pytest.param([E("../evil", data=b"x")], id="dotdot"),
        pytest.param([E("a/../../evil", data=b"x")], id="inner-dotdot"),
        pytest.param([E("/abs", data=b"x")], id="absolute"),
        pytest.param(
            [E("link", "symlink", link="../outside"), E("link/evil", data=b"x")],
            id="write-through-relative-symlink",
        ),
        pytest.param(
            [E("link", "symlink", link="OUTSIDE"), E("link/evil", data=b"x")],
            id="write-through-absolute-symlink",
        ),
        pytest.param(
            [E("hl", "hardlink", link="../outside/secret")], id="hardlink-dotdot"
        ),
        pytest.param(
            [E("hl", "hardlink", link="OUTSIDE/secret")], id="hardlink-absolute"
        ),
        pytest.param(
            [E("s", "symlink", link="OUTSIDE"), E("hl", "hardlink", link="s/secret")],
            id="hardlink-through-symlink",
        ),
        pytest.param([E(".wh..."), E("x")], id="whiteout-dotdot"),
        pytest.param(
            [E("link", "symlink", link="OUTSIDE"), E("link/.wh.secret")],
            id="whiteout-through-symlink",
        ),
    ],
)
@PROFILES
def test_hostile_entries_never_write_outside_the_snapshot(
    env: Env, entries: list[E], profile: Profile
) -> None:
    fixed = [
        E(e.name, e.kind, e.data, e.link.replace("OUTSIDE", str(env.outside)))
        for e in entries
    ]
    blob = make_tar(*fixed)
    with pytest.raises(UnsafePath):
        env.apply([blob], profile)
    assert env.outside_untouched()
    assert env.snapshots.list() == []
    assert not (env.snapshots.root / "evil").exists()
    assert not (env.snapshots.root / "snapshots" / "evil").exists()


def test_symlink_entries_are_replaced_not_followed(env: Env) -> None:
    l1 = make_tar(E("f", "symlink", link=str(env.outside / "secret")))
    l2 = make_tar(E("f", data=b"mine"))
    fs = env.snapshots.path(env.apply([l1, l2]))
    assert (fs / "f").read_bytes() == b"mine"
    assert not (fs / "f").is_symlink()
    assert env.outside_untouched()


def test_hardlinks_inside_the_layer_work(env: Env) -> None:
    fs = env.snapshots.path(
        env.apply([make_tar(E("a", data=b"x"), E("b", "hardlink", link="a"))])
    )
    assert os.stat(fs / "a").st_ino == os.stat(fs / "b").st_ino


def test_devices_are_skipped_with_a_note_and_fifos_created(env: Env) -> None:
    top = env.apply([make_tar(E("dev", "dir"), E("dev/null", "char"), E("p", "fifo"))])
    fs = env.snapshots.path(top)
    assert not (fs / "dev/null").exists()
    assert stat.S_ISFIFO(os.lstat(fs / "p").st_mode)
    assert env.snapshots.notes(top) == ["skipped device node 'dev/null'"]


@pytest.mark.behavior("PULL-005")
@PROFILES
def test_wrong_diff_id_is_reported_per_profile(env: Env, profile: Profile) -> None:
    blob = make_tar(E("a", data=b"1"))
    wrong = "sha256:" + "0" * 64
    with pytest.raises(DiffIDMismatch) as info:
        env.apply([blob], profile, diff_ids=[wrong])
    calculated = sha256_digest(blob)
    quoted = wrong if profile.diffid_error_quotes_expected else calculated
    assert str(info.value) == f'wrong diff id calculated on extraction "{quoted}"'
    assert (info.value.expected, info.value.actual) == (wrong, calculated)
    assert env.snapshots.list() == []
    assert [p.name for p in (env.snapshots.root / "snapshots").iterdir()] == []


@pytest.mark.behavior("PULL-005")
def test_existing_snapshots_are_not_checked_again(env: Env) -> None:
    blob = make_tar(E("a", data=b"1"))
    top = env.apply([blob])
    layer = env.add(gzip.compress(blob), store=False)
    # A wrong diff_id that names an existing chain is accepted without extraction.
    assert apply_layers(env.content, env.snapshots, [layer], [top], SEED) == top


@pytest.mark.behavior("PULL-010")
@PROFILES
def test_zstd_layers_need_profile_support(env: Env, profile: Profile) -> None:
    blob = make_tar(E("z", data=b"zstd"))
    if profile.zstd_layers:
        top = env.apply([blob], profile, compress=zstandard.ZstdCompressor().compress)
        assert (env.snapshots.path(top) / "z").read_bytes() == b"zstd"
    else:
        with pytest.raises((UnpackError, DiffIDMismatch)):
            env.apply([blob], profile, compress=zstandard.ZstdCompressor().compress)


@pytest.mark.behavior("PULL-010")
@PROFILES
def test_uncompressed_and_gzip_layers_are_detected_by_magic(
    env: Env, profile: Profile
) -> None:
    l1 = make_tar(E("plain", data=b"p"))
    l2 = make_tar(E("gz", data=b"g"))
    layers = [env.add(l1), env.add(gzip.compress(l2))]
    top = apply_layers(
        env.content,
        env.snapshots,
        layers,
        [sha256_digest(l1), sha256_digest(l2)],
        profile,
    )
    assert sorted(os.listdir(env.snapshots.path(top))) == ["gz", "plain"]


def test_garbage_layer_fails_extraction(env: Env) -> None:
    blob = b"not a tar at all" * 64
    with pytest.raises(UnpackError, match="failed to extract layer"):
        env.apply([blob], compress=lambda b: b)


@pytest.mark.behavior("PULL-008")
@PROFILES
@pytest.mark.parametrize(
    "media_type",
    [
        pytest.param("application/x-unknown-layer", id="unknown"),
        pytest.param(mt.DOCKER_CONFIG, id="config-type"),
        pytest.param(mt.OCTET_STREAM, id="octet-stream"),
    ],
)
def test_layer_of_a_non_layer_type_fails_after_its_download(
    env: Env, profile: Profile, media_type: str
) -> None:
    tar = make_tar(E("a", data=b"x"))
    blob = gzip.compress(tar)
    layer = dataclasses.replace(env.add(blob, store=False), media_type=media_type)
    fetched: list[str] = []

    def fetch(desc: Descriptor) -> None:
        fetched.append(desc.digest)
        env.add(blob)

    with pytest.raises(
        UnpackError,
        match=rf"^failed to extract layer sha256:[0-9a-f]{{64}}: failed to get stream "
        rf"processor for {re.escape(media_type)}: no processor for media-type$",
    ):
        apply_layers(
            env.content,
            env.snapshots,
            [layer],
            [sha256_digest(tar)],
            profile,
            fetch_missing=fetch,
        )
    assert fetched == [layer.digest]  # content is fetched and stored first
    assert env.content.has(layer.digest)
    assert not env.snapshots.exists(chain_ids([sha256_digest(tar)])[-1])


@pytest.mark.behavior("PULL-003")
@PROFILES
def test_only_needed_blobs_are_fetched_in_16(env: Env, profile: Profile) -> None:
    l1, l2 = make_tar(E("a")), make_tar(E("b"))
    blobs = [gzip.compress(l1), gzip.compress(l2)]
    diffs = [sha256_digest(l1), sha256_digest(l2)]
    d1 = env.add(blobs[0], store=False)
    # The base snapshot exists already (another image), its blob is not in the store.
    apply_layers(env.content, env.snapshots, [env.add(blobs[0])], diffs[:1], profile)
    env.content.delete(d1.digest)
    d2 = env.add(blobs[1], store=False)
    fetched: list[str] = []

    def fetch(desc: Descriptor) -> None:
        fetched.append(desc.digest)
        env.add(blobs[[d1.digest, d2.digest].index(desc.digest)])

    top = apply_layers(
        env.content, env.snapshots, [d1, d2], diffs, profile, fetch_missing=fetch
    )
    assert top == chain_ids(diffs)[-1]
    if profile.deferred_layer_download:
        assert fetched == [d2.digest]
    else:
        assert fetched == [d1.digest, d2.digest]


def test_missing_blob_without_fetcher_is_not_found(env: Env) -> None:
    blob = make_tar(E("a"))
    layer = env.add(gzip.compress(blob), store=False)
    with pytest.raises(
        NotFoundInStore, match=r"content digest sha256:[0-9a-f]{64}: not found"
    ):
        apply_layers(env.content, env.snapshots, [layer], [sha256_digest(blob)], SEED)


@pytest.mark.behavior("PULL-004")
def test_layer_count_mismatch_stops_before_unpacking(env: Env) -> None:
    layer = env.add(gzip.compress(make_tar(E("a"))))
    with pytest.raises(
        UnpackError, match=r"^number of layers and diffIDs don't match: 1 != 0$"
    ):
        apply_layers(env.content, env.snapshots, [layer], [], SEED)


@pytest.mark.behavior("PULL-009")
@PROFILES
def test_zero_layers_give_an_empty_chain(env: Env, profile: Profile) -> None:
    assert apply_layers(env.content, env.snapshots, [], [], profile) == ""


def test_empty_blob_is_an_empty_layer(env: Env) -> None:
    top = env.apply([b""], compress=lambda b: b)
    assert os.listdir(env.snapshots.path(top)) == []
    assert top == sha256_digest(b"")
