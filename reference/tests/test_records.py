"""What a pull writes into the metadata store (behaviors.md CRI-002..004, PULL-011).

Includes the seed's documented create/update race, reproduced deterministically with
``InterleavingStore`` (upstream-issues F-28).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from refpull.content.manifests import Descriptor
from refpull.cri.images import (
    MANAGED_LABEL_KEY,
    Image,
    ImageStore,
    InterleavingStore,
)
from refpull.cri.records import (
    RecordError,
    create_image_reference,
    record_pulled_image,
    repo_digest_and_tag,
    update_image,
)
from refpull.cri.service import ImageService, ServiceError
from refpull.errors import NotFoundInStore
from refpull.gocompat.imageref import parse_docker_ref
from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.settings.config import parse_config
from registry_sim.images import Image as SimImage
from registry_sim.images import Layer
from registry_sim.sim import RegistrySim

PROFILES = pytest.mark.parametrize(
    "profile", [SEED, CONTAINERD_16], ids=["seed", "containerd-1.6"]
)
MT = "application/vnd.docker.distribution.manifest.v2+json"
A = Descriptor(media_type=MT, digest="sha256:" + "a" * 64, size=10)
B = Descriptor(media_type=MT, digest="sha256:" + "b" * 64, size=20)
D = "sha256:" + "d" * 64
MANAGED = {MANAGED_LABEL_KEY: "managed"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImageStore]:
    s = ImageStore(tmp_path)
    yield s
    s.close()


@pytest.mark.behavior("CRI-002")
@pytest.mark.parametrize(
    ("ref", "schema1", "digest", "tag"),
    [
        pytest.param("r.io/a:1", False, f"r.io/a@{D}", "r.io/a:1", id="tag"),
        pytest.param("busybox", False, f"docker.io/library/busybox@{D}",
                     "docker.io/library/busybox:latest", id="familiar-gets-latest"),
        pytest.param(f"r.io/a@{A.digest}", False, f"r.io/a@{A.digest}", "",
                     id="digest-ref-keeps-user-digest"),
        pytest.param(f"r.io/a:1@{A.digest}", False, f"r.io/a@{A.digest}", "",
                     id="tag-and-digest-gives-digest-only"),
        pytest.param("r.io/a:1", True, "", "r.io/a:1", id="schema1-tag-no-digest"),
        pytest.param(f"r.io/a@{A.digest}", True, f"r.io/a@{A.digest}", "",
                     id="schema1-digest-ref-keeps-user-digest"),
    ],
)  # fmt: skip
def test_repo_digest_and_tag_follow_get_repo_digest_and_tag(
    ref: str, schema1: bool, digest: str, tag: str
) -> None:
    assert repo_digest_and_tag(parse_docker_ref(ref), D, schema1) == (digest, tag)


@PROFILES
@pytest.mark.behavior("CRI-003")
def test_a_new_reference_is_created_with_the_managed_label(
    store: ImageStore, profile: Profile
) -> None:
    create_image_reference(store, "r.io/a:1", A, profile)
    record = store.get("r.io/a:1")
    assert record.target == A
    assert dict(record.labels) == MANAGED


@pytest.mark.behavior("CRI-004")
@pytest.mark.parametrize(
    ("profile", "labels"),
    [
        pytest.param(SEED, MANAGED, id="seed"),
        pytest.param(CONTAINERD_16, {"team": "x", **MANAGED}, id="containerd-1.6"),
    ],
)
def test_relabelling_an_existing_record_keeps_foreign_labels_per_profile(
    store: ImageStore, profile: Profile, labels: dict[str, str]
) -> None:
    store.create(Image(name="r.io/a:1", target=A, labels={"team": "x"}))
    create_image_reference(store, "r.io/a:1", B, profile)
    record = store.get("r.io/a:1")
    assert record.target == B
    assert dict(record.labels) == labels


@PROFILES
@pytest.mark.behavior("CRI-004")
def test_an_unchanged_managed_record_is_still_updated(
    store: ImageStore, profile: Profile
) -> None:
    """F-28: the "same target and label" shortcut never fires (dead branch)."""
    first = store.create(Image(name="r.io/a:1", target=A, labels=MANAGED))
    create_image_reference(store, "r.io/a:1", A, profile)
    again = store.get("r.io/a:1")
    assert again.target == A
    assert again.updated_at is not None
    assert first.updated_at is not None
    assert again.updated_at > first.updated_at


@pytest.mark.behavior("PULL-011")
def test_the_pulled_name_record_is_replaced_whole_on_re_pull(
    store: ImageStore,
) -> None:
    store.create(Image(name="r.io/a:1", target=A, labels={"team": "x", **MANAGED}))
    record_pulled_image(store, "r.io/a:1", B)
    record = store.get("r.io/a:1")
    assert record.target == B
    assert dict(record.labels) == MANAGED


@PROFILES
@pytest.mark.behavior("CRI-003", "CRI-004")
def test_record_deleted_between_create_and_update_fails_with_not_found(
    store: ImageStore, profile: Profile
) -> None:
    """The seed's comment: "the image reference is deleted by someone else after
    create returns already exists, but before update happens"."""
    store.create(Image(name="r.io/a:1", target=A, labels=MANAGED))
    racy = InterleavingStore(store, {"create:exists": store.delete})
    with pytest.raises(NotFoundInStore, match=r'^image "r.io/a:1": not found$'):
        create_image_reference(racy, "r.io/a:1", B, profile)
    with pytest.raises(NotFoundInStore):
        store.get("r.io/a:1")


