"""The sans-IO resolver fed with scripted replies (RES-*)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import httpx
import pytest

from refpull.content.manifests import Descriptor
from refpull.errors import (
    ManifestTooLarge,
    NotFound,
    PullError,
    RegistryError,
    ResolveError,
    TransportError,
)
from refpull.gocompat.imageref import parse_docker_ref, split_registry_host
from refpull.mediatypes import DOCKER_MANIFEST, DOCKER_SCHEMA1_MANIFEST, RESOLVE_ACCEPT
from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.registry.resolve import (
    MAX_MANIFEST_SIZE,
    Exchange,
    Reply,
    manifest_media_type,
    resolve_steps,
)
from refpull.settings.hosts import RegistryHost

PROFILES = pytest.mark.parametrize(
    "profile", [SEED, CONTAINERD_16], ids=["seed", "containerd-1.6"]
)
BODY = b'{"schemaVersion":2}'
DIGEST = "sha256:" + hashlib.sha256(BODY).hexdigest()
MIRROR = RegistryHost(
    endpoint="http://127.0.0.1:5001", scheme="http", host="127.0.0.1:5001", path="/v2"
)
UPSTREAM = RegistryHost(
    endpoint="http://127.0.0.1:5000", scheme="http", host="127.0.0.1:5000", path="/v2"
)
Script = Callable[[Exchange], Reply | PullError]


def _ok(**headers: str) -> Reply:
    return Reply(200, "OK", httpx.Headers(headers))


def _run(
    script: Script,
    profile: Profile,
    ref: str = "127.0.0.1:5000/test/a:v1",
    hosts: tuple[RegistryHost, ...] = (UPSTREAM,),
) -> tuple[Descriptor | PullError, list[Exchange]]:
    image = parse_docker_ref(ref)
    steps = resolve_steps(
        image,
        split_registry_host(image),
        list(hosts),
        profile,
        strip_signature=lambda b: b[:-5],
    )
    seen: list[Exchange] = []
    try:
        exchange = next(steps)
        while True:
            seen.append(exchange)
            exchange = steps.send(script(exchange))
    except StopIteration as stop:
        return stop.value, seen
    except PullError as exc:
        return exc, seen


def _head_ok(ex: Exchange) -> Reply:
    return _ok(
        **{
            "Docker-Content-Digest": DIGEST,
            "Content-Length": str(len(BODY)),
            "Content-Type": DOCKER_MANIFEST,
        }
    )


@PROFILES
@pytest.mark.behavior("RES-001", "RES-002")
def test_tag_resolves_from_a_trusted_head(profile: Profile) -> None:
    result, seen = _run(_head_ok, profile)
    assert result == Descriptor(
        media_type=DOCKER_MANIFEST, digest=DIGEST, size=len(BODY)
    )
    (only,) = seen
    assert only.request.method == "HEAD"
    assert str(only.request.url) == "http://127.0.0.1:5000/v2/test/a/manifests/v1"
    assert only.request.headers.get_list("accept") == [RESOLVE_ACCEPT]
    assert only.request.headers["user-agent"] == profile.user_agent
    assert "accept-encoding" not in only.request.headers


@PROFILES
@pytest.mark.behavior("RES-002")
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Content-Length": "19"}, id="no-digest-header"),
        pytest.param({"Docker-Content-Digest": DIGEST}, id="no-length"),
    ],
)
def test_head_without_digest_and_length_falls_back_to_get(
    profile: Profile, headers: dict[str, str]
) -> None:
    def script(ex: Exchange) -> Reply:
        if ex.request.method == "HEAD":
            return _ok(**headers)
        return Reply(200, "OK", httpx.Headers({"Content-Type": DOCKER_MANIFEST}), BODY)

    result, seen = _run(script, profile)
    assert [e.request.method for e in seen] == ["HEAD", "GET"]
    assert seen[1].read_limit == MAX_MANIFEST_SIZE + 1
    assert result == Descriptor(
        media_type=DOCKER_MANIFEST, digest=DIGEST, size=len(BODY)
    )


@PROFILES
@pytest.mark.behavior("RES-002", "S1-002")
def test_schema1_digest_is_over_the_stripped_body(profile: Profile) -> None:
    signed = BODY + b"SIGN!"

    def script(ex: Exchange) -> Reply:
        return Reply(
            200,
            "OK",
            httpx.Headers({"Content-Type": "text/plain"}),
            signed if ex.request.method == "GET" else b"",
        )

    result, _ = _run(script, profile)
    assert isinstance(result, Descriptor)
    assert result.digest == DIGEST
    assert result.media_type == DOCKER_SCHEMA1_MANIFEST


@PROFILES
@pytest.mark.behavior("RES-003")
def test_invalid_digest_header_is_fatal(profile: Profile) -> None:
    def script(ex: Exchange) -> Reply:
        return _ok(**{"Docker-Content-Digest": "sha256:XYZ", "Content-Length": "10"})

    result, seen = _run(script, profile, hosts=(UPSTREAM, MIRROR))
    assert isinstance(result, ResolveError)
    assert (
        str(result)
        == '"sha256:XYZ" in header not a valid digest: invalid checksum digest length'
    )
    assert len(seen) == 1


@pytest.mark.behavior("RES-004")
@pytest.mark.parametrize(
    ("content_type", "media_type"),
    [
        pytest.param(
            "application/vnd.oci.image.index.v1+json; charset=utf-8",
            "application/vnd.oci.image.index.v1+json",
            id="params-cut",
        ),
        pytest.param("text/plain", DOCKER_SCHEMA1_MANIFEST, id="text-plain-is-schema1"),
        pytest.param("application/json ;x", "application/json ", id="no-trim"),
        pytest.param(None, "", id="missing"),
    ],
)
def test_content_type_interpretation(content_type: str | None, media_type: str) -> None:
    headers = httpx.Headers(
        {} if content_type is None else {"Content-Type": content_type}
    )
    assert manifest_media_type(headers) == media_type


@PROFILES
@pytest.mark.behavior("RES-005", "RES-007")
def test_digest_reference_tries_manifests_then_blobs_on_every_host(
    profile: Profile,
) -> None:
    ref = f"127.0.0.1:5000/test/a@{DIGEST}"
    result, seen = _run(
        lambda ex: Reply(404, "Not Found"), profile, ref=ref, hosts=(MIRROR, UPSTREAM)
    )
    assert [e.request.url.path for e in seen] == [
        f"/v2/test/a/manifests/{DIGEST}",
        f"/v2/test/a/manifests/{DIGEST}",
        f"/v2/test/a/blobs/{DIGEST}",
        f"/v2/test/a/blobs/{DIGEST}",
    ]
    assert [e.host_index for e in seen] == [0, 1, 0, 1]
    assert isinstance(result, NotFound)
    assert str(result) == f"{ref}: not found"


@PROFILES
@pytest.mark.behavior("RES-005")
def test_digest_reference_ignores_the_digest_header(profile: Profile) -> None:
    ref = f"127.0.0.1:5000/test/a@{DIGEST}"
    wrong = "sha256:" + "1" * 64
    result, _ = _run(
        lambda ex: _ok(**{"Docker-Content-Digest": wrong, "Content-Length": "19"}),
        profile,
        ref=ref,
    )
    assert isinstance(result, Descriptor)
    assert result.digest == DIGEST


@pytest.mark.behavior("RES-006", "RES-010")
@pytest.mark.parametrize(
    ("mirror", "seed_error", "containerd16_ok"),
    [
        pytest.param(
            Reply(500, "Internal Server Error"),
            "unexpected status code [manifests v1]: 500 Internal Server Error",
            True,
            id="500",
        ),
        pytest.param(
            TransportError("failed to do request: connection refused"),
            "failed to do request: connection refused",
            True,
            id="refused",
        ),
        pytest.param(
            Reply(401, "Unauthorized"),
            "unexpected status code [manifests v1]: 401 Unauthorized",
            True,
            id="401",
        ),
    ],
)
def test_failing_mirror_aborts_the_seed_and_falls_through_in_16(
    mirror: Reply | PullError, seed_error: str, containerd16_ok: bool
) -> None:
    def script(ex: Exchange) -> Reply | PullError:
        return mirror if ex.host_index == 0 else _head_ok(ex)

    seed, seen = _run(script, SEED, hosts=(MIRROR, UPSTREAM))
    assert isinstance(seed, PullError)
    assert str(seed) == seed_error
    assert len(seen) == 1
    modern, seen16 = _run(script, CONTAINERD_16, hosts=(MIRROR, UPSTREAM))
    assert isinstance(modern, Descriptor) is containerd16_ok
    assert [e.host_index for e in seen16] == [0, 1]


@pytest.mark.behavior("RES-006", "RES-010")
def test_16_reports_the_first_error_when_every_host_fails() -> None:
    result, _ = _run(
        lambda ex: (
            Reply(503, "Service Unavailable")
            if ex.host_index == 0
            else Reply(404, "Not Found")
        ),
        CONTAINERD_16,
        hosts=(MIRROR, UPSTREAM),
    )
    assert isinstance(result, RegistryError)
    assert (
        str(result)
        == "pulling from host 127.0.0.1:5001 failed with status code [manifests v1]: 503 Service Unavailable"
    )


@pytest.mark.behavior("RES-010")
def test_16_3xx_is_fatal_with_the_unexpected_wording() -> None:
    result, seen = _run(
        lambda ex: Reply(304, "Not Modified"), CONTAINERD_16, hosts=(MIRROR, UPSTREAM)
    )
    assert (
        str(result)
        == "pulling from host 127.0.0.1:5001 failed with unexpected status code [manifests v1]: 304 Not Modified"
    )
    assert len(seen) == 1


@PROFILES
@pytest.mark.behavior("RES-008")
@pytest.mark.parametrize(
    ("size", "ok"),
    [
        pytest.param(MAX_MANIFEST_SIZE, True, id="at-cap"),
        pytest.param(MAX_MANIFEST_SIZE + 1, False, id="over-cap"),
    ],
)
def test_manifest_size_cap_is_4393216_bytes(
    profile: Profile, size: int, ok: bool
) -> None:
    def script(ex: Exchange) -> Reply:
        return _ok(**{"Docker-Content-Digest": DIGEST, "Content-Length": str(size)})

    result, seen = _run(script, profile)
    assert MAX_MANIFEST_SIZE == 4_393_216
    assert len(seen) == 1  # no GET when the HEAD already says too large
    if ok:
        assert isinstance(result, Descriptor)
    else:
        assert isinstance(result, ManifestTooLarge)
        assert (
            str(result)
            == f"rejecting {size} byte manifest for 127.0.0.1:5000/test/a:v1: not found"
        )


@PROFILES
@pytest.mark.behavior("RES-008")
def test_oversized_manifest_on_one_host_falls_to_the_next(profile: Profile) -> None:
    def script(ex: Exchange) -> Reply:
        if ex.host_index == 0:
            return _ok(
                **{
                    "Docker-Content-Digest": DIGEST,
                    "Content-Length": str(MAX_MANIFEST_SIZE + 1),
                }
            )
        return _head_ok(ex)

    result, _ = _run(script, profile, hosts=(MIRROR, UPSTREAM))
    assert isinstance(result, Descriptor)


@PROFILES
@pytest.mark.behavior("RES-012", "HOST-003")
def test_the_first_host_that_answers_decides_the_digest(profile: Profile) -> None:
    other = "sha256:" + "2" * 64

    def script(ex: Exchange) -> Reply:
        digest = other if ex.host_index == 0 else DIGEST
        return _ok(**{"Docker-Content-Digest": digest, "Content-Length": "19"})

    result, seen = _run(script, profile, hosts=(MIRROR, UPSTREAM))
    assert isinstance(result, Descriptor)
    assert result.digest == other
    assert len(seen) == 1


@pytest.mark.behavior("HOST-007")
def test_mirror_requests_carry_ns_when_the_host_says_so() -> None:
    mirror = RegistryHost(
        endpoint="http://127.0.0.1:5111",
        scheme="http",
        host="127.0.0.1:5111",
        path="/v2",
        ns="registry.test:5000",
    )
    _, seen = _run(
        _head_ok, CONTAINERD_16, ref="registry.test:5000/test/a:v1", hosts=(mirror,)
    )
    assert (
        str(seen[0].request.url)
        == "http://127.0.0.1:5111/v2/test/a/manifests/v1?ns=registry.test%3A5000"
    )


@pytest.mark.behavior("HOST-008")
def test_configured_headers_are_added_and_accept_replaced() -> None:
    host = RegistryHost(
        endpoint="http://127.0.0.1:5000",
        scheme="http",
        host="127.0.0.1:5000",
        path="/v2",
        headers=(("X-Test", "1"), ("Accept", "x/y")),
    )
    _, seen = _run(_head_ok, CONTAINERD_16, hosts=(host,))
    headers = seen[0].request.headers
    assert headers["x-test"] == "1"
    assert headers.get_list("accept") == ["x/y"]
