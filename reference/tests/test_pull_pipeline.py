"""When layers are unpacked relative to their downloads, and which error wins (PULL-003).

Seed: every layer blob is downloaded, then the layers are unpacked. containerd 1.6:
the unpacker applies each layer as soon as its blob is committed, while later blobs
are still downloading. Either way the requests are the same, and a failed download
is the error a pull reports even when an earlier layer also fails to unpack.

The registry is an ``httpx.MockTransport`` handler patched in where refpull builds its
clients, so no socket is opened.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

import refpull.pull._pipeline_io as pipeline_io
from refpull.content.manifests import Platform
from refpull.errors import DiffIDMismatch, RegistryError
from refpull.mediatypes import DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST
from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.pull.puller import Puller
from refpull.settings.config import RegistryConfig, parse_config
from refpull.settings.hosts import RegistryHost
from refpull.unpack.snapshots import chain_ids

PROFILES = pytest.mark.parametrize(
    "profile", [SEED, CONTAINERD_16], ids=["seed", "containerd-1.6"]
)
REF = "127.0.0.1:5000/t/app:v1"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(name: str) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(name)
        tar.addfile(info, io.BytesIO(name.encode()))
    return gzip.compress(raw.getvalue(), mtime=0), _sha(raw.getvalue())


@dataclass
class _Registry:
    """One image (three layers); ``on_blob`` runs before a layer blob is answered."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    layers: list[str] = field(default_factory=list)
    diff_ids: list[str] = field(default_factory=list)
    manifest: bytes = b""
    fail: set[str] = field(default_factory=set)
    requested: list[str] = field(default_factory=list)
    on_blob: Callable[[int], None] = lambda index: None

    def build(self, *, wrong_first_diff_id: bool = False) -> None:
        for name in ("a", "b", "c"):
            blob, diff_id = _layer(name)
            self.blobs[_sha(blob)] = blob
            self.layers.append(_sha(blob))
            self.diff_ids.append(diff_id)
        diff_ids = list(self.diff_ids)
        if wrong_first_diff_id:
            diff_ids[0] = "sha256:" + "0" * 64
        rootfs = {"type": "layers", "diff_ids": diff_ids}
        config = json.dumps({"os": "linux", "architecture": "amd64", "rootfs": rootfs})
        self.blobs[_sha(config.encode())] = config.encode()
        self.manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST,
                "config": {
                    "mediaType": DOCKER_CONFIG,
                    "digest": _sha(config.encode()),
                    "size": len(config),
                },
                "layers": [
                    {"mediaType": DOCKER_LAYER, "digest": d, "size": len(self.blobs[d])}
                    for d in self.layers
                ],
            }
        ).encode()

    def handle(self, request: httpx.Request) -> httpx.Response:
        obj = request.url.path.rsplit("/", 1)[1]
        if "/manifests/" in request.url.path:
            headers = {
                "Content-Type": DOCKER_MANIFEST,
                "Docker-Content-Digest": _sha(self.manifest),
            }
            body = b"" if request.method == "HEAD" else self.manifest
            return httpx.Response(200, headers=headers, content=body)
        if obj in self.layers:
            self.requested.append(obj)
            self.on_blob(self.layers.index(obj))
        if obj in self.fail:
            return httpx.Response(500)
        return httpx.Response(200, content=self.blobs[obj])


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> _Registry:
    reg = _Registry()

    def make_client(
        host: RegistryHost, settings: object = None, environ: object = None
    ) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(reg.handle))

    monkeypatch.setattr(pipeline_io, "make_client", make_client)
    return reg


def _puller(root: Path, profile: Profile, mcd: int = 1) -> Puller:
    config = parse_config({"version": 2}, profile)
    config = RegistryConfig(**{**config.__dict__, "max_concurrent_downloads": mcd})
    platform = Platform(os="linux", architecture="amd64")
    return Puller(root=root, config=config, profile=profile, platform=platform)


@pytest.mark.behavior("PULL-003")
@PROFILES
def test_16_unpacks_a_layer_while_later_layers_download(
    tmp_path: Path, registry: _Registry, profile: Profile
) -> None:
    registry.build()
    puller = _puller(tmp_path, profile)
    first_chain = chain_ids(registry.diff_ids)[0]
    seen: list[bool] = []

    def on_blob(index: int) -> None:
        if index != 2:
            return
        # Hold the last layer's answer until the first layer is unpacked (1.6), or
        # long enough to show that it is not unpacked yet (seed).
        deadline = time.monotonic() + (5.0 if profile.deferred_layer_download else 0.3)
        while time.monotonic() < deadline:
            if puller.snapshots.exists(first_chain):
                break
            time.sleep(0.01)
        seen.append(puller.snapshots.exists(first_chain))

    registry.on_blob = on_blob
    puller.pull(REF)
    assert seen == [profile.deferred_layer_download]
    assert registry.requested == registry.layers  # the same requests, in layer order


@pytest.mark.behavior("PULL-003", "PULL-005")
@PROFILES
@pytest.mark.parametrize("mcd", [1, 3], ids=["one-at-a-time", "three"])
def test_a_failed_download_wins_over_an_earlier_unpack_error(
    tmp_path: Path, registry: _Registry, profile: Profile, mcd: int
) -> None:
    registry.build(wrong_first_diff_id=True)
    registry.fail.add(registry.layers[2])

    def on_blob(index: int) -> None:
        if index == 2:
            time.sleep(0.3)  # 1.6: the first layer's unpack has failed by now

    registry.on_blob = on_blob
    with pytest.raises(RegistryError) as info:
        _puller(tmp_path, profile, mcd).pull(REF)
    assert info.value.status == 500
    assert sorted(registry.requested) == sorted(registry.layers)


@pytest.mark.behavior("PULL-005")
@PROFILES
def test_an_unpack_error_is_reported_once_every_download_is_done(
    tmp_path: Path, registry: _Registry, profile: Profile
) -> None:
    registry.build(wrong_first_diff_id=True)
    with pytest.raises(DiffIDMismatch):
        _puller(tmp_path, profile, 1).pull(REF)  # one at a time: none cancelled
    assert sorted(registry.requested) == sorted(registry.layers)
