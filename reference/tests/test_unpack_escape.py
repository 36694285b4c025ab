"""Unpacking never changes anything outside the snapshot it builds (PULL-012, PULL-013).

The regression for containerd's CVE-2021-32760 class (GHSA-c72p-9xmj-rx3w): a layer
declares directory ``a`` (mode 0777) and ``a/x`` (setuid, uid 4242), then replaces
``a`` with a symlink to a directory outside the root. Directory metadata is applied
after the whole layer; applied by path, it follows the symlink out of the root.

The property test generates hostile layer sequences and judges each layer against the
snapshot being built: the canary tree beside the store and every lower snapshot must
be byte-for-byte and stat-for-stat what they were.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refpull import mediatypes as mt
from refpull.content.manifests import Descriptor
from refpull.content.store import ContentStore
from refpull.digest import sha256_digest
from refpull.errors import RefpullError
from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.unpack.snapshots import SnapshotStore, apply_layers

MTIME = 1_234_567_890


@dataclass(frozen=True)
class T:
    """One tar entry, in archive order (duplicates and replacements allowed)."""

    name: str
    kind: str = "file"  # file, dir, symlink, hardlink
    link: str = ""
    mode: int = 0o644
    uid: int = 0


def tar_of(entries: list[T]) -> bytes:
    types = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = types[e.kind]
            info.mode = e.mode
            info.uid = info.gid = e.uid
            info.mtime = MTIME
            info.linkname = e.link
            data = b"payload" if e.kind == "file" else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _state(top: Path, skip: set[Path]) -> dict[str, tuple[object, ...]]:
    """Everything observable under *top* (type, mode, owner, mtime, content).

    Link counts are left out: a child snapshot hard-links its parent's files.
    """
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d not in skip]
        for name in [*dirnames, *filenames, *([""] if here == top else [])]:
            path = here / name if name else here
            st_ = os.lstat(path)
            body: object = None
            if stat.S_ISLNK(st_.st_mode):
                body = os.readlink(path)
            elif stat.S_ISREG(st_.st_mode):
                body = hashlib.sha256(path.read_bytes()).hexdigest()
            out[str(path)] = (
                st_.st_mode,
                st_.st_uid,
                st_.st_gid,
                st_.st_mtime_ns,
                body,
            )
    return out


class World:
    """A snapshot store beside a canary tree the layers aim at."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.content = ContentStore(base / "content")
        self.snapshots = SnapshotStore(base / "snap")
        self.canary = base / "canary"
        (self.canary / "x").mkdir(parents=True)
        (self.canary / "x" / "file").write_text("keep")
        (self.canary / "file").write_text("keep")
        os.chmod(self.canary, 0o755)

    def descriptor(self, blob: bytes) -> Descriptor:
        digest = sha256_digest(blob)
        if not self.content.has(digest):
            with self.content.ingest(
                "layer-" + digest, expected_digest=digest, expected_size=len(blob)
            ) as ing:
                ing.write(blob)
                ing.commit()
        return Descriptor(media_type=mt.DOCKER_LAYER, digest=digest, size=len(blob))

    def observed(self) -> dict[str, tuple[object, ...]]:
        """Canary, lower snapshots and the base, minus bookkeeping that must change."""
        snaps = self.snapshots.root / "snapshots"
        state = _state(self.base, {self.base / "content", snaps})
        for child in snaps.iterdir():
            if not child.name.startswith("tmp-"):
                state.update(_state(child, set()))
        state.pop(str(self.snapshots.root), None)  # holds the new snapshot's entry
        return state

    def apply_each(self, layers: list[list[T]], profile: Profile) -> None:
        """Apply the layers one at a time; none may change what was there before."""
        tars = [tar_of(entries) for entries in layers]
        descs = [self.descriptor(gzip.compress(t, mtime=0)) for t in tars]
        diffs = [sha256_digest(t) for t in tars]
        for n in range(1, len(tars) + 1):
            before = self.observed()
            try:
                apply_layers(
                    self.content, self.snapshots, descs[:n], diffs[:n], profile
                )
            except (RefpullError, OSError):
                failed = True
            else:
                failed = False
            after = {k: v for k, v in self.observed().items() if k in before}
            changed = sorted(k for k in before if before[k] != after.get(k))
            assert changed == [], f"layer {n} changed {changed} outside its snapshot"
            if failed:
                return


