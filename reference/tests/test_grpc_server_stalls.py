"""A slow registry cannot freeze ``refpull serve`` (issue 12, finding 2).

A PullImage whose caller gives up (deadline, cancellation, server stop) stops its pull
and frees its worker; a transfer below the minimum rate fails; PullImage calls cannot
take every worker, so Version and ListImages answer while pulls stall; the socket is
0660 whatever the umask, and a live server's socket is never taken over.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from refpull.budget import TransferLimits
from refpull.cri.api import api_v1_pb2, api_v1_pb2_grpc
from refpull.cri.grpc_server import CRIServer, SocketInUse
from refpull.cri.service import ImageService, ServiceError
from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.settings.config import parse_config
from refpull.unpack.snapshots import SnapshotStore
from registry_sim.faults import Drip, Fault, Match
from registry_sim.images import Config, Image, Layer
from registry_sim.sim import RegistrySim


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # unix socket paths are limited to ~107 bytes; pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="rp-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def sim() -> Iterator[RegistrySim]:
    with RegistrySim() as registry:
        yield registry


def _image(nonce: str, size: int = 4096) -> Image:
    layer = Layer.from_files({"f.bin": os.urandom(size), "n.txt": nonce.encode()})
    return Image.schema2([layer], Config(), nonce=nonce)


def _trickle(sim: RegistrySim) -> None:
    """Every blob of repository ``slow`` comes one byte per second."""
    sim.faults.add(Fault(Match(method="GET", path="^/v2/slow/blobs/"), Drip(1)))


def _serve(directory: Path, profile: Any = CONTAINERD_16, **kw: Any) -> CRIServer:
    server = CRIServer(directory / "cri.sock", profile, **kw.pop("server", {})).start()
    server.attach(
        ImageService(
            directory / "root", parse_config({"version": 2}, profile), profile, **kw
        )
    )
    return server


class _Client:
    def __init__(self, socket_path: Path) -> None:
        self.channel = grpc.insecure_channel(f"unix://{socket_path}")
        self.images = api_v1_pb2_grpc.ImageServiceStub(self.channel)
        self.runtime = api_v1_pb2_grpc.RuntimeServiceStub(self.channel)

    def pull(self, image: str, timeout: float) -> Any:
        request = api_v1_pb2.PullImageRequest(image=api_v1_pb2.ImageSpec(image=image))
        return self.images.PullImage(request, timeout=timeout)

    def listed(self) -> set[str]:
        answer = self.images.ListImages(api_v1_pb2.ListImagesRequest(), timeout=5)
        return {tag for image in answer.images for tag in image.repo_tags}

    def version(self, timeout: float = 5) -> Any:
        return self.runtime.Version(api_v1_pb2.VersionRequest(), timeout=timeout)


def _ingests(root: Path) -> list[str]:
    ingest = root / "content" / "ingest"
    return sorted(p.name for p in ingest.iterdir()) if ingest.exists() else []


@pytest.mark.behavior("XPORT-010", "XPORT-011")
def test_expired_pulls_stop_and_the_other_rpcs_keep_answering(
    sim: RegistrySim, short_dir: Path
) -> None:
    """20 pulls from a trickling registry, 2 s deadlines: all stop, nothing starves."""
    slow, fast = _image("slow"), _image("fast")
    sim.push(slow, "slow:1")
    sim.push(fast, "fast:1")
    _trickle(sim)
    server = _serve(short_dir)
    client = _Client(server.socket_path)
    codes: list[grpc.StatusCode] = []

    def stalled(n: int) -> None:
        try:
            client.pull(f"{sim.host_port}/slow:1", timeout=2)
        except grpc.RpcError as exc:
            codes.append(exc.code())

    try:
        threads = [threading.Thread(target=stalled, args=(n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        started = time.monotonic()
        assert client.version().runtime_api_version == "v1"
        assert client.listed() == set()
        during = time.monotonic() - started
        for thread in threads:
            thread.join(30)
        assert set(codes) <= {
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        }
        assert len(codes) == 20
        # The stalled pulls have stopped: their ingests are gone within a poll or two.
        deadline = time.monotonic() + 5
        service = server.service
        assert service is not None
        while service._active and time.monotonic() < deadline:
            time.sleep(0.05)
        assert service._active == 0
        assert client.pull(f"{sim.host_port}/fast:1", timeout=20).image_ref == (
            fast.config_digest
        )
        assert client.listed() == {f"{sim.host_port}/fast:1"}
        assert during < 2.0, f"Version and ListImages took {during:.2f} s"
    finally:
        client.channel.close()
        server.stop(grace=None)


@pytest.mark.behavior("XPORT-011")
def test_pulls_over_the_limit_are_refused_and_leave_workers_free(
    sim: RegistrySim, short_dir: Path
) -> None:
    """max_pulls=2 and twelve stalled pulls: ten are refused at once, Version answers."""
    sim.push(_image("slow"), "slow:1")
    _trickle(sim)
    server = _serve(short_dir, server={"max_pulls": 2})
    client = _Client(server.socket_path)
    codes: list[grpc.StatusCode] = []

    def stalled(n: int) -> None:
        try:
            client.pull(f"{sim.host_port}/slow:{n}", timeout=4)
        except grpc.RpcError as exc:
            codes.append(exc.code())

    for n in range(12):
        sim.push(_image(f"slow-{n}"), f"slow:{n}")
    threads = [threading.Thread(target=stalled, args=(n,)) for n in range(12)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        started = time.monotonic()
        assert client.version(timeout=3).runtime_api_version == "v1"
        answered = time.monotonic() - started
        for thread in threads:
            thread.join(30)
    finally:
        client.channel.close()
        server.stop(grace=None)
    assert answered < 2.0, f"Version took {answered:.2f} s"
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 10
    assert codes.count(grpc.StatusCode.DEADLINE_EXCEEDED) == 2


@pytest.mark.behavior("XPORT-010")
def test_stopping_the_server_stops_a_stalled_pull_and_drops_its_ingest(
    sim: RegistrySim, short_dir: Path
) -> None:
    """Server stop cancels a running pull at once: no ingest, no record, no hang."""
    sim.push(_image("slow", size=1 << 16), "slow:1")
    _trickle(sim)
    server = _serve(short_dir)
    client = _Client(server.socket_path)
    errors: list[grpc.StatusCode] = []

    def stalled() -> None:
        try:
            client.pull(f"{sim.host_port}/slow:1", timeout=60)
        except grpc.RpcError as exc:
            errors.append(exc.code())

    thread = threading.Thread(target=stalled)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not _ingests(short_dir / "root") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _ingests(short_dir / "root"), "the pull never started its download"
    finally:
        started = time.monotonic()
        server.stop(grace=0.5)
        stopped = time.monotonic() - started
        thread.join(10)
        client.channel.close()
    assert stopped < 3.0, f"stop took {stopped:.2f} s"
    assert len(errors) == 1
    assert _ingests(short_dir / "root") == []
    # Reopened, the root holds no image of the stopped pull.
    service = ImageService(
        short_dir / "root", parse_config({"version": 2}, CONTAINERD_16), CONTAINERD_16
    )
    try:
        assert service.list_images() == []
    finally:
        service.close()


@pytest.mark.parametrize("profile", [SEED, CONTAINERD_16], ids=lambda p: p.name)
@pytest.mark.behavior("XPORT-012")
def test_a_transfer_below_the_minimum_rate_fails_and_says_so(
    sim: RegistrySim, tmp_path: Path, profile: Profile
) -> None:
    """1 byte/s against a 100 B/s rule over a 1.5 s window: the pull fails in seconds."""
    sim.push(_image("slow"), "slow:1")
    _trickle(sim)
    limits = TransferLimits(min_rate=100, min_rate_window=1.5)
    service = ImageService(
        tmp_path, parse_config({"version": 2}, profile), profile, limits=limits
    )
    started = time.monotonic()
    try:
        with pytest.raises(ServiceError) as raised:
            service.pull_image(f"{sim.host_port}/slow:1")
        assert "slower than 100 B/s for 1.5 s" in str(raised.value)
        assert "--min-rate" in str(raised.value)
        assert service.list_images() == []
    finally:
        service.close()
    assert time.monotonic() - started < 10


@pytest.mark.behavior("XPORT-012")
def test_a_pull_past_its_overall_timeout_fails_with_deadline_exceeded(
    sim: RegistrySim, tmp_path: Path
) -> None:
    """A trickle fast enough for the rate rule still ends at ``--pull-timeout``."""
    sim.push(_image("slow", size=1 << 20), "slow:1")
    sim.faults.add(Fault(Match(method="GET", path="^/v2/slow/blobs/"), Drip(4096)))
    limits = TransferLimits(pull_timeout=1.5, min_rate=1, min_rate_window=1)
    service = ImageService(
        tmp_path, parse_config({"version": 2}, CONTAINERD_16), CONTAINERD_16,
        limits=limits,
    )  # fmt: skip
    started = time.monotonic()
    try:
        with pytest.raises(ServiceError) as raised:
            service.pull_image(f"{sim.host_port}/slow:1")
        assert raised.value.grpc_code == "DEADLINE_EXCEEDED"
        assert "--pull-timeout" in str(raised.value)
    finally:
        service.close()
    assert time.monotonic() - started < 6


def test_the_socket_is_0660_even_with_umask_0(short_dir: Path) -> None:
    old = os.umask(0)
    try:
        server = CRIServer(short_dir / "cri.sock", CONTAINERD_16).start()
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE((short_dir / "cri.sock").stat().st_mode) == 0o660
    finally:
        server.stop(grace=None)


def test_a_live_servers_socket_is_refused_and_a_stale_one_replaced(
    short_dir: Path,
) -> None:
    path = short_dir / "cri.sock"
    first = CRIServer(path, CONTAINERD_16).start()
    try:
        with pytest.raises(SocketInUse, match="in use by a running server"):
            CRIServer(path, CONTAINERD_16)
        assert _Client(path).version().runtime_api_version == "v1"
    finally:
        first.stop(grace=None)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # a file nobody listens on, as a killed server leaves
    second = CRIServer(path, CONTAINERD_16).start()
    try:
        assert _Client(path).version().runtime_api_version == "v1"
    finally:
        second.stop(grace=None)


def test_state_directories_and_records_ignore_a_umask_of_0(tmp_path: Path) -> None:
    root = tmp_path / "new" / "root"
    old = os.umask(0)
    try:
        service = ImageService(
            root, parse_config({"version": 2}, CONTAINERD_16), CONTAINERD_16
        )
        service.close()
    finally:
        os.umask(old)

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(tmp_path / "new") == 0o711
    assert mode(root) == 0o711
    assert mode(root / "content") == 0o700
    assert mode(root / "snapshots") == 0o711
    assert mode(root / "snapshots" / "snapshots") == 0o711
    assert mode(root / "metadata.db") == 0o600


def test_a_snapshot_directory_ignores_a_umask_of_0(tmp_path: Path) -> None:
    snapshots = SnapshotStore(tmp_path / "root")
    old = os.umask(0)
    try:
        prepared = snapshots.prepare(None)
    finally:
        os.umask(old)
    # Committed by rename, so its mode is the published snapshot's.
    assert stat.S_IMODE(prepared.stat().st_mode) == 0o711
    assert stat.S_IMODE((prepared / "fs").stat().st_mode) == 0o755
