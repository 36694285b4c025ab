"""End-to-end pulls of the reference against a tiny in-memory registry.

The registry is an ``httpx.MockTransport`` handler patched in where refpull builds its
clients, so the whole pipeline (resolve, auth flow, fetch, store, unpack) runs without a
socket. It serves real gzip tar layers, a config and a manifest built per test.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

import refpull.pull._pipeline_io as pipeline_io
from refpull.content.manifests import Platform
from refpull.errors import DigestMismatch, NoMatchingPlatform, PullError, RegistryError
from refpull.mediatypes import DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST, OCI_INDEX
from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.pull.puller import ProgressEvent, Puller
from refpull.settings.config import RegistryConfig, parse_config
from refpull.settings.credentials import AuthConfig
from refpull.settings.hosts import RegistryHost

PROFILES = pytest.mark.parametrize(
    "profile", [SEED, CONTAINERD_16], ids=["seed", "containerd-1.6"]
)
HOST = "127.0.0.1:5000"
AMD64 = Platform(os="linux", architecture="amd64")


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(name: str, content: bytes) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), _sha(tar_bytes)


@dataclass
class Registry:
    """Blobs and manifests of one repository, plus a request journal."""

    repo: str = "t/app"
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    journal: list[httpx.Request] = field(default_factory=list)
    bearer: bool = False
    tokens_issued: int = 0
    tamper: set[str] = field(default_factory=set)
    fail: dict[str, int] = field(default_factory=dict)
    delay: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def image(self, files: dict[str, bytes], tag: str = "v1") -> dict[str, Any]:
        layers, diff_ids = [], []
        for name, content in files.items():
            blob, diff_id = _layer(name, content)
            self.blobs[_sha(blob)] = blob
            layers.append(
                {"mediaType": DOCKER_LAYER, "digest": _sha(blob), "size": len(blob)}
            )
            diff_ids.append(diff_id)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }
        ).encode()
        self.blobs[_sha(config)] = config
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST,
                "config": {
                    "mediaType": DOCKER_CONFIG,
                    "digest": _sha(config),
                    "size": len(config),
                },
                "layers": layers,
            }
        ).encode()
        self.manifests[tag] = self.manifests[_sha(manifest)] = (
            manifest,
            DOCKER_MANIFEST,
        )
        return {"manifest": manifest, "config": config, "layers": layers}

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.journal.append(request)
        path = request.url.path
        if path == "/token":
            self.tokens_issued += 1
            return httpx.Response(200, json={"token": f"tok{self.tokens_issued}"})
        if (
            self.bearer
            and request.headers.get("authorization", "").startswith("Bearer ") is False
        ):
            challenge = f'Bearer realm="http://{HOST}/token",service="reg",scope="repository:{self.repo}:pull"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        prefix = f"/v2/{self.repo}/"
        if not path.startswith(prefix):
            return httpx.Response(404)
        kind, _, obj = path[len(prefix) :].partition("/")
        if self.fail.get(obj):
            self.fail[obj] -= 1
            return httpx.Response(
                500, json={"errors": [{"code": "UNAVAILABLE", "message": "busy"}]}
            )
        if kind == "manifests" and obj in self.manifests:
            body, media_type = self.manifests[obj]
            headers = {
                "Content-Type": media_type,
                "Docker-Content-Digest": _sha(body),
                "Content-Length": str(len(body)),
            }
            return httpx.Response(
                200, headers=headers, content=b"" if request.method == "HEAD" else body
            )
        if kind == "blobs" and obj in self.blobs:
            return self._blob(obj)
        return httpx.Response(404)

    def _blob(self, digest: str) -> httpx.Response:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            body = self.blobs[digest]
            if digest in self.tamper:
                body = body[:-1] + bytes([body[-1] ^ 1])
            return httpx.Response(200, content=body)
        finally:
            with self.lock:
                self.in_flight -= 1

    def gets(self, kind: str) -> list[str]:
        return [
            r.url.path
            for r in self.journal
            if r.method == "GET" and f"/{kind}/" in r.url.path
        ]


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    reg = Registry()

    def make_client(
        host: RegistryHost, settings: object = None, environ: object = None
    ) -> httpx.Client:
        return httpx.Client(
            transport=httpx.MockTransport(reg.handle), follow_redirects=False
        )

    monkeypatch.setattr(pipeline_io, "make_client", make_client)
    return reg


def _puller(
    tmp_path: Path,
    profile: Profile,
    *,
    mcd: int = 3,
    events: list[ProgressEvent] | None = None,
) -> Puller:
    config = parse_config({"version": 2}, profile)
    config = RegistryConfig(**{**config.__dict__, "max_concurrent_downloads": mcd})
    sink: Callable[[ProgressEvent], None] = (
        events.append if events is not None else lambda e: None
    )
    return Puller(
        root=tmp_path, config=config, profile=profile, platform=AMD64, progress=sink
    )


def _ingest_leftovers(root: Path) -> list[Path]:
    ingest = root / "content" / "ingest"
    return [p for p in ingest.rglob("*") if p.is_file()] if ingest.exists() else []


@PROFILES
@pytest.mark.behavior("PULL-009", "RES-001", "FETCH-001", "FETCH-002")
def test_pull_of_a_tag_stores_and_unpacks_every_layer(
    tmp_path: Path, registry: Registry, profile: Profile
) -> None:
    image = registry.image({"a.txt": b"alpha", "b.txt": b"beta"})
    result = _puller(tmp_path, profile).pull(f"{HOST}/t/app:v1")
    assert result.image_id == _sha(image["config"])
    assert result.target.digest == _sha(image["manifest"])
    assert result.size == len(image["manifest"]) + len(image["config"]) + sum(
        layer["size"] for layer in image["layers"]
    )
    assert result.chain_id.startswith("sha256:")
    assert [r.method for r in registry.journal][:1] == ["HEAD"]


@PROFILES
@pytest.mark.behavior("PULL-009")
def test_image_without_layers_pulls_with_empty_chain(
    tmp_path: Path, registry: Registry, profile: Profile
) -> None:
    image = registry.image({})
    result = _puller(tmp_path, profile).pull(f"{HOST}/t/app:v1")
    assert result.layers == ()
    assert result.chain_id == ""
    assert result.size == len(image["manifest"]) + len(image["config"])


@PROFILES
@pytest.mark.behavior("RES-013", "PULL-011", "FETCH-008")
def test_repull_resolves_again_but_downloads_nothing(
    tmp_path: Path, registry: Registry, profile: Profile
) -> None:
    registry.image({"a.txt": b"alpha"})
    puller = _puller(tmp_path, profile)
    first = puller.pull(f"{HOST}/t/app:v1")
    registry.journal.clear()
    second = puller.pull(f"{HOST}/t/app:v1")
    assert second.image_id == first.image_id
    assert [(r.method, r.url.path) for r in registry.journal] == [
        ("HEAD", "/v2/t/app/manifests/v1")
    ]


@PROFILES
@pytest.mark.behavior("HOST-006", "CHAL-001", "TOKEN-006")
def test_resolve_and_fetch_phases_each_fetch_one_token(
    tmp_path: Path, registry: Registry, profile: Profile
) -> None:
    registry.bearer = True
    registry.image({"a.txt": b"alpha", "b.txt": b"beta"})
    _puller(tmp_path, profile).pull(f"{HOST}/t/app:v1")
    assert registry.tokens_issued == 2
    unauthenticated = [
        r.url.path
        for r in registry.journal
        if "authorization" not in r.headers and r.url.path != "/token"
    ]
    assert unauthenticated == [
        "/v2/t/app/manifests/v1",
        f"/v2/t/app/manifests/{registry.gets('manifests')[-1].rsplit('/', 1)[1]}",
    ]


@PROFILES
@pytest.mark.behavior("PULL-002")
@pytest.mark.parametrize(
    ("mcd", "bound"), [pytest.param(2, 2, id="two"), pytest.param(0, 6, id="unlimited")]
)
def test_concurrent_blob_downloads_stay_within_the_limit(
    tmp_path: Path, registry: Registry, profile: Profile, mcd: int, bound: int
) -> None:
    registry.image({f"f{i}": bytes([i]) * 10 for i in range(6)})
    registry.delay = 0.05
    _puller(tmp_path, profile, mcd=mcd).pull(f"{HOST}/t/app:v1")
    assert 1 <= registry.max_in_flight <= bound
    if mcd == 0:
        assert registry.max_in_flight > 2


@pytest.mark.behavior("PULL-003")
@pytest.mark.parametrize(
    ("profile", "fetched"),
    [
        pytest.param(SEED, 3, id="seed"),
        pytest.param(CONTAINERD_16, 1, id="containerd-1.6"),
    ],
)
def test_layers_below_an_existing_snapshot_are_not_downloaded_in_16(
    tmp_path: Path, registry: Registry, profile: Profile, fetched: int
) -> None:
    registry.image({"a": b"1", "b": b"2"}, tag="base")
    puller = _puller(tmp_path, profile)
    base = puller.pull(f"{HOST}/t/app:base")
    for layer in base.layers:
        puller.content.delete(layer.digest)
    image = registry.image({"a": b"1", "b": b"2", "c": b"3"}, tag="v1")
    registry.journal.clear()
    puller.pull(f"{HOST}/t/app:v1")
    layer_gets = [
        p
        for p in registry.gets("blobs")
        if p.rsplit("/", 1)[1] != _sha(image["config"])
    ]
    assert len(layer_gets) == fetched


@pytest.mark.behavior("PULL-006")
@pytest.mark.parametrize(
    ("profile", "recorded"),
    [
        pytest.param(SEED, True, id="seed"),
        pytest.param(CONTAINERD_16, False, id="containerd-1.6"),
    ],
)
def test_failed_unpack_leaves_a_record_only_in_the_seed(
    tmp_path: Path, registry: Registry, profile: Profile, recorded: bool
) -> None:
    image = registry.image({"a": b"1"})
    config = json.loads(image["config"])
    config["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
    new_config = json.dumps(config).encode()
    del registry.blobs[_sha(image["config"])]
    registry.blobs[_sha(new_config)] = new_config
    manifest = json.loads(image["manifest"])
    manifest["config"].update(digest=_sha(new_config), size=len(new_config))
    raw = json.dumps(manifest).encode()
    registry.manifests["v1"] = registry.manifests[_sha(raw)] = (raw, DOCKER_MANIFEST)
    events: list[ProgressEvent] = []
    with pytest.raises(PullError):
        _puller(tmp_path, profile, events=events).pull(f"{HOST}/t/app:v1")
    assert ("recorded" in [e.kind for e in events]) is recorded


@PROFILES
@pytest.mark.behavior("FETCH-008")
def test_tampered_layer_fails_with_digest_mismatch_and_leaves_no_ingest(
    tmp_path: Path, registry: Registry, profile: Profile
) -> None:
    image = registry.image({"a": b"payload"})
    registry.tamper.add(image["layers"][0]["digest"])
    with pytest.raises(DigestMismatch, match=r"unexpected commit digest") as info:
        _puller(tmp_path, profile).pull(f"{HOST}/t/app:v1")
    assert info.value.expected == image["layers"][0]["digest"]
    assert _ingest_leftovers(tmp_path) == []


@pytest.mark.behavior("FETCH-002")
@pytest.mark.parametrize(
    ("profile", "prefix"),
    [
        pytest.param(
            SEED, "failed to copy: httpReaderSeeker: failed open: ", id="seed"
        ),
        pytest.param(
            CONTAINERD_16,
            "failed to copy: httpReadSeeker: failed open: ",
            id="containerd-1.6",
        ),
    ],
)
def test_blob_5xx_fails_the_pull_with_the_server_message(
    tmp_path: Path, registry: Registry, profile: Profile, prefix: str
) -> None:
    image = registry.image({"a": b"x"})
    registry.fail[image["layers"][0]["digest"]] = 1
    with pytest.raises(RegistryError) as info:
        _puller(tmp_path, profile).pull(f"{HOST}/t/app:v1")
    assert str(info.value).startswith(prefix)
    assert str(info.value).endswith(
        "500 Internal Server Error - Server message: unavailable: busy"
    )
    assert _ingest_leftovers(tmp_path) == []


@PROFILES
@pytest.mark.behavior("RES-007")
def test_unknown_tag_fails_with_the_not_found_message(
    tmp_path: Path, registry: Registry, profile: Profile
) -> None:
    with pytest.raises(PullError) as info:
        _puller(tmp_path, profile).pull(f"{HOST}/t/app:nope")
    ref = f"{HOST}/t/app:nope"
    assert str(info.value) == f'failed to resolve reference "{ref}": {ref}: not found'


def _index(registry: Registry, entries: list[tuple[str, dict[str, Any]]]) -> None:
    manifests = [
        {
            "mediaType": DOCKER_MANIFEST,
            "digest": _sha(m["manifest"]),
            "size": len(m["manifest"]),
            "platform": {"os": "linux", "architecture": arch},
        }
        for arch, m in entries
    ]
    raw = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    ).encode()
    registry.manifests["multi"] = registry.manifests[_sha(raw)] = (raw, OCI_INDEX)


@PROFILES
@pytest.mark.behavior("PULL-001")
def test_index_pull_downloads_only_the_matching_platform(
    tmp_path: Path, registry: Registry, profile: Profile
) -> None:
    arm = registry.image({"arm": b"arm"}, tag="arm")
    amd = registry.image({"amd": b"amd"}, tag="amd")
    _index(registry, [("arm64", arm), ("amd64", amd)])
    result = _puller(tmp_path, profile).pull(f"{HOST}/t/app:multi")
    assert result.manifest.digest == _sha(amd["manifest"])
    assert arm["layers"][0]["digest"] not in " ".join(registry.gets("blobs"))


@pytest.mark.behavior("PULL-001")
@pytest.mark.parametrize(
    ("profile", "pulls"),
    [
        pytest.param(SEED, False, id="seed"),
        pytest.param(CONTAINERD_16, True, id="containerd-1.6"),
    ],
)
def test_386_only_index_pulls_on_amd64_only_in_16(
    tmp_path: Path, registry: Registry, profile: Profile, pulls: bool
) -> None:
    _index(registry, [("386", registry.image({"x": b"x"}, tag="x86"))])
    puller = _puller(tmp_path, profile)
    if pulls:
        assert puller.pull(f"{HOST}/t/app:multi").layers
        return
    with pytest.raises(
        NoMatchingPlatform, match=r"no match for platform in manifest: not found"
    ):
        puller.pull(f"{HOST}/t/app:multi")


@PROFILES
@pytest.mark.behavior("TOKEN-004")
def test_error_messages_never_contain_the_password(
    tmp_path: Path, registry: Registry, profile: Profile
) -> None:
    registry.image({"a": b"x"})
    registry.bearer = True
    original = registry.handle

    def deny_tokens(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            registry.journal.append(request)
            return httpx.Response(403)
        return original(request)

    registry.handle = deny_tokens  # type: ignore[method-assign]
    auth = AuthConfig(username="user", password="s3cr3t-pw")
    with pytest.raises(PullError) as info:
        _puller(tmp_path, profile).pull(f"{HOST}/t/app:v1", auth)
    assert "s3cr3t-pw" not in str(info.value)
    assert "failed to fetch oauth token: unexpected status: 403 Forbidden" in str(
        info.value
    )


@pytest.mark.behavior("CRI-001")
def test_cli_pull_prints_the_image_id(
    tmp_path: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    from refpull.__main__ import main

    image = registry.image({"a": b"x"})
    code = main(["pull", f"{HOST}/t/app:v1", "--root", str(tmp_path), "--json"])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.strip() == _sha(image["config"])
    kinds = [json.loads(line)["kind"] for line in captured.err.splitlines()]
    assert kinds[0] == "resolved"
    assert "unpacked" in kinds


def test_cli_pull_failure_is_one_line_and_exit_1(
    tmp_path: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    from refpull.__main__ import main

    code = main(["pull", f"{HOST}/t/app:missing", "--root", str(tmp_path), "--quiet"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "not found" in captured.err


@pytest.mark.behavior("RES-001", "FETCH-003")
def test_pull_over_a_real_loopback_socket(tmp_path: Path) -> None:
    """The unpatched transport against pytest-httpserver: one request per expectation."""
    from pytest_httpserver import HTTPServer
    from werkzeug import Response

    reg = Registry()
    image = reg.image({"a.txt": b"over the wire"})
    manifest, config = image["manifest"], image["config"]
    layer = image["layers"][0]["digest"]
    with HTTPServer(host="127.0.0.1", port=0) as server:
        base = "/v2/t/app"
        head_headers = {
            "Docker-Content-Digest": _sha(manifest),
            "Content-Type": DOCKER_MANIFEST,
        }
        head = Response(b"", headers=head_headers)
        head.headers["Content-Length"] = str(len(manifest))  # after werkzeug's own
        server.expect_ordered_request(
            f"{base}/manifests/v1", method="HEAD"
        ).respond_with_response(head)
        server.expect_ordered_request(
            f"{base}/manifests/{_sha(manifest)}", method="GET"
        ).respond_with_data(manifest, content_type=DOCKER_MANIFEST)
        # Config and layer downloads run concurrently (PULL-002): no order between them.
        server.expect_oneshot_request(
            f"{base}/blobs/{_sha(config)}", method="GET"
        ).respond_with_data(config)
        server.expect_oneshot_request(
            f"{base}/blobs/{layer}", method="GET"
        ).respond_with_data(reg.blobs[layer])
        ref = f"127.0.0.1:{server.port}/t/app:v1"
        result = _puller(tmp_path, SEED).pull(ref)
        server.check_assertions()
        first = server.log[0][0]
    assert result.image_id == _sha(config)
    assert first.headers["User-Agent"] == SEED.user_agent


@pytest.mark.behavior("RES-006")
@PROFILES
def test_mirror_dropping_the_connection_follows_the_profile(
    tmp_path: Path, registry: Registry, profile: Profile
) -> None:
    """A first mirror that drops the connection before answering (a transport error).

    The seed ends resolution there; containerd 1.6 moves on to the next host.
    """
    image = registry.image({"a.txt": b"through the mirror"})
    handle = registry.handle

    def dead_mirror(request: httpx.Request) -> httpx.Response:
        if request.url.port == 5001:
            registry.journal.append(request)
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response."
            )
        return handle(request)

    registry.handle = dead_mirror  # type: ignore[method-assign]
    config = parse_config({"version": 2}, profile)
    mirrors = {HOST: ("http://127.0.0.1:5001",)}
    config = RegistryConfig(**{**config.__dict__, "mirrors": mirrors})
    puller = Puller(root=tmp_path, config=config, profile=profile, platform=AMD64)
    ref = f"{HOST}/t/app:v1"
    if profile.resolve_falls_through_on_error:
        assert puller.pull(ref).image_id == _sha(image["config"])
    else:
        with pytest.raises(PullError) as info:
            puller.pull(ref)
        assert str(info.value) == (
            f'failed to resolve reference "{ref}": failed to do request: '
            "Head http://127.0.0.1:5001/v2/t/app/manifests/v1: "
            "Server disconnected without sending a response."
        )
    upstream = [(r.method, r.url.path) for r in registry.journal if r.url.port == 5000]
    assert registry.journal[0].url.port == 5001
    if profile.resolve_falls_through_on_error:
        assert upstream[0] == ("HEAD", "/v2/t/app/manifests/v1")
    else:
        assert upstream == []
