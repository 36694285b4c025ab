"""The in-memory image index: reconcile, lookups, CRI mapping, readiness (§14 STORE)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from refpull.content.manifests import Descriptor
from refpull.content.store import ContentStore
from refpull.cri.images import MANAGED_LABEL_KEY, Image, ImageStore
from refpull.cri.index import (
    AmbiguousImage,
    ImageIndex,
    image_user,
    sort_references,
    to_cri_image,
)
from refpull.digest import sha256_digest
from refpull.mediatypes import DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST
from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.pull._pipeline_io import put_bytes
from refpull.unpack.snapshots import SnapshotStore, chain_ids

PROFILES = pytest.mark.parametrize(
    "profile", [SEED, CONTAINERD_16], ids=["seed", "containerd-1.6"]
)
MANAGED = {MANAGED_LABEL_KEY: "managed"}


@dataclass
class World:
    store: ImageStore
    content: ContentStore
    snapshots: SnapshotStore

    def put(self, data: bytes, media_type: str) -> Descriptor:
        desc = Descriptor(
            media_type=media_type, digest=sha256_digest(data), size=len(data)
        )
        put_bytes(self.content, desc, data)
        return desc

    def image(
        self, label: str, *, user: str = "", layers: int = 1, snapshot: bool = True
    ) -> tuple[Descriptor, str, list[Descriptor], str]:
        """Write config, layers and manifest; return (target, id, layers, chain)."""
        blobs = [f"layer {label} {i}".encode() for i in range(layers)]
        diff_ids = [sha256_digest(b"tar:" + b) for b in blobs]
        layer_descs = [self.put(b, DOCKER_LAYER) for b in blobs]
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"User": user, "Labels": {"l": label}},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }
        ).encode()
        config_desc = self.put(config, DOCKER_CONFIG)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST,
                "config": config_desc.to_json(),
                "layers": [d.to_json() for d in layer_descs],
            }
        ).encode()
        target = self.put(manifest, DOCKER_MANIFEST)
        chain = chain_ids(diff_ids)[-1] if diff_ids else ""
        if snapshot and chain:
            self.snapshots.path(chain).mkdir(parents=True)
        return target, config_desc.digest, layer_descs, chain

    def record(self, name: str, target: Descriptor, **labels: str) -> None:
        self.store.create(Image(name=name, target=target, labels=labels or MANAGED))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store = ImageStore(tmp_path)
    yield World(
        store, ContentStore(tmp_path / "content"), SnapshotStore(tmp_path / "snapshots")
    )
    store.close()


def _index(world: World, profile: Profile = SEED) -> ImageIndex:
    return ImageIndex(world.store, world.content, world.snapshots, profile)


def _id_with_prefix(
    world: World, prefix: str, start: int = 0
) -> tuple[Descriptor, str, int]:
    """Brute-force a label so the image ID starts with *prefix* (config only)."""
    for n in range(start, start + 100_000):
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "n": n,
                "rootfs": {"type": "layers", "diff_ids": []},
            }
        ).encode()
        if sha256_digest(config).startswith("sha256:" + prefix):
            desc = world.put(config, DOCKER_CONFIG)
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": DOCKER_MANIFEST,
                    "config": desc.to_json(),
                    "layers": [],
                }
            ).encode()
            return world.put(manifest, DOCKER_MANIFEST), desc.digest, n
    raise AssertionError("no match")  # pragma: no cover  # fmt: skip


@pytest.mark.behavior("STORE-003")
def test_sort_references_ranks_tags_before_digests_then_sorts() -> None:
    digest = "sha256:" + "1" * 64
    refs = [
        digest,
        f"r.io/a@{digest}",
        "r.io/a:zeta",
        "r.io/a",
        "r.io/a:alpha",
        "Bad Ref",
        f"r.io/a:1@{digest}",
    ]
    assert sort_references(refs) == [
        f"r.io/a:1@{digest}",
        "r.io/a:alpha",
        "r.io/a:zeta",
        f"r.io/a@{digest}",
        "r.io/a",
        digest,
        "Bad Ref",
    ]


@pytest.mark.behavior("STORE-003")
@pytest.mark.parametrize(
    ("profile", "tags"),
    [
        pytest.param(SEED, ("r.io/a:zeta", "r.io/a:alpha"), id="seed"),
        pytest.param(CONTAINERD_16, ("r.io/a:alpha", "r.io/a:zeta"), id="containerd-1.6"),
    ],
)  # fmt: skip
def test_reference_order_follows_the_profile(
    world: World, profile: Profile, tags: tuple[str, ...]
) -> None:
    target, image_id, _, _ = world.image("x")
    index = _index(world, profile)
    for name in (image_id, "r.io/a:zeta", "r.io/a:alpha"):
        world.record(name, target)
        index.update(name)
    image = index.resolve(image_id)
    assert image is not None
    assert to_cri_image(image).repo_tags == tags


@PROFILES
@pytest.mark.behavior("STORE-001", "STORE-002")
def test_a_moved_tag_leaves_the_old_image_with_its_other_references(
    world: World, profile: Profile
) -> None:
    old, old_id, _, _ = world.image("old")
    new, new_id, _, _ = world.image("new")
    index = _index(world, profile)
    digest_ref = f"r.io/a@{old.digest}"
    for name in (old_id, "r.io/a:1", digest_ref):
        world.record(name, old)
        index.update(name)
    world.store.update(Image(name="r.io/a:1", target=new, labels=MANAGED))
    index.update("r.io/a:1")
    world.record(new_id, new)
    index.update(new_id)
    old_image = index.get(old_id)
    new_image = index.get(new_id)
    assert old_image is not None
    assert new_image is not None
    assert to_cri_image(old_image).repo_tags == ()
    assert to_cri_image(old_image).repo_digests == (digest_ref,)
    assert new_image.references == ("r.io/a:1", new_id)


@PROFILES
@pytest.mark.behavior("STORE-001", "STORE-002")
def test_an_image_leaves_the_index_with_its_last_reference(
    world: World, profile: Profile
) -> None:
    target, image_id, _, _ = world.image("x")
    index = _index(world, profile)
    for name in (image_id, "r.io/a:1"):
        world.record(name, target)
        index.update(name)
    world.store.delete("r.io/a:1")
    index.update("r.io/a:1")
    image = index.get(image_id)
    assert image is not None
    assert image.references == (image_id,)
    world.store.delete(image_id)
    index.update(image_id)
    assert index.list() == []
    assert index.references() == {}


@pytest.mark.behavior("STORE-004")
@pytest.mark.parametrize(
    ("user", "uid", "username"),
    [
        pytest.param("1000", 1000, "", id="uid"),
        pytest.param("1000:1000", 1000, "", id="uid-gid"),
        pytest.param("app:grp", None, "app", id="name-group"),
        pytest.param("0x10", None, "0x10", id="hex-is-a-name"),
        pytest.param("", None, "", id="empty"),
        pytest.param(":1000", None, "", id="empty-before-colon"),
        pytest.param("-1", -1, "", id="negative"),
        pytest.param("+5", 5, "", id="plus-sign"),
        pytest.param("9223372036854775808", None, "9223372036854775808", id="overflow"),
        pytest.param(" 1", None, " 1", id="space-is-a-name"),
    ],
)
def test_config_user_maps_to_uid_or_username(
    user: str, uid: int | None, username: str
) -> None:
    assert image_user(user) == (uid, username)


@pytest.mark.behavior("STORE-004")
def test_cri_image_lists_tags_and_digests_but_not_the_id(world: World) -> None:
    target, image_id, layers, _ = world.image("x", user="7:7", layers=2)
    index = _index(world)
    digest_ref = f"r.io/a@{target.digest}"
    for name in (image_id, "r.io/a:1", digest_ref):
        world.record(name, target)
        index.update(name)
    image = index.get(image_id)
    assert image is not None
    cri = to_cri_image(image)
    config_size = world.content.size(image_id)
    assert cri.id == image_id
    assert cri.repo_tags == ("r.io/a:1",)
    assert cri.repo_digests == (digest_ref,)
    assert cri.size == target.size + config_size + sum(d.size for d in layers)
    assert (cri.uid, cri.username) == (7, "")


def test_image_spec_is_a_fresh_copy_each_time(world: World) -> None:
    """F-30 (CVE-2021-21334): callers never share the image config."""
    target, image_id, _, _ = world.image("x")
    world.record(image_id, target)
    index = _index(world)
    index.update(image_id)
    image = index.get(image_id)
    assert image is not None
    spec = image.spec()
    spec["config"]["Env"] = ["LEAK=1"]
    assert "Env" not in image.spec()["config"]


@pytest.mark.behavior("STORE-005")
def test_lookup_by_id_reference_familiar_name_and_prefix(world: World) -> None:
    target, image_id, _, _ = world.image("x")
    index = _index(world)
    for name in (image_id, "docker.io/library/busybox:latest", "r.io/a:1"):
        world.record(name, target)
        index.update(name)
    hex_ = image_id.removeprefix("sha256:")
    for query in (
        image_id,
        "r.io/a:1",
        "busybox",
        hex_[:3],
        f"sha256:{hex_[:5]}",
        hex_,
    ):
        found = index.resolve(query)
        assert found is not None, query
        assert found.id == image_id
    for query in ("sha256:", "r.io/a:2", "zz", f"sha512:{hex_[:3]}"):
        assert index.resolve(query) is None, query


@pytest.mark.behavior("STORE-005")
def test_ambiguous_prefix_is_an_error_and_a_longer_one_resolves(world: World) -> None:
    first, first_id, n = _id_with_prefix(world, "c")
    second, second_id, _ = _id_with_prefix(world, "c", start=n + 1)
    index = _index(world)
    for target, image_id in ((first, first_id), (second, second_id)):
        world.record(image_id, target)
        index.update(image_id)
    with pytest.raises(AmbiguousImage, match=r"^ambiguous digest string$"):
        index.resolve("c")
    common = 1
    while first_id[7 + common] == second_id[7 + common]:
        common += 1
    found = index.resolve(first_id[7 : 7 + common + 1])
    assert found is not None
    assert found.id == first_id


@pytest.mark.behavior("STORE-005")
def test_a_name_that_is_also_an_id_prefix_is_first_tried_as_a_reference(
    world: World,
) -> None:
    named, named_id, _, _ = world.image("named")
    other, other_id, _ = _id_with_prefix(world, "ab")
    index = _index(world)
    for name, target in (
        (named_id, named),
        ("docker.io/library/ab:latest", named),
        (other_id, other),
    ):
        world.record(name, target)
        index.update(name)  # fmt: skip
    found = index.resolve("ab")
    assert found is not None
    assert found.id == named_id
    assert named_id != other_id


@pytest.mark.behavior("STORE-006")
def test_empty_string_is_the_only_image_or_ambiguous(world: World) -> None:
    index = _index(world)
    assert index.resolve("") is None
    first, first_id, _, _ = world.image("one")
    world.record(first_id, first)
    index.update(first_id)
    found = index.resolve("")
    assert found is not None
    assert found.id == first_id
    second, second_id, _, _ = world.image("two")
    world.record(second_id, second)
    index.update(second_id)
    with pytest.raises(AmbiguousImage):
        index.resolve("")


@pytest.mark.parametrize(
    ("profile", "layer_needed"),
    [
        pytest.param(SEED, True, id="seed"),
        pytest.param(CONTAINERD_16, False, id="containerd-1.6"),
    ],
)
@pytest.mark.behavior("PULL-003")
def test_readiness_needs_layer_blobs_only_where_the_profile_keeps_them(
    world: World, profile: Profile, layer_needed: bool
) -> None:
    target, image_id, layers, chain = world.image("x")
    world.record(image_id, target)
    index = _index(world, profile)
    index.update(image_id)
    assert index.ready() == index.list()
    world.content.delete(layers[0].digest)
    assert bool(index.problems(index.list()[0])) is layer_needed
    world.snapshots.remove(chain)
    assert index.problems(index.list()[0])[-1] == (
        f"{image_id}: snapshot {chain} is missing"
    )
    assert index.ready() == []


@PROFILES
@pytest.mark.behavior("STORE-009")
def test_rebuild_adopts_foreign_records_and_reports_unreadable_ones(
    world: World, profile: Profile
) -> None:
    good, good_id, _, _ = world.image("good")
    broken, broken_id, _, _ = world.image("broken")
    world.record("r.io/good:1", good, team="x")  # created by another client
    world.record("r.io/broken:1", broken)
    world.content.delete(broken.digest)
    index = _index(world, profile)
    problems = index.rebuild()
    assert [image.id for image in index.ready()] == [good_id]
    assert world.store.get(good_id).managed
    assert world.store.get("r.io/good:1").managed
    assert len(problems) == 1
    assert problems[0].startswith("r.io/broken:1: update image store for")
    assert broken_id not in {image.id for image in index.list()}
