"""Child snapshots share the parent's inodes, and no layer ever writes through them.

A child snapshot starts as directories plus hard links to its parent's files
(``refpull.unpack._linkfarm``). These tests pin the safety side of that speed-up: whatever a
layer does -- replace, chmod, hard-link, white out -- the parent snapshot stays
byte-for-byte and stat-for-stat what it was, and nothing outside the root changes.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from refpull import mediatypes as mt
from refpull.content.manifests import Descriptor
from refpull.content.store import ContentStore
from refpull.digest import sha256_digest
from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.unpack._linkfarm import copy_up, link_tree
from refpull.unpack.snapshots import SnapshotStore, apply_layers, chain_ids

PROFILES = pytest.mark.parametrize(
    "profile", [SEED, CONTAINERD_16], ids=["seed", "containerd-1.6"]
)
_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


@dataclass(frozen=True)
class E:
    """One tar entry."""

    name: str
    kind: str = "file"
    data: bytes = b""
    link: str = ""
    mode: int = 0o644
    mtime: int = 1_600_000_000


def _tar(*entries: E) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = _TYPES[e.kind]
            info.mode = e.mode
            info.linkname = e.link
            info.mtime = e.mtime
            info.size = len(e.data) if e.kind == "file" else 0
            tar.addfile(info, io.BytesIO(e.data) if e.kind == "file" else None)
    return buf.getvalue()


class _Env:
    def __init__(self, root: Path) -> None:
        self.content = ContentStore(root / "content")
        self.snapshots = SnapshotStore(root / "snap")

    def apply(self, tars: list[bytes], profile: Profile = CONTAINERD_16) -> list[Path]:
        layers = []
        for t in tars:
            blob = gzip.compress(t)
            digest = sha256_digest(blob)
            with self.content.ingest(
                "layer-" + digest, expected_digest=digest, expected_size=len(blob)
            ) as ingest:
                ingest.write(blob)
                ingest.commit()
            layers.append(
                Descriptor(media_type=mt.DOCKER_LAYER, digest=digest, size=len(blob))
            )
        diffs = [sha256_digest(t) for t in tars]
        apply_layers(self.content, self.snapshots, layers, diffs, profile)
        return [self.snapshots.path(c) for c in chain_ids(diffs)]


def _stat(path: Path) -> tuple[int, int, int, int, bytes]:
    st = os.lstat(path)
    body = path.read_bytes() if stat.S_ISREG(st.st_mode) else b""
    return st.st_ino, st.st_mode, st.st_mtime_ns, st.st_size, body


def _tree(root: Path) -> dict[str, tuple[int, int, int, int, bytes]]:
    return {str(p.relative_to(root)): _stat(p) for p in sorted(root.rglob("*"))}


@pytest.fixture
def env(tmp_path: Path) -> _Env:
    return _Env(tmp_path)


_BASE = _tar(
    E("etc", "dir", mode=0o755),
    E("etc/conf", data=b"base", mode=0o644),
    E("etc/keep", data=b"keep", mode=0o600),
    E("bin", "dir", mode=0o755),
    E("bin/tool", data=b"#!tool", mode=0o755),
    E("pipe", "fifo", mode=0o640),
    E("ln", "symlink", link="etc/conf", mode=0o777),
)


@PROFILES
def test_unchanged_files_are_shared_with_the_parent(
    env: _Env, profile: Profile
) -> None:
    lower, upper = env.apply([_BASE, _tar(E("new", data=b"n"))], profile)
    for name in ("etc/keep", "bin/tool", "pipe", "ln"):
        assert os.lstat(upper / name).st_ino == os.lstat(lower / name).st_ino
    # Directories are the child's own, with the parent's mode and times.
    for name in ("etc", "bin"):
        a, b = os.lstat(lower / name), os.lstat(upper / name)
        assert a.st_ino != b.st_ino
        assert (a.st_mode, a.st_mtime_ns) == (b.st_mode, b.st_mtime_ns)
    assert stat.S_ISFIFO(os.lstat(upper / "pipe").st_mode)


@pytest.mark.parametrize(
    "layer",
    [
        pytest.param(_tar(E("etc/conf", data=b"changed", mode=0o600)), id="replace"),
        pytest.param(_tar(E("etc/.wh.conf"), E("bin/.wh..wh..opq")), id="whiteouts"),
        pytest.param(
            _tar(E("etc/conf2", "hardlink", link="etc/conf", mode=0o700)),
            id="hardlink-to-inherited-file",
        ),
        pytest.param(
            _tar(E("ln2", "hardlink", link="ln", mode=0o700, mtime=5)),
            id="hardlink-to-inherited-symlink",
        ),
        pytest.param(
            _tar(E("pipe2", "hardlink", link="pipe", mode=0o600, mtime=5)),
            id="hardlink-to-inherited-fifo",
        ),
        pytest.param(_tar(E("etc", "dir", mode=0o700, mtime=7)), id="chmod-dir"),
        pytest.param(_tar(E("bin/tool", "symlink", link="/x")), id="file-to-symlink"),
        pytest.param(_tar(E("etc/keep/sub", data=b"x")), id="file-to-dir"),
    ],
)
def test_a_layer_never_changes_its_parent_snapshot(env: _Env, layer: bytes) -> None:
    (lower,) = env.apply([_BASE])
    before = _tree(lower)
    env.apply([_BASE, layer])
    assert _tree(lower) == before


def test_hardlink_to_an_inherited_file_gets_a_private_inode(env: _Env) -> None:
    layer = _tar(
        E("etc/a", "hardlink", link="etc/conf", mode=0o700),
        E("etc/b", "hardlink", link="etc/conf", mode=0o700),
    )
    lower, upper = env.apply([_BASE, layer])
    group = {os.lstat(upper / n).st_ino for n in ("etc/conf", "etc/a", "etc/b")}
    assert len(group) == 1  # one inode for the whole link group, as in the tar
    assert group != {os.lstat(lower / "etc/conf").st_ino}
    assert stat.S_IMODE(os.lstat(upper / "etc/conf").st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(lower / "etc/conf").st_mode) == 0o644
    assert (upper / "etc/a").read_bytes() == b"base"


def test_chmod_of_a_hardlinked_symlink_never_leaves_the_root(
    env: _Env, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.write_text("secret")
    outside.chmod(0o600)
    layer = _tar(
        E("s", "symlink", link=str(outside)),
        E("h", "hardlink", link="s", mode=0o777),
    )
    (top,) = env.apply([layer])
    assert (top / "h").is_symlink()
    assert stat.S_IMODE(outside.stat().st_mode) == 0o600
    assert outside.read_text() == "secret"


def test_link_tree_rebuilds_a_deep_tree(tmp_path: Path) -> None:
    src = tmp_path / "src"
    deep = src.joinpath(*["d"] * 60)
    deep.mkdir(parents=True)
    (deep / "f").write_bytes(b"x")
    os.chmod(src / "d", 0o500)  # read-only directory: filled before its mode is set
    try:
        link_tree(src, tmp_path / "dst")
        copy = tmp_path.joinpath("dst", *["d"] * 60, "f")
        assert copy.read_bytes() == b"x"
        assert os.lstat(copy).st_ino == os.lstat(deep / "f").st_ino
        assert stat.S_IMODE(os.lstat(tmp_path / "dst" / "d").st_mode) == 0o500
    finally:
        os.chmod(src / "d", 0o755)
        if (tmp_path / "dst" / "d").exists():
            os.chmod(tmp_path / "dst" / "d", 0o755)


def test_copy_up_leaves_the_other_name_untouched(tmp_path: Path) -> None:
    shared = tmp_path / "parent"
    shared.write_bytes(b"data")
    os.chmod(shared, 0o640)
    child = tmp_path / "child"
    os.link(shared, child)
    copy_up(child)
    assert os.lstat(child).st_ino != os.lstat(shared).st_ino
    assert child.read_bytes() == b"data"
    assert stat.S_IMODE(os.lstat(child).st_mode) == 0o640
    assert os.lstat(shared).st_nlink == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["child", "parent"]


def test_link_tree_copies_when_a_link_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"data")
    os.chmod(src / "f", 0o640)
    os.mkfifo(src / "p", 0o600)
    os.symlink("f", src / "l")

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EMLINK, "Too many links")

    monkeypatch.setattr(os, "link", refuse)
    link_tree(src, tmp_path / "dst")
    dst = tmp_path / "dst"
    assert (dst / "f").read_bytes() == b"data"
    assert os.lstat(dst / "f").st_ino != os.lstat(src / "f").st_ino
    assert stat.S_IMODE(os.lstat(dst / "f").st_mode) == 0o640
    assert os.lstat(dst / "f").st_mtime_ns == os.lstat(src / "f").st_mtime_ns
    assert stat.S_ISFIFO(os.lstat(dst / "p").st_mode)
    assert os.readlink(dst / "l") == "f"
