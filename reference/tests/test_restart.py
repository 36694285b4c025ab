"""Crash recovery: ``refpull serve`` killed with SIGKILL mid-pull, then restarted.

upstream-issues F-29(a): after a kill during a blob download and a restart, the image
is not listed, nothing half-written remains, and a re-pull succeeds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import grpc
import pytest

from refpull.cri.api import api_v1alpha2_pb2 as pb2
from refpull.cri.api import api_v1alpha2_pb2_grpc
from refpull.cri.images import ImageStore
from refpull.cri.service import ImageService
from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.settings.config import parse_config
from registry_sim.faults import Drip, Fault, Match
from registry_sim.images import Image, Layer
from registry_sim.sim import RegistrySim

PROFILES = pytest.mark.parametrize(
    "profile", [SEED, CONTAINERD_16], ids=["seed", "containerd-1.6"]
)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="rp-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class _Serve:
    """One ``refpull serve`` process."""

    def __init__(self, socket: Path, root: Path, profile: Profile) -> None:
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env["NO_PROXY"] = "localhost,127.0.0.1,::1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "refpull", "serve", "--listen", f"unix://{socket}",
             "--root", str(root), "--profile", profile.name],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != str(socket):  # pragma: no cover - diagnostics for a failed start
            self.proc.kill()
            raise AssertionError(f"serve did not start: {line!r} {self.proc.stderr}")
        self.channel = grpc.insecure_channel(f"unix://{socket}")
        stubs: ModuleType = api_v1alpha2_pb2_grpc
        self.images = stubs.ImageServiceStub(self.channel)

    def pull(self, ref: str, timeout: float = 30) -> str:
        request = pb2.PullImageRequest(image=pb2.ImageSpec(image=ref))
        return str(self.images.PullImage(request, timeout=timeout).image_ref)

    def listed(self) -> list[str]:
        response = self.images.ListImages(pb2.ListImagesRequest(), timeout=10)
        return [image.id for image in response.images]

    def kill(self) -> None:
        self.channel.close()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._close_pipes()

    def stop(self) -> int:
        self.channel.close()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=20)
        self._close_pipes()
        return code

    def _close_pipes(self) -> None:
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def _wait_for_ingest(root: Path, digest: str, deadline: float = 20.0) -> None:
    """Wait until the layer's ingest exists (its ``ref`` file names the digest)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        for ref in (root / "content" / "ingest").glob("*/ref"):
            try:
                if digest in ref.read_text():
                    return
            except FileNotFoundError:  # pragma: no cover - a blob just finished
                continue
        time.sleep(0.05)
    raise AssertionError("the layer download never started")  # pragma: no cover


@PROFILES
@pytest.mark.behavior("STORE-009", "PULL-006")
def test_kill_during_blob_download_leaves_nothing_listed_and_re_pull_works(
    short_dir: Path, profile: Profile
) -> None:
    socket, root = short_dir / "cri.sock", short_dir / "root"
    image = Image.schema2([Layer.random(256 * 1024, seed=1)], nonce=profile.name)
    layer = image.layer_descriptors[0]["digest"]
    with RegistrySim() as sim:
        sim.push(image, "t/app:1")
        ref = f"{sim.host_port}/t/app:1"
        sim.faults.add(Fault(Match(path=f"/blobs/{layer}"), Drip(16 * 1024)))
        first = _Serve(socket, root, profile)
        failed: list[BaseException] = []

        def pull() -> None:
            try:
                first.pull(ref)
            except grpc.RpcError as exc:
                failed.append(exc)

        thread = threading.Thread(target=pull)
        thread.start()
        try:
            _wait_for_ingest(root, layer)
        finally:
            first.kill()
            thread.join(timeout=30)
        assert len(failed) == 1
        assert list((root / "content" / "ingest").iterdir()) != []  # a leftover

        second = _Serve(socket, root, profile)
        try:
            assert second.listed() == []
        finally:
            assert second.stop() == 0
        store = ImageStore(root)
        try:
            assert store.list() == []  # no record of the unfinished pull
        finally:
            store.close()
        assert list((root / "content" / "ingest").iterdir()) == []
        assert list((root / "content" / "blobs").rglob("sha256/*")) == []
        assert not list((root / "snapshots" / "snapshots").glob("tmp-*"))

        sim.faults.clear()
        third = _Serve(socket, root, profile)
        try:
            assert third.pull(ref) == image.config_digest
        finally:
            assert third.stop() == 0
        fourth = _Serve(socket, root, profile)
        try:
            assert fourth.listed() == [image.config_digest]  # committed records persist
        finally:
            assert fourth.stop() == 0


@PROFILES
@pytest.mark.behavior("STORE-009")
def test_restart_does_not_serve_an_image_whose_content_or_snapshot_is_gone(
    tmp_path: Path, profile: Profile
) -> None:
    config = parse_config({"version": 2}, profile)
    images = [
        Image.schema2([Layer.from_files({"f": n.encode()})], nonce=n) for n in "ab"
    ]
    with RegistrySim() as sim:
        service = ImageService(tmp_path, config, profile)
        for n, image in zip("ab", images, strict=True):
            sim.push(image, f"t/{n}:1")
            service.pull_image(f"{sim.host_port}/t/{n}:1")
        service.close()
    broken_snapshot, broken_config = images
    chain = service.index.get(broken_snapshot.config_digest)
    assert chain is not None
    service.snapshots.remove(chain.chain_id)
    service.content.delete(broken_config.config_digest)
    (tmp_path / "snapshots" / "snapshots" / "tmp-leftover").mkdir()

    restarted = ImageService(tmp_path, config, profile)
    try:
        assert restarted.list_images() == []
        assert restarted.image_status(broken_snapshot.config_digest) == (None, {})
        problems = restarted.startup_problems
        assert any("snapshot" in p and "is missing" in p for p in problems)
        assert any("not found" in p for p in problems)
        assert not (tmp_path / "snapshots" / "snapshots" / "tmp-leftover").exists()
    finally:
        restarted.close()