class _FakeIndex:
    def __init__(self, image_id: str) -> None:
        self.image_id = image_id
        self.updates: list[str] = []

    def update(self, ref: str) -> None:
        self.updates.append(ref)

    def image_id_of(self, target: Descriptor) -> str:
        return self.image_id


@PROFILES
@pytest.mark.behavior("STORE-009")
def test_update_image_adopts_a_foreign_record_with_an_id_record_first(
    store: ImageStore, profile: Profile
) -> None:
    store.create(Image(name="r.io/a:1", target=A, labels={"team": "x"}))
    index = _FakeIndex(D)
    update_image(store, index, "r.io/a:1", profile)
    assert index.updates == [D, "r.io/a:1"]
    assert store.get(D).target == A
    assert store.get("r.io/a:1").managed
    assert store.get(D).managed


@PROFILES
@pytest.mark.behavior("STORE-001")
def test_update_image_of_a_missing_record_still_updates_the_index(
    store: ImageStore, profile: Profile
) -> None:
    index = _FakeIndex(D)
    update_image(store, index, "r.io/gone:1", profile)
    assert index.updates == ["r.io/gone:1"]


def test_update_image_wraps_index_failures_like_the_seed(store: ImageStore) -> None:
    class Broken(_FakeIndex):
        def image_id_of(self, target: Descriptor) -> str:
            raise NotFoundInStore("content digest x: not found", name="x")

    store.create(Image(name="r.io/a:1", target=A))
    with pytest.raises(RecordError, match=r"^get image id: content digest x") as info:
        update_image(store, Broken(D), "r.io/a:1", SEED)
    assert isinstance(info.value.__cause__, NotFoundInStore)


@PROFILES
@pytest.mark.behavior("CRI-003", "ERR-001", "ERR-003")
def test_pull_fails_cleanly_when_the_record_vanishes_mid_update(
    tmp_path: Path, profile: Profile
) -> None:
    with RegistrySim() as sim:
        image = SimImage.schema2([Layer.from_files({"f": b"1"})], nonce="race")
        sim.push(image, "t/app:1")
        ref = f"{sim.host_port}/t/app:1"
        service = ImageService(tmp_path, parse_config({"version": 2}, profile), profile)
        try:
            assert service.pull_image(ref) == image.config_digest
            raw = service.store

            def vanish(name: str) -> None:
                if name == image.config_digest:  # only the image-ID record races
                    raw.delete(name)

            service.store = InterleavingStore(raw, {"create:exists": vanish})
            with pytest.raises(ServiceError) as info:
                service.pull_image(ref)
        finally:
            service.close()
    expected = image.config_digest
    assert str(info.value) == (
        f'failed to create image reference "{expected}": image "{expected}": not found'
    )
    assert info.value.grpc_code == "NOT_FOUND"
