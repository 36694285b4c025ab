"""Opening content by descriptor (sans-IO) and streaming it into the store (FETCH-*)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

import refpull.pull._pipeline_io as pipeline_io
from refpull.content.manifests import Descriptor
from refpull.content.store import ContentStore
from refpull.errors import NotFound, PullError, RegistryError, TransportError
from refpull.mediatypes import DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST
from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.registry.fetch import (
    FetchExchange,
    Opened,
    ingest_ref,
    open_steps,
    render_registry_errors,
)
from refpull.registry.resolve import Reply
from refpull.settings.hosts import RegistryHost

PROFILES = pytest.mark.parametrize(
    "profile", [SEED, CONTAINERD_16], ids=["seed", "containerd-1.6"]
)
DATA = b"layer-bytes" * 1000
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()
LAYER = Descriptor(media_type=DOCKER_LAYER, digest=DIGEST, size=len(DATA))
MANIFEST = Descriptor(media_type=DOCKER_MANIFEST, digest=DIGEST, size=len(DATA))
M1 = RegistryHost(
    endpoint="http://127.0.0.1:5001", scheme="http", host="127.0.0.1:5001", path="/v2"
)
R = RegistryHost(
    endpoint="http://127.0.0.1:5000", scheme="http", host="127.0.0.1:5000", path="/v2"
)
Script = Callable[[FetchExchange], Reply | PullError]


def _run(
    script: Script, desc: Descriptor, profile: Profile, *, offset: int = 0
) -> tuple[Opened | PullError, list[FetchExchange]]:
    steps = open_steps(desc, "test/a", [M1, R], profile, offset=offset)
    seen: list[FetchExchange] = []
    try:
        exchange = next(steps)
        while True:
            seen.append(exchange)
            exchange = steps.send(script(exchange))
    except StopIteration as stop:
        return stop.value, seen
    except PullError as exc:
        return exc, seen


def _paths(seen: list[FetchExchange]) -> list[str]:
    return [
        f"{e.request.url.host}:{e.request.url.port}{e.request.url.path}" for e in seen
    ]


NOT_FOUND = Reply(404, "Not Found")


@pytest.mark.behavior("FETCH-001", "RES-005")
@pytest.mark.parametrize(
    ("profile", "outcome"),
    [
        pytest.param(SEED, "opened", id="seed-blobs-fallback"),
        pytest.param(CONTAINERD_16, "not-found", id="containerd-1.6-no-fallback"),
    ],
)
def test_manifest_only_under_blobs_is_found_only_by_the_seed(
    profile: Profile, outcome: str
) -> None:
    def script(ex: FetchExchange) -> Reply:
        return (
            Reply(200, "OK")
            if "/blobs/" in ex.request.url.path and ex.host_index == 1
            else NOT_FOUND
        )

    result, seen = _run(script, MANIFEST, profile)
    if outcome == "opened":
        assert isinstance(result, Opened)
        assert _paths(seen) == [
            f"127.0.0.1:5001/v2/test/a/manifests/{DIGEST}",
            f"127.0.0.1:5000/v2/test/a/manifests/{DIGEST}",
            f"127.0.0.1:5001/v2/test/a/blobs/{DIGEST}",
            f"127.0.0.1:5000/v2/test/a/blobs/{DIGEST}",
        ]
    else:
        assert isinstance(result, NotFound)
        assert (
            str(result)
            == f"content at http://127.0.0.1:5001/v2/test/a/manifests/{DIGEST} not found: not found"
        )
        assert len(seen) == 2


@pytest.mark.behavior("FETCH-002")
@pytest.mark.parametrize(
    ("profile", "opened"),
    [
        pytest.param(SEED, False, id="seed-aborts"),
        pytest.param(CONTAINERD_16, True, id="containerd-1.6-next-host"),
    ],
)
def test_blob_error_on_the_mirror(profile: Profile, opened: bool) -> None:
    def script(ex: FetchExchange) -> Reply:
        return (
            Reply(500, "Internal Server Error")
            if ex.host_index == 0
            else Reply(200, "OK")
        )

    result, _ = _run(script, LAYER, profile)
    assert isinstance(result, Opened) is opened
    if not opened:
        assert isinstance(result, RegistryError)
        assert result.status == 500


@PROFILES
@pytest.mark.behavior("FETCH-002")
def test_blob_missing_everywhere(profile: Profile) -> None:
    result, seen = _run(lambda ex: NOT_FOUND, LAYER, profile)
    assert (
        str(result)
        == f"could not fetch content descriptor {DIGEST} ({DOCKER_LAYER}) from remote: not found"
    )
    assert len(seen) == 2


@PROFILES
@pytest.mark.behavior("FETCH-003")
def test_fetch_request_headers(profile: Profile) -> None:
    _, seen = _run(
        lambda ex: Reply(200, "OK"),
        Descriptor(media_type=DOCKER_CONFIG, digest=DIGEST, size=1),
        profile,
    )
    headers = seen[0].request.headers
    assert headers["accept"] == f"{DOCKER_CONFIG}, */*"
    assert headers["user-agent"] == profile.user_agent
    assert headers["accept-encoding"] == "gzip"
    assert "range" not in headers
    assert "authorization" not in headers


@PROFILES
@pytest.mark.behavior("FETCH-004")
def test_foreign_urls_are_tried_first_and_404_falls_back(profile: Profile) -> None:
    desc = Descriptor(
        media_type=DOCKER_LAYER,
        digest=DIGEST,
        size=1,
        urls=("http://127.0.0.2:9000/layer?x=1",),
    )

    def script(ex: FetchExchange) -> Reply:
        return NOT_FOUND if ex.host_index is None else Reply(200, "OK")

    result, seen = _run(script, desc, profile)
    assert isinstance(result, Opened)
    assert seen[0].host_index is None
    assert str(seen[0].request.url) == "http://127.0.0.2:9000/layer?x=1"
    assert seen[1].host_index == 0


@PROFILES
@pytest.mark.behavior("FETCH-004")
@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(Reply(401, "Unauthorized"), id="401"),
        pytest.param(Reply(500, "Internal Server Error"), id="500"),
        pytest.param(TransportError("connection refused"), id="transport-error"),
    ],
)
def test_failing_foreign_url_falls_back_to_the_next_url_then_the_registry(
    profile: Profile, failure: Reply | PullError
) -> None:
    desc = Descriptor(
        media_type=DOCKER_LAYER,
        digest=DIGEST,
        size=1,
        urls=("http://127.0.0.2:9000/a", "https://127.0.0.3:9000/b"),
    )

    def script(ex: FetchExchange) -> Reply | PullError:
        return failure if ex.host_index is None else Reply(200, "OK")

    result, seen = _run(script, desc, profile)
    assert isinstance(result, Opened)
    assert [str(e.request.url) for e in seen[:2]] == list(desc.urls)
    assert [e.host_index for e in seen] == [None, None, 0]
    assert all("authorization" not in e.request.headers for e in seen[:2])


@pytest.mark.behavior("FETCH-004", "HOST-008")
def test_foreign_url_request_carries_no_configured_registry_headers() -> None:
    host = dataclasses.replace(R, headers=(("X-Registry-Key", "k"),))
    desc = Descriptor(
        media_type=DOCKER_LAYER, digest=DIGEST, size=1, urls=("http://127.0.0.2/a",)
    )
    steps = open_steps(desc, "test/a", [host], CONTAINERD_16)
    foreign = next(steps)
    registry = steps.send(NOT_FOUND)
    assert foreign.host_index is None
    assert "x-registry-key" not in foreign.request.headers
    assert foreign.request.headers["user-agent"] == CONTAINERD_16.user_agent
    assert registry.request.headers["x-registry-key"] == "k"


@pytest.mark.behavior("FETCH-004")
@PROFILES
@pytest.mark.parametrize(
    "url",
    [
        pytest.param("file:///etc/passwd", id="file"),
        pytest.param("ftp://127.0.0.2/layer", id="ftp"),
        pytest.param("unix:///run/containerd.sock", id="unix"),
    ],
)
def test_non_http_foreign_url_is_skipped_in_every_profile(
    profile: Profile, url: str
) -> None:
    desc = Descriptor(media_type=DOCKER_LAYER, digest=DIGEST, size=1, urls=(url,))
    result, seen = _run(lambda ex: Reply(200, "OK"), desc, profile)
    assert isinstance(result, Opened)
    assert [e.host_index for e in seen] == [0]
    assert all(e.request.url.scheme == "http" for e in seen)


@PROFILES
@pytest.mark.behavior("FETCH-005")
@pytest.mark.parametrize(
    ("headers", "outcome"),
    [
        pytest.param(
            {"Content-Range": "bytes 100-199/200"},
            Opened("http://127.0.0.1:5001/v2/test/a/blobs/" + DIGEST),
            id="matching-range",
        ),
        pytest.param(
            {},
            Opened("http://127.0.0.1:5001/v2/test/a/blobs/" + DIGEST, discard=100),
            id="no-range-discards",
        ),
        pytest.param(
            {"Content-Range": "bytes 0-199/200"},
            "unhandled content range in response: bytes 0-199/200",
            id="wrong-range",
        ),
    ],
)
def test_resume_sends_range_and_checks_content_range(
    profile: Profile, headers: dict[str, str], outcome: object
) -> None:
    result, seen = _run(
        lambda ex: Reply(206, "Partial Content", httpx.Headers(headers)),
        LAYER,
        profile,
        offset=100,
    )
    assert seen[0].request.headers["range"] == "bytes=100-"
    assert "accept-encoding" not in seen[0].request.headers
    assert (result if isinstance(result, Opened) else str(result)) == outcome


@pytest.mark.behavior("FETCH-007")
@pytest.mark.parametrize(
    ("body", "rendered"),
    [
        pytest.param(
            b'{"errors":[{"code":"DENIED","message":"nope"}]}',
            "denied: nope",
            id="known-code",
        ),
        pytest.param(
            b'{"errors":[{"code":"BLOB_UNKNOWN","message":"x"}]}',
            "unknown: x",
            id="unknown-code",
        ),
        pytest.param(
            b'{"errors":[{"code":"TOOMANYREQUESTS"}]}',
            "toomanyrequests",
            id="no-message",
        ),
        pytest.param(
            b'{"errors":[{"code":"DENIED","message":"a"},{"code":"UNAVAILABLE","message":"b"}]}',
            "errors:\ndenied: a\nunavailable: b\n",
            id="two",
        ),
        pytest.param(b'{"errors":[]}', None, id="empty-list"),
        pytest.param(b"<html>", None, id="not-json"),
    ],
)
def test_registry_error_bodies_render_like_containerd(
    body: bytes, rendered: str | None
) -> None:
    assert render_registry_errors(body) == rendered


@pytest.mark.behavior("FETCH-007")
def test_status_error_message_includes_the_server_message() -> None:
    reply = Reply(
        403,
        "Forbidden",
        httpx.Headers(),
        b'{"errors":[{"code":"DENIED","message":"nope"}]}',
    )
    result, _ = _run(lambda ex: reply, LAYER, SEED)
    assert (
        str(result)
        == f"unexpected status code http://127.0.0.1:5001/v2/test/a/blobs/{DIGEST}: 403 Forbidden - Server message: denied: nope"
    )


@pytest.mark.behavior("FETCH-008")
@pytest.mark.parametrize(
    ("media_type", "prefix"),
    [
        pytest.param(DOCKER_LAYER, "layer-", id="layer"),
        pytest.param(DOCKER_CONFIG, "config-", id="config"),
        pytest.param(DOCKER_MANIFEST, "manifest-", id="manifest"),
        pytest.param("application/x-odd", "unknown-", id="unknown"),
    ],
)
def test_ingest_refs_follow_make_ref_key(media_type: str, prefix: str) -> None:
    assert (
        ingest_ref(Descriptor(media_type=media_type, digest=DIGEST, size=1))
        == prefix + DIGEST
    )


class _Truncated(httpx.SyncByteStream):
    def __init__(self, data: bytes) -> None:
        self._data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self._data
        raise httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body"
        )


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    journal: list[httpx.Request] = []
    half = len(DATA) // 2

    def handle(request: httpx.Request) -> httpx.Response:
        journal.append(request)
        if "range" in request.headers:
            return httpx.Response(
                206,
                headers={"Content-Range": f"bytes {half}-{len(DATA) - 1}/{len(DATA)}"},
                content=DATA[half:],
            )
        return httpx.Response(
            200,
            headers={"Content-Length": str(len(DATA))},
            stream=_Truncated(DATA[:half]),
        )

    def make_client(
        host: RegistryHost, settings: object = None, environ: object = None
    ) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(handle))

    monkeypatch.setattr(pipeline_io, "make_client", make_client)
    return journal


@pytest.mark.behavior("FETCH-006")
@pytest.mark.parametrize(
    ("profile", "resumed"),
    [
        pytest.param(SEED, False, id="seed"),
        pytest.param(CONTAINERD_16, True, id="containerd-1.6"),
    ],
)
def test_body_cut_mid_stream_is_resumed_only_by_16(
    tmp_path: Path, served: list[httpx.Request], profile: Profile, resumed: bool
) -> None:
    store = ContentStore(tmp_path)
    with pipeline_io.Phase(
        [R], repository="test/a", profile=profile, settings=None, environ={}
    ) as phase:
        if resumed:
            assert pipeline_io.fetch_into_store(phase, store, LAYER, "test/a")
            assert store.read_bytes(DIGEST) == DATA
            assert served[1].headers["range"] == f"bytes={len(DATA) // 2}-"
        else:
            with pytest.raises(PullError, match=r"^failed to copy: unexpected EOF$"):
                pipeline_io.fetch_into_store(phase, store, LAYER, "test/a")
            assert not store.has(DIGEST)
            assert len(served) == 1
    # behaviors.md FETCH-005: the seed's broken ingest stays for a later resume.
    kept = any(p.is_file() for p in (tmp_path / "ingest").rglob("*"))
    assert kept is not resumed


@PROFILES
@pytest.mark.behavior("FETCH-005", "FETCH-006")
def test_broken_download_is_resumed_by_the_next_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, profile: Profile
) -> None:
    """A transfer that fails for good keeps its bytes; the next fetch asks for the rest."""
    half = len(DATA) // 2
    journal: list[httpx.Request] = []
    refuse_range = True

    def handle(request: httpx.Request) -> httpx.Response:
        journal.append(request)
        if "range" not in request.headers:
            return httpx.Response(
                200,
                headers={"Content-Length": str(len(DATA))},
                stream=_Truncated(DATA[:half]),
            )
        if refuse_range:  # the in-pull reopen of 1.6 (FETCH-006) fails
            return httpx.Response(503)
        content_range = f"bytes {half}-{len(DATA) - 1}/{len(DATA)}"
        return httpx.Response(
            206, headers={"Content-Range": content_range}, content=DATA[half:]
        )

    def make_client(
        host: RegistryHost, settings: object = None, environ: object = None
    ) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(handle))

    monkeypatch.setattr(pipeline_io, "make_client", make_client)
    store = ContentStore(tmp_path)
    with pipeline_io.Phase(
        [R], repository="test/a", profile=profile, settings=None, environ={}
    ) as phase:
        with pytest.raises(PullError, match=r"^failed to copy: unexpected EOF$"):
            pipeline_io.fetch_into_store(phase, store, LAYER, "test/a")
        assert not store.has(DIGEST)
        assert len(journal) == (2 if profile.fetch_auto_resume else 1)
        journal.clear()
        refuse_range = False
        assert pipeline_io.fetch_into_store(phase, store, LAYER, "test/a")
    assert store.read_bytes(DIGEST) == DATA
    assert [r.headers.get("range") for r in journal] == [f"bytes={half}-"]


class _Reset(httpx.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        yield DATA[:10]
        raise httpx.ReadError("[Errno 104] Connection reset by peer")


@PROFILES
@pytest.mark.behavior("FETCH-006")
def test_connection_reset_mid_body_is_not_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, profile: Profile
) -> None:
    """Only an early end of the body (unexpected EOF) is resumed, never a reset."""
    journal: list[httpx.Request] = []

    def make_client(
        host: RegistryHost, settings: object = None, environ: object = None
    ) -> httpx.Client:
        def handle(request: httpx.Request) -> httpx.Response:
            journal.append(request)
            headers = {"Content-Length": str(len(DATA))}
            return httpx.Response(200, headers=headers, stream=_Reset())

        return httpx.Client(transport=httpx.MockTransport(handle))

    monkeypatch.setattr(pipeline_io, "make_client", make_client)
    store = ContentStore(tmp_path)
    with (
        pipeline_io.Phase(
            [R], repository="test/a", profile=profile, settings=None, environ={}
        ) as phase,
        pytest.raises(
            TransportError, match=r"^failed to copy: \[Errno 104\] Connection reset"
        ),
    ):
        pipeline_io.fetch_into_store(phase, store, LAYER, "test/a")
    assert len(journal) == 1
    assert not store.has(DIGEST)


@PROFILES
@pytest.mark.behavior("FETCH-008")
def test_short_body_fails_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, profile: Profile
) -> None:
    def make_client(
        host: RegistryHost, settings: object = None, environ: object = None
    ) -> httpx.Client:
        return httpx.Client(
            transport=httpx.MockTransport(
                lambda r: httpx.Response(200, content=DATA[:-1])
            )
        )

    monkeypatch.setattr(pipeline_io, "make_client", make_client)
    store = ContentStore(tmp_path)
    message = (
        "failed to read expected number of bytes"
        if profile.short_read_message
        else "unexpected commit size"
    )
    with (
        pipeline_io.Phase(
            [R], repository="test/a", profile=profile, settings=None, environ={}
        ) as phase,
        pytest.raises(PullError, match=message),
    ):
        pipeline_io.fetch_into_store(phase, store, LAYER, "test/a")
    assert not store.has(DIGEST)
