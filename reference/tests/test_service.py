"""The reference ImageService end to end against registry-sim on loopback (§13-§15)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from refpull.cri.service import ImageService, ServiceError, grpc_code
from refpull.errors import NotFound
from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.settings.config import parse_config
from refpull.settings.credentials import AuthConfig
from refpull.unpack.snapshots import chain_ids
from registry_sim.auth import BasicAuth
from registry_sim.faults import Fault, Match, Redirect, Status
from registry_sim.images import Config, Image, Layer
from registry_sim.sim import RegistrySim

PROFILES = pytest.mark.parametrize(
    "profile", [SEED, CONTAINERD_16], ids=["seed", "containerd-1.6"]
)


@pytest.fixture
def sim() -> Iterator[RegistrySim]:
    with RegistrySim() as registry:
        yield registry


def _service(root: Path, profile: Profile) -> ImageService:
    return ImageService(root, parse_config({"version": 2}, profile), profile)


@pytest.fixture
def seed(tmp_path: Path) -> Iterator[ImageService]:
    service = _service(tmp_path, SEED)
    yield service
    service.close()


@pytest.fixture
def service(tmp_path: Path, profile: Profile) -> Iterator[ImageService]:
    svc = _service(tmp_path, profile)
    yield svc
    svc.close()


def _image(nonce: str, **config: str) -> Image:
    layer = Layer.from_files({"f.txt": nonce.encode()})
    return Image.schema2([layer], Config(**config), nonce=nonce)  # type: ignore[arg-type]


@PROFILES
@pytest.mark.behavior("CRI-001", "CRI-002", "CRI-003")
def test_pull_records_id_tag_and_digest_and_returns_the_config_digest(
    sim: RegistrySim, service: ImageService
) -> None:
    image = _image("a")
    digest = sim.push(image, "t/app:1")
    ref = f"{sim.host_port}/t/app:1"
    assert service.pull_image(ref) == image.config_digest
    names = [r.name for r in service.store.list()]
    digest_ref = f"{sim.host_port}/t/app@{digest}"
    assert sorted(names) == sorted([image.config_digest, ref, digest_ref])
    assert all(r.managed and r.target.digest == digest for r in service.store.list())
    for query in (image.config_digest, ref, digest_ref):
        found, _ = service.image_status(query)
        assert found is not None
        assert found.id == image.config_digest
        assert found.repo_tags == (ref,)
        assert found.repo_digests == (digest_ref,)


@PROFILES
@pytest.mark.behavior("STORE-002", "CRI-001")
def test_re_pull_of_a_moved_tag_leaves_the_old_image_dangling(
    sim: RegistrySim, service: ImageService
) -> None:
    old, new = _image("old"), _image("new")
    old_digest = sim.push(old, "t/app:1")
    ref = f"{sim.host_port}/t/app:1"
    first = service.pull_image(ref)
    sim.push(new, "t/app:1")
    second = service.pull_image(ref)
    assert (first, second) == (old.config_digest, new.config_digest)  # F-32
    images = {i.id: i for i in service.list_images()}
    assert images[first].repo_tags == ()
    assert images[first].repo_digests == (f"{sim.host_port}/t/app@{old_digest}",)
    assert images[second].repo_tags == (ref,)


@pytest.mark.behavior("STORE-003")
@pytest.mark.parametrize(
    ("profile", "order"),
    [
        pytest.param(SEED, ["zeta", "alpha"], id="seed"),
        pytest.param(CONTAINERD_16, ["alpha", "zeta"], id="containerd-1.6"),
    ],
)
def test_repo_tags_order_follows_the_profile(
    sim: RegistrySim, service: ImageService, order: list[str]
) -> None:
    image = _image("o")
    for tag in ("zeta", "alpha"):
        sim.push(image, f"t/app:{tag}")
        service.pull_image(f"{sim.host_port}/t/app:{tag}")
    found, _ = service.image_status(image.config_digest)
    assert found is not None
    assert list(found.repo_tags) == [f"{sim.host_port}/t/app:{t}" for t in order]


@PROFILES
@pytest.mark.behavior("STORE-007")
def test_status_of_unknown_is_empty_and_verbose_has_chain_id_and_spec(
    sim: RegistrySim, service: ImageService
) -> None:
    assert service.image_status(f"{sim.host_port}/t/missing:1", True) == (None, {})
    image = _image("v", user="1000")
    sim.push(image, "t/app:1")
    service.pull_image(f"{sim.host_port}/t/app:1")
    found, info = service.image_status(image.config_digest, verbose=True)
    assert found is not None
    assert (found.uid, found.username) == (1000, "")
    body = json.loads(info["info"])
    assert body["chainID"] == chain_ids(image.diff_ids)[-1]
    assert body["imageSpec"] == json.loads(image.config)
    assert service.image_status(image.config_digest)[1] == {}


@PROFILES
@pytest.mark.behavior("STORE-008")
def test_remove_by_one_tag_removes_every_reference_and_collects_garbage(
    sim: RegistrySim, service: ImageService
) -> None:
    image = _image("r")
    for tag in ("1", "2"):
        sim.push(image, f"t/app:{tag}")
        service.pull_image(f"{sim.host_port}/t/app:{tag}")
    service.remove_image(f"{sim.host_port}/t/app:1")
    assert service.image_status(f"{sim.host_port}/t/app:2") == (None, {})
    assert service.list_images() == []
    assert service.store.list() == []
    assert service.content.list() == []
    assert service.snapshots.list() == []
    service.remove_image(f"{sim.host_port}/t/app:1")  # unknown: success


@PROFILES
@pytest.mark.behavior("STORE-010")
def test_list_returns_every_image_and_ignores_the_filter(
    sim: RegistrySim, service: ImageService
) -> None:
    ids = set()
    for nonce in ("x", "y"):
        image = _image(nonce)
        sim.push(image, f"t/{nonce}:1")
        ids.add(service.pull_image(f"{sim.host_port}/t/{nonce}:1"))
    assert {i.id for i in service.list_images()} == ids
    assert {i.id for i in service.list_images(f"{sim.host_port}/t/x:1")} == ids


@PROFILES
@pytest.mark.behavior("STORE-006")
def test_empty_image_string_acts_on_the_only_image_and_is_ambiguous_with_two(
    sim: RegistrySim, service: ImageService
) -> None:
    for nonce in ("x", "y"):
        sim.push(_image(nonce), f"t/{nonce}:1")
    only = service.pull_image(f"{sim.host_port}/t/x:1")
    found, _ = service.image_status("")
    assert found is not None
    assert found.id == only
    service.remove_image("")
    assert service.list_images() == []
    service.pull_image(f"{sim.host_port}/t/x:1")
    service.pull_image(f"{sim.host_port}/t/y:1")
    with pytest.raises(ServiceError) as info:
        service.image_status("")
    assert str(info.value) == 'can not resolve "" locally: ambiguous digest string'
    assert info.value.grpc_code == "UNKNOWN"


@pytest.mark.behavior("PULL-006", "STORE-009")
@pytest.mark.parametrize(
    "profile",
    [pytest.param(SEED, id="seed"), pytest.param(CONTAINERD_16, id="containerd-1.6")],
)
def test_failed_unpack_leaves_no_record_and_nothing_served(
    sim: RegistrySim, service: ImageService, profile: Profile
) -> None:
    image = _image("bad").with_wrong_diff_ids()
    sim.push(image, "t/bad:1")
    ref = f"{sim.host_port}/t/bad:1"
    with pytest.raises(ServiceError, match="wrong diff id calculated on extraction"):
        service.pull_image(ref)
    # The seed writes its record before unpack ends (PULL-006), but the reference
    # drops it when the pull fails: nothing of a failed pull is left (a Deviation).
    assert service.store.list() == []
    found, _ = service.image_status(ref)
    assert found is None
    assert service.list_images() == []
    # Nothing to recover after a restart either.
    restarted = _service(service.root, profile)
    try:
        assert restarted.list_images() == []
        assert restarted.startup_problems == []
    finally:
        restarted.close()


@PROFILES
@pytest.mark.behavior("ERR-001", "ERR-003")
def test_errors_carry_the_seed_wrapping_and_grpc_codes(
    sim: RegistrySim, service: ImageService
) -> None:
    cases = [
        ("UPPER/case", "UNKNOWN", 'failed to parse image reference "UPPER/case": '),
        (f"{sim.host_port}/t/missing:1", "NOT_FOUND",
         f'failed to pull and unpack image "{sim.host_port}/t/missing:1": '),
    ]  # fmt: skip
    sim.push(_image("m").with_digest_mismatch(0), "t/tampered:1")
    cases.append(
        (f"{sim.host_port}/t/tampered:1", "FAILED_PRECONDITION",
         f'failed to pull and unpack image "{sim.host_port}/t/tampered:1": ')
    )  # fmt: skip
    for ref, code, prefix in cases:
        with pytest.raises(ServiceError) as info:
            service.pull_image(ref)
        assert str(info.value).startswith(prefix), str(info.value)
        assert info.value.grpc_code == code, str(info.value)


def test_grpc_code_uses_the_innermost_classified_cause() -> None:
    inner = NotFound("x: not found")
    outer = ServiceError("failed to pull and unpack image: x: not found", cause=inner)
    assert grpc_code(outer) == "NOT_FOUND"
    assert grpc_code(ServiceError("no cause")) == "UNKNOWN"
    assert grpc_code(RuntimeError("boom: not found")) == "UNKNOWN"


@PROFILES
@pytest.mark.behavior("ERR-003")
def test_pull_errors_never_carry_passwords_or_signed_url_secrets(
    tmp_path: Path, profile: Profile
) -> None:
    service = _service(tmp_path, profile)
    try:
        with RegistrySim(auth=BasicAuth({"u": "right"})) as sim:
            sim.push(_image("s"), "t/app:1")
            with pytest.raises(ServiceError) as info:
                service.pull_image(
                    f"{sim.host_port}/t/app:1",
                    AuthConfig(username="u", password="TOPSECRET-PW"),
                )
            assert "TOPSECRET-PW" not in str(info.value)
        with (
            RegistrySim() as sim,
            RegistrySim(faults=[Fault(Match(path="/signed"), Status(403))]) as storage,
        ):
            image = _image("s2")
            sim.push(image, "t/app:1")
            layer = image.layer_descriptors[0]["digest"]
            sim.faults.add(
                Fault(
                    Match(path=f"/blobs/{layer}"),
                    Redirect(f"{storage.url}/signed?X-Amz-Signature=SECRET123"),
                )
            )
            with pytest.raises(ServiceError) as info:
                service.pull_image(f"{sim.host_port}/t/app:1")
            assert storage.journal.find(path="/signed")  # the secret URL was used
            assert "SECRET123" not in str(info.value)
    finally:
        service.close()


@PROFILES
@pytest.mark.behavior("CRI-005")
def test_registry_token_in_auth_does_not_change_the_pull(
    sim: RegistrySim, service: ImageService
) -> None:
    image = _image("tok")
    sim.push(image, "t/app:1")
    ref = f"{sim.host_port}/t/app:1"
    assert service.pull_image(ref, AuthConfig(registry_token="ignored")) == (
        image.config_digest
    )
    assert len(sim.journal) > 0
    assert len(sim.journal.find(auth=None)) == len(sim.journal)


@PROFILES
@pytest.mark.behavior("CRI-001")
def test_concurrent_pulls_of_one_image_share_downloads_and_list_one_image(
    sim: RegistrySim, service: ImageService
) -> None:
    """F-26: all succeed with the same image ref; each blob is fetched once."""
    image = _image("c")
    digest = sim.push(image, "t/app:1")
    refs = [f"{sim.host_port}/t/app:1"] * 8 + [f"{sim.host_port}/t/app@{digest}"] * 2
    results: list[str] = []
    errors: list[BaseException] = []

    def pull(ref: str) -> None:
        try:
            results.append(service.pull_image(ref))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=pull, args=(r,)) for r in refs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [image.config_digest] * 10
    assert [i.id for i in service.list_images()] == [image.config_digest]
    for blob in image.blobs:
        assert len(sim.journal.find(method="GET", path=f"/blobs/{blob}")) == 1


@PROFILES
def test_concurrent_pull_and_remove_converge_with_the_records(
    sim: RegistrySim, service: ImageService
) -> None:
    image = _image("pr")
    sim.push(image, "t/app:1")
    ref = f"{sim.host_port}/t/app:1"
    errors: list[BaseException] = []

    def puller() -> None:
        for _ in range(5):
            try:
                service.pull_image(ref)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    def remover() -> None:
        for _ in range(5):
            service.remove_image(ref)

    threads = [threading.Thread(target=puller), threading.Thread(target=remover)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    service.pull_image(ref)
    listed = service.list_images()
    assert [i.id for i in listed] == [image.config_digest]
    service.remove_image(ref)
    assert service.list_images() == []
    assert service.content.list() == []


@PROFILES
def test_image_fs_info_reports_snapshot_usage(
    sim: RegistrySim, service: ImageService
) -> None:
    empty = service.image_fs_info()
    sim.push(_image("fs"), "t/app:1")
    service.pull_image(f"{sim.host_port}/t/app:1")
    usage = service.image_fs_info()
    assert usage.used_bytes > empty.used_bytes
    assert usage.inodes_used > empty.inodes_used
    assert usage.mountpoint == str(service.snapshots.root)
