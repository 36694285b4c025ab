"""Stateful check: the ImageService's visible images always agree with a model.

Rules: pull (a tag to one of three images), remove, another client deleting a record
(the event monitor then reconciles it, STORE-009), damage (a layer blob or a snapshot
deleted behind the service's back, F-29), and restart. The puller is a fake that writes
real content and snapshot directories, so the store, index, readiness check and garbage
collection are the real ones. Settings come from the profile in ``HYPOTHESIS_PROFILE``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from refpull.content.manifests import Descriptor
from refpull.cri.records import update_image
from refpull.cri.service import ImageService
from refpull.digest import sha256_digest
from refpull.gocompat.imageref import parse_docker_ref
from refpull.mediatypes import DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST
from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.pull._pipeline_io import put_bytes
from refpull.pull.puller import ProgressEvent, PullResult
from refpull.settings.config import parse_config
from refpull.settings.credentials import AuthConfig
from refpull.unpack.snapshots import chain_ids

TAGS = ("r.io/a:1", "r.io/a:2", "r.io/b:1")


@dataclass(frozen=True)
class _Img:
    layer: bytes
    config: bytes
    manifest: bytes
    layer_desc: Descriptor
    config_desc: Descriptor
    target: Descriptor
    diff_id: str

    @property
    def id(self) -> str:
        return self.config_desc.digest


def _build(n: int) -> _Img:
    layer = f"layer {n}".encode()
    diff_id = sha256_digest(b"tar " + layer)
    layer_desc = Descriptor(
        media_type=DOCKER_LAYER, digest=sha256_digest(layer), size=len(layer)
    )
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "n": n,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    config_desc = Descriptor(
        media_type=DOCKER_CONFIG, digest=sha256_digest(config), size=len(config)
    )
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": config_desc.to_json(),
            "layers": [layer_desc.to_json()],
        }
    ).encode()
    target = Descriptor(
        media_type=DOCKER_MANIFEST, digest=sha256_digest(manifest), size=len(manifest)
    )
    return _Img(layer, config, manifest, layer_desc, config_desc, target, diff_id)  # fmt: skip


IMAGES = [_build(n) for n in range(3)]


class _FakePuller:
    """Writes an image's blobs and snapshot, emitting ``recorded`` like the puller."""

    def __init__(
        self, service: Callable[[], ImageService], serves: dict[str, int],
        progress: Callable[[ProgressEvent], None], profile: Profile,
    ) -> None:  # fmt: skip
        self.service, self.serves, self.progress = service, serves, progress
        self.profile = profile

    def pull(self, ref: str, auth: AuthConfig | None = None) -> PullResult:
        image = IMAGES[self.serves[ref]]
        svc = self.service()
        for desc, data in ((image.target, image.manifest), (image.config_desc, image.config),
                           (image.layer_desc, image.layer)):  # fmt: skip
            put_bytes(svc.content, desc, data)
        if not self.profile.record_after_unpack:
            self.progress(
                ProgressEvent("recorded", ref, image.target.digest, image.target.size)
            )
        chain = chain_ids([image.diff_id])[-1]
        svc.snapshots.path(chain).mkdir(parents=True, exist_ok=True)
        return PullResult(
            reference=parse_docker_ref(ref), target=image.target, manifest=image.target,
            config=image.config_desc, layers=(image.layer_desc,), diff_ids=(image.diff_id,),
            chain_id=chain, is_schema1=False,
            size=image.target.size + image.config_desc.size + image.layer_desc.size,
        )  # fmt: skip


