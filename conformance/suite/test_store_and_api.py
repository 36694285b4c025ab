"""Store-wide lookups, CRI API versions and concurrent pulls.

Catalog areas STORE, CRI, FETCH (behaviors.md §13, §14); upstream findings F-26, F-29.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cri_conformance.scenario import Case
from cri_conformance.targets.base import Capability, TargetCrashed, TargetError
from cri_conformance.targets.cri import CRIClient
from registry_sim.faults import Drip, Fault, Match
from registry_sim.images import Image, Layer


@pytest.mark.behavior("STORE-006", "STORE-005")
def test_empty_image_name_matches_the_only_image(case: Case) -> None:
    """An empty name resolves the only image, and is ambiguous with two (STORE-006)."""
    if case.target.list():
        pytest.skip(
            "unsupported: STORE-006 needs an empty image store and this target has images"
        )
    first, second = case.image(salt="a"), case.image(salt="b")
    case.push(first, "a")
    case.push(second, "b")
    case.pull(case.ref("a"))
    only = case.status("")
    assert only is not None
    assert only.id == first.config_digest
    case.pull(case.ref("b"))
    with pytest.raises(TargetError):
        case.status("")
    case.target.remove(second.config_digest)
    case.target.remove("")
    assert case.target.list() == []


@pytest.mark.behavior("CRI-007")
def test_cri_api_versions_follow_the_profile(case: Case) -> None:
    """1.6 and 1.7 serve runtime.v1 and v1alpha2; the seed only v1alpha2, 2.x only v1."""
    client = getattr(case.target, "client", None)
    if not isinstance(client, CRIClient):
        pytest.skip("unsupported: the in-process target has no CRI endpoint")
    served = {}
    for api in ("v1", "v1alpha2"):
        try:
            CRIClient(client.endpoint, api=api).version()
        except TargetError as exc:
            served[api] = exc.code != "UNIMPLEMENTED"
        else:
            served[api] = True
    assert served["v1alpha2"] == (not case.since("containerd-2.0"))
    assert served["v1"] == case.since("containerd-1.6")


@pytest.mark.behavior("CRI-001", "FETCH-008")
def test_concurrent_pulls_of_one_image_agree(case: Case) -> None:
    """Four concurrent pulls of one image all succeed with the same ID (F-26)."""
    image = case.image(layers=3)
    case.push(image, "1")
    with ThreadPoolExecutor(max_workers=4) as pool:
        refs = list(pool.map(lambda _: case.pull(case.ref("1")), range(4)))
    assert set(refs) == {image.config_digest}
    info = case.status(case.ref("1"))
    assert info is not None
    assert info.id == image.config_digest


@pytest.mark.behavior("FETCH-008", "RES-013")
def test_present_content_is_not_downloaded_again(case: Case) -> None:
    """A second pull resolves again but downloads no blob (FETCH-008, RES-013)."""
    image = case.image(layers=2)
    case.push(image, "1")
    case.pull(case.ref("1"))
    case.world.journal.clear()
    case.pull(case.ref("1"))
    assert any("/manifests/" in ex.path for ex in case.exchanges())
    assert case.blob_gets() == []


@pytest.mark.behavior("STORE-009", "PULL-006")
def test_restart_after_a_kill_mid_pull_lists_no_broken_image(case: Case) -> None:
    """SIGKILL during a blob download, restart: nothing half-pulled is listed (F-29).

    The seed's own comment asks what happens when the client is killed mid-pull;
    a runtime must not come back serving an image whose content never arrived,
    and the same pull must then succeed.
    """
    case.require(Capability.RESTART)
    image = Image.schema2(
        [Layer.random(192 * 1024, seed=f"{case.nonce}-kill")], nonce=case.nonce
    )
    case.push(image, "1")
    layer = str(image.layer_descriptors[0]["digest"])
    case.world.add_fault(Fault(Match(path=layer + "$"), Drip(16 * 1024)))
    errors: list[BaseException] = []

    def pull() -> None:
        try:
            case.target.pull(case.ref("1"))
        except (TargetError, TargetCrashed) as exc:
            errors.append(exc)

    puller = threading.Thread(target=pull)
    puller.start()
    time.sleep(1.5)  # the layer is dripping now
    case.target.kill()  # type: ignore[attr-defined]
    puller.join(timeout=30)
    case.target.restart()  # type: ignore[attr-defined]
    assert errors, "the pull finished before the runtime was killed"
    assert case.status(case.ref("1")) is None
    assert image.config_digest not in {info.id for info in case.target.list()}
    case.world.faults().clear()
    assert case.pull(case.ref("1")) == image.config_digest
