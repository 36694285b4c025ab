"""The CRI gRPC endpoint: API versions, status codes and messages (CRI-006/007, ERR-*)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from refpull.cri.api import (
    api_v1_pb2,
    api_v1_pb2_grpc,
    api_v1alpha2_pb2,
    api_v1alpha2_pb2_grpc,
)
from refpull.cri.grpc_server import CRIServer, go_errorf
from refpull.cri.service import ImageService, PullerLike
from refpull.errors import NotFound, PullError
from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.pull.puller import ProgressEvent, PullResult
from refpull.settings.config import parse_config
from refpull.settings.credentials import AuthConfig
from registry_sim.images import Config, Image, Layer
from registry_sim.sim import RegistrySim

APIS = {
    "v1": (api_v1_pb2, api_v1_pb2_grpc),
    "v1alpha2": (api_v1alpha2_pb2, api_v1alpha2_pb2_grpc),
}
MIRROR_404 = (
    "content at http://127.0.0.1:1/v2/t/c/manifests/sha256:ab?ns=registry.test%3A5000"
    " not found: not found"
)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # unix socket paths are limited to ~107 bytes; pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="rp-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class _Client:
    def __init__(self, socket: Path, api: str) -> None:
        self.pb2, pb2_grpc = APIS[api]
        self.channel = grpc.insecure_channel(f"unix://{socket}")
        self.images = pb2_grpc.ImageServiceStub(self.channel)
        self.runtime = pb2_grpc.RuntimeServiceStub(self.channel)

    def pull(self, image: str, **auth: str) -> Any:
        request = self.pb2.PullImageRequest(image=self.pb2.ImageSpec(image=image))
        if auth:
            request.auth.CopyFrom(self.pb2.AuthConfig(**auth))
        return self.images.PullImage(request, timeout=30)

    def status(self, image: str, verbose: bool = False) -> Any:
        request = self.pb2.ImageStatusRequest(
            image=self.pb2.ImageSpec(image=image), verbose=verbose
        )
        return self.images.ImageStatus(request, timeout=30)


def _start(
    socket_dir: Path,
    profile: Profile,
    factory: Callable[[Callable[[ProgressEvent], None]], PullerLike] | None = None,
    *,
    attach: bool = True,
) -> CRIServer:
    server = CRIServer(socket_dir / "cri.sock", profile).start()
    if attach:
        server.attach(
            ImageService(
                socket_dir / "root",
                parse_config({"version": 2}, profile),
                profile,
                puller_factory=factory,
            )
        )
    return server


@pytest.fixture
def served(
    request: pytest.FixtureRequest, short_dir: Path
) -> Iterator[tuple[CRIServer, Path]]:
    server = _start(short_dir, request.param)
    yield server, short_dir / "cri.sock"
    server.stop(grace=None)


@pytest.mark.behavior("CRI-007")
@pytest.mark.parametrize(
    ("served", "apis"),
    [
        pytest.param(SEED, {"v1alpha2"}, id="seed"),
        pytest.param(CONTAINERD_16, {"v1", "v1alpha2"}, id="containerd-1.6"),
    ],
    indirect=["served"],
)
def test_the_profile_decides_which_cri_api_versions_are_served(
    served: tuple[CRIServer, Path], apis: set[str]
) -> None:
    _, socket = served
    for api in ("v1", "v1alpha2"):
        client = _Client(socket, api)
        try:
            if api in apis:
                version = client.runtime.Version(
                    client.pb2.VersionRequest(), timeout=10
                )
                assert version.runtime_api_version == api
                assert version.runtime_name == "refpull"
                continue
            with pytest.raises(grpc.RpcError) as info:
                client.runtime.Version(client.pb2.VersionRequest(), timeout=10)
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
            with pytest.raises(grpc.RpcError) as info:
                client.images.ListImages(client.pb2.ListImagesRequest(), timeout=10)
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        finally:
            client.channel.close()


@pytest.mark.behavior("CRI-007", "CRI-001", "STORE-007", "STORE-008", "STORE-010")
@pytest.mark.parametrize(
    ("served", "api"),
    [
        pytest.param(SEED, "v1alpha2", id="seed-v1alpha2"),
        pytest.param(CONTAINERD_16, "v1alpha2", id="containerd-1.6-v1alpha2"),
        pytest.param(CONTAINERD_16, "v1", id="containerd-1.6-v1"),
    ],
    indirect=["served"],
)
def test_image_rpcs_round_trip(served: tuple[CRIServer, Path], api: str) -> None:
    _, socket = served
    client = _Client(socket, api)
    pb2 = client.pb2
    try:
        with RegistrySim() as sim:
            image = Image.schema2(
                [Layer.from_files({"f": b"1"})], Config(user="app"), nonce="rt"
            )
            sim.push(image, "t/app:1")
            ref = f"{sim.host_port}/t/app:1"
            assert client.pull(ref).image_ref == image.config_digest
        status = client.status(ref, verbose=True)
        assert status.image.id == image.config_digest
        assert list(status.image.repo_tags) == [ref]
        assert status.image.username == "app"
        assert not status.image.HasField("uid")
        assert "chainID" in status.info["info"]
        listed = client.images.ListImages(pb2.ListImagesRequest(), timeout=10)
        assert [i.id for i in listed.images] == [image.config_digest]
        fs = client.images.ImageFsInfo(pb2.ImageFsInfoRequest(), timeout=10)
        assert fs.image_filesystems[0].used_bytes.value > 0
        client.images.RemoveImage(
            pb2.RemoveImageRequest(image=pb2.ImageSpec(image=ref)), timeout=10
        )
        assert not client.status(ref).HasField("image")
        client.images.RemoveImage(
            pb2.RemoveImageRequest(image=pb2.ImageSpec(image=ref)), timeout=10
        )
    finally:
        client.channel.close()


class _FailingPuller:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.auth: list[AuthConfig | None] = []

    def pull(self, ref: str, auth: AuthConfig | None = None) -> PullResult:
        self.auth.append(auth)
        raise self.error


@pytest.mark.behavior("ERR-001", "ERR-002")
@pytest.mark.parametrize(
    "profile", [SEED, CONTAINERD_16], ids=["seed", "containerd-1.6"]
)
@pytest.mark.parametrize(
    ("error", "code", "details"),
    [
        pytest.param(
            NotFound(MIRROR_404), grpc.StatusCode.NOT_FOUND,
            'failed to pull and unpack image "127.0.0.1:9/t/c:1": content at '
            "http://127.0.0.1:1/v2/t/c/manifests/sha256:ab?ns=registry.test%!A(MISSING)5000"
            " not found: not found",
            id="classified-message-is-mangled",
        ),
        pytest.param(
            PullError("unexpected status 500 for /x?q=a%3Ab"), grpc.StatusCode.UNKNOWN,
            'failed to pull and unpack image "127.0.0.1:9/t/c:1": '
            "unexpected status 500 for /x?q=a%3Ab",
            id="unknown-message-is-untouched",
        ),
    ],
)  # fmt: skip
def test_errors_map_to_grpc_codes_and_classified_text_is_a_format_string(
    short_dir: Path,
    profile: Profile,
    error: Exception,
    code: grpc.StatusCode,
    details: str,
) -> None:
    puller = _FailingPuller(error)
    server = _start(short_dir, profile, lambda progress: puller)
    client = _Client(short_dir / "cri.sock", "v1alpha2")
    try:
        with pytest.raises(grpc.RpcError) as info:
            client.pull("127.0.0.1:9/t/c:1", username="u", password="p")
        assert info.value.code() == code
        assert info.value.details() == details
        assert [a.username if a else None for a in puller.auth] == ["u"]
    finally:
        client.channel.close()
        server.stop(grace=None)


@pytest.mark.behavior("ERR-001")
def test_invalid_reference_is_unknown_with_the_parse_message(short_dir: Path) -> None:
    server = _start(short_dir, SEED)
    client = _Client(short_dir / "cri.sock", "v1alpha2")
    try:
        with pytest.raises(grpc.RpcError) as info:
            client.pull("Bad:Ref")
        assert info.value.code() == grpc.StatusCode.UNKNOWN
        assert str(info.value.details()).startswith(
            'failed to parse image reference "Bad:Ref": '
        )
    finally:
        client.channel.close()
        server.stop(grace=None)


@pytest.mark.behavior("CRI-006")
def test_image_rpcs_fail_until_the_service_is_initialized(short_dir: Path) -> None:
    server = _start(short_dir, CONTAINERD_16, attach=False)
    client = _Client(short_dir / "cri.sock", "v1")
    try:
        calls: list[Callable[[], Any]] = [
            lambda: client.pull("127.0.0.1:9/t/c:1"),
            lambda: client.images.ListImages(
                client.pb2.ListImagesRequest(), timeout=10
            ),
        ]
        for call in calls:
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert info.value.code() == grpc.StatusCode.UNKNOWN
            assert info.value.details() == "server is not initialized yet"
        version = client.runtime.Version(client.pb2.VersionRequest(), timeout=10)
        assert version.runtime_api_version == "v1"
    finally:
        client.channel.close()
        server.stop(grace=None)


@pytest.mark.behavior("ERR-002")
@pytest.mark.parametrize(
    ("text", "printed"),
    [
        pytest.param("ns=registry.test%3A5000", "ns=registry.test%!A(MISSING)5000", id="url-escape"),
        pytest.param("100%% sure", "100% sure", id="percent-percent"),
        pytest.param("%s and %d", "%!s(MISSING) and %!d(MISSING)", id="verbs"),
        pytest.param("%-08.3f", "%!f(MISSING)", id="flags-width-precision"),
        pytest.param("end %", "end %!(NOVERB)", id="trailing-percent"),
        pytest.param("%*d", "%!(BADWIDTH)%!d(MISSING)", id="star-width"),
        pytest.param("no verbs", "no verbs", id="plain"),
    ],
)  # fmt: skip
def test_go_errorf_prints_a_format_without_operands(text: str, printed: str) -> None:
    assert go_errorf(text) == printed