class PullMachine(RuleBasedStateMachine):
    profile: Profile = SEED

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="refpull-stateful-"))
        self.serves: dict[str, int] = {}
        self.service = self._open()
        #: model: record name -> image number; damage kinds per image number.
        self.records: dict[str, int] = {}
        self.damage: dict[int, set[str]] = {}

    def _open(self) -> ImageService:
        profile = self.profile

        def factory(progress: Callable[[ProgressEvent], None]) -> _FakePuller:
            return _FakePuller(lambda: self.service, self.serves, progress, profile)

        return ImageService(
            self.root, parse_config({"version": 2}, profile), profile,
            puller_factory=factory,
        )  # fmt: skip

    def teardown(self) -> None:
        self.service.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def _names(self) -> list[str]:
        digests = [f"r.io/a@{i.target.digest}" for i in IMAGES]
        return [*TAGS, *(i.id for i in IMAGES), *digests]

    @rule(tag=st.sampled_from(TAGS), n=st.integers(0, len(IMAGES) - 1))
    def pull(self, tag: str, n: int) -> None:
        self.serves[tag] = n
        assert self.service.pull_image(tag) == IMAGES[n].id
        name = parse_docker_ref(tag).name
        for record in (IMAGES[n].id, tag, f"{name}@{IMAGES[n].target.digest}"):
            self.records[record] = n
        self.damage.pop(n, None)

    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from([*self._names(), ""]))
        target = self._model_resolve(name)
        if name == "" and len(self._model_images()) > 1:
            return  # ambiguous: covered by test_service
        self.service.remove_image(name)
        if target is not None:
            self.records = {k: v for k, v in self.records.items() if v != target}

    def _model_resolve(self, name: str) -> int | None:
        if name in self.records and not name.startswith("sha256:"):
            return self.records[name]
        ids = {IMAGES[n].id: n for n in self._model_images()}
        if name == "":
            return next(iter(ids.values())) if len(ids) == 1 else None
        return ids.get(name)

    def _model_images(self) -> set[int]:
        return set(self.records.values())

    @rule(data=st.data())
    def external_record_delete(self, data: st.DataObject) -> None:
        if not self.records:
            return
        name = data.draw(st.sampled_from(sorted(self.records)))
        self.service.store.delete(name)
        # The event monitor reconciles the name (cri updateImage, STORE-009).
        update_image(self.service.store, self.service.index, name, self.profile)
        del self.records[name]

    @rule(data=st.data(), kind=st.sampled_from(["layer", "snapshot"]))
    def external_damage(self, data: st.DataObject, kind: str) -> None:
        if not self.records:
            return
        n = data.draw(st.sampled_from(sorted(self._model_images())))
        image = IMAGES[n]
        if kind == "layer" and self.service.content.has(image.layer_desc.digest):
            self.service.content.delete(image.layer_desc.digest)
        else:
            self.service.snapshots.remove(chain_ids([image.diff_id])[-1])
            kind = "snapshot"
        self.damage.setdefault(n, set()).add(kind)

    @rule()
    def restart(self) -> None:
        self.service.close()
        self.service = self._open()

    def _ready(self, n: int) -> bool:
        damage = self.damage.get(n, set())
        if self.profile.deferred_layer_download:
            damage = damage - {"layer"}  # PULL-003: 1.6 may lack the layer blob
        return not damage

    @invariant()
    def visible_images_agree_with_the_model(self) -> None:
        want = set()
        for n in self._model_images():
            if not self._ready(n):
                continue
            names = [k for k, v in self.records.items() if v == n]
            tags = frozenset(
                k for k in names if "@" not in k and not k.startswith("sha256:")
            )
            digests = frozenset(k for k in names if "@" in k)
            want.add((IMAGES[n].id, tags, digests))  # fmt: skip
        got = {(i.id, frozenset(i.repo_tags), frozenset(i.repo_digests))
               for i in self.service.list_images()}  # fmt: skip
        assert got == want


class SeedMachine(PullMachine):
    profile = SEED


class Containerd16Machine(PullMachine):
    profile = CONTAINERD_16


_SETTINGS = settings(stateful_step_count=15, deadline=None)
TestSeedStore = SeedMachine.TestCase
TestSeedStore.settings = _SETTINGS
TestContainerd16Store = Containerd16Machine.TestCase
TestContainerd16Store.settings = _SETTINGS