@pytest.mark.behavior("PULL-013")
@pytest.mark.parametrize("mode", [0o777, 0o4755, 0o6777, 0o000])
@pytest.mark.parametrize("profile", [SEED, CONTAINERD_16], ids=["seed", "1.6"])
def test_directory_metadata_never_follows_a_replaced_component(
    tmp_path: Path, mode: int, profile: Profile
) -> None:
    """``a`` (0777), ``a/x`` (*mode*, uid 4242), then ``a -> canary``: canary unchanged."""
    world = World(tmp_path)
    for target in (str(world.canary), "../../../../canary"):
        layer = [
            T("a", "dir", mode=0o777),
            T("a/x", "dir", mode=mode, uid=4242),
            T("a", "symlink", link=target),
        ]
        world.apply_each([layer], profile)
    assert stat.S_IMODE(os.stat(world.canary).st_mode) == 0o755
    x = os.stat(world.canary / "x")
    assert stat.S_IMODE(x.st_mode) == 0o755
    assert x.st_uid == os.geteuid()


@pytest.mark.behavior("PULL-013")
def test_a_component_replaced_in_a_later_layer_is_not_followed(
    tmp_path: Path,
) -> None:
    """Layer 1 has ``a``; layer 2 replaces it by a symlink then declares ``a`` again."""
    world = World(tmp_path)
    world.apply_each(
        [
            [T("a", "dir"), T("a/x", "dir")],
            [
                T("a/x", "dir", mode=0o4777, uid=4242),
                T("a", "symlink", link=str(world.canary)),
            ],
        ],
        CONTAINERD_16,
    )
    assert stat.S_IMODE(os.stat(world.canary / "x").st_mode) == 0o755


# -- the property: hostile layer sequences ------------------------------------------

_NAMES = ["a", "b", "a/x", "a/x/y", "b/x", "x", "a/x/file", "../canary/x", "/canary"]
_LINKS = st.sampled_from(
    [
        "@canary",
        "@canary/x",
        "@canary/file",
        "../canary",
        "../../../../canary",
        "/",
        "a",
    ]
)
_MODES = st.sampled_from([0o777, 0o4755, 0o6777, 0o000, 0o755, 0o644])
_UIDS = st.sampled_from([0, 4242])


def _entry() -> st.SearchStrategy[T]:
    names = st.sampled_from(_NAMES)
    return st.one_of(
        st.builds(T, names, st.just("dir"), st.just(""), _MODES, _UIDS),
        st.builds(T, names, st.just("file"), st.just(""), _MODES, _UIDS),
        st.builds(T, names, st.just("symlink"), _LINKS),
        st.builds(
            T, names, st.just("hardlink"), st.sampled_from(_NAMES), _MODES, _UIDS
        ),
        st.builds(
            lambda n: (
                T(n.rsplit("/", 1)[0] + "/.wh." + n.rsplit("/", 1)[-1])
                if "/" in n
                else T(".wh." + n)
            ),
            names,
        ),
        st.builds(lambda n: T(n + "/.wh..wh..opq"), st.sampled_from(["a", "a/x"])),
    )


@st.composite
def _layer(draw: st.DrawFn) -> list[T]:
    """Random entries, then often the attack's move: a component of an entry already
    written is replaced by a symlink (or a hard link is made to a symlink)."""
    entries = draw(st.lists(_entry(), min_size=1, max_size=6))
    written = [e.name for e in entries if not e.name.startswith(("/", ".."))]
    replace: bool = draw(st.booleans())
    if written and replace:
        victim = draw(st.sampled_from(written)).split("/")
        cut = draw(st.integers(1, len(victim)))
        entries.append(T("/".join(victim[:cut]), "symlink", link=draw(_LINKS)))
        if draw(st.booleans()):
            entries.append(
                T("h", "hardlink", link="/".join(victim[:cut]), mode=draw(_MODES))
            )
    return entries


@pytest.mark.behavior("PULL-012")
@pytest.mark.behavior("PULL-013")
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(layers=st.lists(_layer(), min_size=1, max_size=3))
def test_hostile_layer_sequences_change_nothing_outside_the_snapshot(
    layers: list[list[T]],
) -> None:
    """Whatever the entries, the canary and lower snapshots keep content and stat."""
    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp))
        resolved = [
            [
                T(
                    e.name,
                    e.kind,
                    e.link.replace("@canary", str(world.canary)),
                    e.mode,
                    e.uid,
                )
                for e in layer
            ]
            for layer in layers
        ]
        world.apply_each(resolved, CONTAINERD_16)
