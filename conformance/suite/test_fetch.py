"""How manifests and blobs are downloaded, verified, resumed and retried.

Catalog areas FETCH, CHAL-007/008 and XPORT-004/005 (behaviors.md §6, §9, §10);
upstream findings F-03, F-08, F-18, F-24. Observed through the registry journal (and
a loopback recorder for foreign URLs), the gRPC code and ImageStatus only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cri_conformance.profile_facts import profile_fact
from cri_conformance.scenario import Case
from cri_conformance.targets.base import TargetError
from registry_sim.faults import (
    CorruptBody,
    Custom,
    Fault,
    Match,
    Redirect,
    Status,
    Truncate,
)
from registry_sim.images import Image, Layer
from registry_sim.journal import Exchange
from registry_sim.sim import RegistrySim
from registry_sim.wire import Headers, Request, Response

ALICE = {"username": "alice", "password": "alice-secret"}
MIRRORS = ("mirror-a.test", "mirror-b.test", "mirrored.test")


@pytest.fixture(scope="module")
def recorder() -> Iterator[RegistrySim]:
    """A loopback HTTP server standing in for a foreign-URL host (FETCH-004)."""
    with RegistrySim() as sim:
        yield sim


@pytest.fixture
def fresh_recorder(recorder: RegistrySim) -> Iterator[RegistrySim]:
    recorder.reset()
    yield recorder
    recorder.check()


def _big_image(case: Case, size: int = 96 * 1024, salt: str = "") -> Image:
    """A one-layer image whose layer is large enough to cut in the middle."""
    seed = f"{case.nonce}-{case.repo}-big-{salt}"
    return Image.schema2([Layer.random(size, seed=seed)], nonce=seed)


def _layer_digest(image: Image, index: int = 0) -> str:
    return str(image.layer_descriptors[index]["digest"])


def _gets(case: Case, digest: str, *, host: str | None = None) -> list[Exchange]:
    return [
        ex
        for ex in case.exchanges(host=host)
        if ex.method == "GET" and ex.path.endswith(digest)
    ]


def _listed(case: Case, image_id: str) -> bool:
    return any(info.id == image_id for info in case.target.list())


# -- FETCH-001/002/003: where and how content is requested -------------------------


@pytest.mark.behavior("FETCH-003", "FETCH-001", "FETCH-002")
def test_content_requests_accept_their_media_type_then_anything(case: Case) -> None:
    """Manifest, config and layer GETs send ``Accept: <type>, */*`` and gzip."""
    image = case.image()
    digest = case.push(image, "1")
    case.pull(case.ref("1"))
    wanted = {
        f"/v2/{case.repo}/manifests/{digest}": image.media_type,
        f"/v2/{case.repo}/blobs/{image.config_digest}": image.config_descriptor[
            "mediaType"
        ],
        f"/v2/{case.repo}/blobs/{_layer_digest(image)}": image.layer_descriptors[0][
            "mediaType"
        ],
    }
    gets = {ex.path: ex for ex in case.exchanges() if ex.method == "GET"}
    assert set(wanted) <= set(gets), case.journal_text()
    for path, media_type in wanted.items():
        ex = gets[path]
        assert ex.header("Accept") == f"{media_type}, */*", path
        # FETCH-003: 2.x's fetcher asks for zstd and deflate too.
        encoding = "gzip"
        if case.since("containerd-2.0"):
            encoding = "zstd;q=1.0, gzip;q=0.8, deflate;q=0.5"
        assert ex.header("Accept-Encoding") == encoding, path
        assert (ex.header("User-Agent") or "").startswith("containerd/"), path


@pytest.mark.behavior("FETCH-001")
def test_manifest_404_on_a_mirror_moves_to_the_next_host(case: Case) -> None:
    """A 404 for ``manifests/<digest>`` moves the fetch to the next endpoint."""
    image = case.image()
    for host in ("mirror-a.test", "mirror-b.test"):
        digest = case.push(image, "1", host=host)
    case.world.add_fault(
        Fault(Match(method="GET", path=f"/manifests/{digest}"), Status(404)),
        host="mirror-a.test",
    )
    assert case.pull(case.ref("1", host="mirrored.test")) == image.config_digest
    assert _gets(case, digest, host="mirror-b.test")


@pytest.mark.behavior("FETCH-001", "FETCH-002", "CHAL-007")
@pytest.mark.parametrize("kind", ["manifest", "layer"])
def test_content_fetch_failure_on_a_mirror_follows_the_profile(
    case: Case, kind: str
) -> None:
    """A 500 while fetching aborts the seed; containerd 1.6 tries the next host. The
    mirror is asked once: 2.3 retries a server error only from the last host."""
    image = case.image()
    for host in ("mirror-a.test", "mirror-b.test"):
        digest = case.push(image, "1", host=host)
    broken = digest if kind == "manifest" else _layer_digest(image)
    case.world.add_fault(
        Fault(Match(method="GET", path=broken + "$"), Status(500)),
        host="mirror-a.test",
    )
    ref = case.ref("1", host="mirrored.test")
    if profile_fact(case.profile, "fetch_falls_through_on_error"):
        assert case.pull(ref) == image.config_digest
        assert _gets(case, broken, host="mirror-b.test")
    else:
        case.pull_error(ref)
        assert _gets(case, broken, host="mirror-b.test") == []
        assert not _listed(case, image.config_digest)
    assert len(_gets(case, broken, host="mirror-a.test")) == 1


@pytest.mark.behavior("FETCH-002", "ERR-001")
def test_layer_missing_everywhere_is_not_found(case: Case) -> None:
    """A layer every endpoint answers 404 for fails the pull with NotFound."""
    image = case.image()
    for host in MIRRORS:
        case.push(image, "1", host=host)
    layer = _layer_digest(image)
    for host in MIRRORS:
        case.world.add_fault(Fault(Match(path=layer + "$"), Status(404)), host=host)
    error = case.pull_error(case.ref("1", host="mirrored.test"))
    assert error.code == "NOT_FOUND"
    assert [ex.host for ex in _gets(case, layer)] == list(MIRRORS)
    assert not _listed(case, image.config_digest)


# -- FETCH-004: foreign URLs ---------------------------------------------------------


def _foreign(case: Case, url: str) -> Image:
    return case.image().with_descriptor(0, urls=[url])


@pytest.mark.behavior("FETCH-004", "AUTH-008")
def test_foreign_url_gets_no_credentials_and_404_falls_back(
    case: Case, fresh_recorder: RegistrySim
) -> None:
    """A foreign URL is tried without credentials; its 404 falls back to the registry."""
    url = f"{fresh_recorder.url}/foreign/{case.nonce}"
    image = _foreign(case, url)
    case.push(image, "1", host="basic.test")
    ref = case.ref("1", host="basic.test")
    assert case.pull(ref, auth=ALICE) == image.config_digest
    foreign = [ex for ex in fresh_recorder.journal.exchanges if "/foreign/" in ex.path]
    assert foreign, "the foreign URL was never tried"
    assert all(ex.auth is None for ex in foreign)
    assert all(ex.header("Authorization") is None for ex in foreign)
    assert _gets(case, _layer_digest(image), host="basic.test")


@pytest.mark.behavior("FETCH-004")
@pytest.mark.parametrize(
    "url",
    [
        pytest.param("file:///etc/hostname", id="file"),
        pytest.param("ftp://127.0.0.1:1/layer", id="ftp"),
    ],
)
def test_foreign_url_of_another_scheme_is_never_used(case: Case, url: str) -> None:
    """Non-http(s) foreign URLs are skipped: the layer comes from the registry."""
    image = _foreign(case, url)
    case.push(image, "1")
    assert case.pull(case.ref("1")) == image.config_digest
    assert _gets(case, _layer_digest(image))


@pytest.mark.behavior("FETCH-004")
def test_failing_foreign_url_falls_back_to_the_registry(
    case: Case, fresh_recorder: RegistrySim
) -> None:
    """A foreign URL answering 500 does not stop the registry from serving the layer."""
    url = f"{fresh_recorder.url}/foreign/{case.nonce}"
    fresh_recorder.faults.add(Fault(Match(path="/foreign/"), Status(500)))
    image = _foreign(case, url)
    case.push(image, "1")
    assert case.pull(case.ref("1")) == image.config_digest
    assert _gets(case, _layer_digest(image))


# -- FETCH-005/006: partial bodies ---------------------------------------------------


@pytest.mark.behavior("FETCH-006")
def test_body_cut_short_follows_the_profile(case: Case) -> None:
    """A layer cut mid-body fails the seed; containerd 1.6 resumes with a Range."""
    image = _big_image(case)
    case.push(image, "1")
    layer = _layer_digest(image)
    cut = 32 * 1024
    case.world.add_fault(
        Fault(Match(method="GET", path=layer + "$"), Truncate(at=cut), times=1)
    )
    if profile_fact(case.profile, "fetch_auto_resume"):
        assert case.pull(case.ref("1")) == image.config_digest
        ranges = [ex.header("Range") for ex in _gets(case, layer)]
        assert ranges[0] is None
        assert f"bytes={cut}-" in ranges[1:], case.journal_text()
    else:
        case.pull_error(case.ref("1"))
        assert not _listed(case, image.config_digest)


def _broken_then_retried(case: Case, attempt: int, cut: int) -> list[str | None]:
    """Break one download after *cut* bytes, pull again; the retry's Range headers."""
    image = _big_image(case, salt=str(attempt))
    case.push(image, str(attempt))
    layer = _layer_digest(image)
    # The body ends cleanly after `cut` bytes, so all of them reach the ingest; any
    # in-pull resume attempt (containerd 1.6, FETCH-006) is refused, failing the pull.
    case.world.add_fault(
        Fault(Match(method="GET", path=layer + "$", header=("Range", ".")), Status(503))
    )
    case.world.add_fault(
        Fault(Match(method="GET", path=layer + "$"), Truncate(at=cut), times=1)
    )
    case.pull_error(case.ref(str(attempt)))
    case.world.faults().clear()
    case.world.journal.clear()
    assert case.pull(case.ref(str(attempt))) == image.config_digest
    return [ex.header("Range") for ex in _gets(case, layer)]


@pytest.mark.behavior("FETCH-005")
def test_retry_after_a_failed_download_resumes_with_range(case: Case) -> None:
    """The pull after a broken download asks only for the bytes still missing.

    A partial ingest survives only until the runtime's garbage collector removes
    it (behaviors.md FETCH-005: timing-dependent), so the scenario is repeated a
    few times with fresh layers and must show the resume at least once.
    """
    cut = 32 * 1024
    seen: list[list[str | None]] = []
    for attempt in range(6):
        ranges = _broken_then_retried(case, attempt, cut)
        seen.append(ranges)
        assert ranges in ([None], [f"bytes={cut}-"]), seen
        if ranges == [f"bytes={cut}-"]:
            return
    pytest.fail(f"no retry asked for bytes={cut}-: {seen}")


def _answered_from_the_start(blob: bytes) -> Custom:
    """A 206 that ignores the Range asked for: the whole blob, labelled as such."""
    size = len(blob)

    def answer(request: Request, response: Response) -> Response:
        headers = Headers.of(
            {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"bytes 0-{size - 1}/{size}",
            }
        )
        return Response(206, headers, blob)

    return Custom(answer)


@pytest.mark.behavior("FETCH-005")
def test_resume_answered_at_another_offset_is_refused(case: Case) -> None:
    """A resumed download answered 206 from byte 0 fails; no byte of it is appended.

    The registry answers ``Range: bytes=N-`` with ``206`` and ``Content-Range: bytes
    0-…``: honest about what it sends, but not what was asked. Appending it after the
    N bytes already held would corrupt the blob, so the fetch refuses it when it opens
    (UNKNOWN: ``unhandled content range``, or in-pull the ``unexpected EOF`` it was
    resuming from), before verification could (that would be FAILED_PRECONDITION). The resume comes within the pull (FETCH-006) or, for a
    runtime that does not resume in-pull, on the next pull while its partial ingest
    lives (timing-dependent, so repeated with fresh layers).
    """
    cut = 32 * 1024
    in_pull = profile_fact(case.profile, "fetch_auto_resume")
    for attempt in range(6):
        image = _big_image(case, salt=f"range-{attempt}")
        case.push(image, f"r{attempt}")
        layer = _layer_digest(image)
        blob = image.blobs[layer]
        whole = blob.read_bytes() if isinstance(blob, Path) else blob
        case.world.add_fault(
            Fault(
                Match(method="GET", path=layer + "$", header=("Range", ".")),
                _answered_from_the_start(whole),
            )
        )
        case.world.add_fault(
            Fault(Match(method="GET", path=layer + "$"), Truncate(at=cut), times=1)
        )
        ref = case.ref(f"r{attempt}")
        if not in_pull:
            case.pull_error(ref)  # cut short: the seed fails, keeping N bytes
            case.world.journal.clear()
        error: TargetError | None = None
        try:
            case.pull(ref)
        except TargetError as exc:
            error = exc
        if error is not None:
            ranges = [ex.header("Range") for ex in _gets(case, layer)]
            assert ranges[-1] == f"bytes={cut}-", case.journal_text()
            assert error.code == "UNKNOWN", error
            assert not _listed(case, image.config_digest)
            return
        assert not in_pull, "the pull succeeded over a 206 from byte 0"
        # The partial ingest was gone: the whole blob came in one unranged GET.
        assert [ex.header("Range") for ex in _gets(case, layer)] == [None]
        case.world.faults().clear()
    pytest.fail("no retry resumed the partial ingest with a Range")


# -- FETCH-008: verification and de-duplication ----------------------------------------


@pytest.mark.behavior("FETCH-008", "ERR-001")
@pytest.mark.parametrize("which", ["layer", "config"])
def test_blob_with_wrong_digest_is_refused(case: Case, which: str) -> None:
    """A blob that does not hash to its digest fails FailedPrecondition, unlisted."""
    image = case.image().with_digest_mismatch(0 if which == "layer" else "config")
    case.push(image, "1")
    assert case.pull_error(case.ref("1")).code == "FAILED_PRECONDITION"
    assert not _listed(case, image.config_digest)
    assert case.status(case.ref("1")) is None


@pytest.mark.behavior("FETCH-008")
@pytest.mark.parametrize(
    "delta",
    [
        pytest.param(1, id="descriptor-too-large"),
        pytest.param(-1, id="descriptor-too-small"),
    ],
)
def test_blob_with_wrong_size_is_refused(case: Case, delta: int) -> None:
    """A layer whose size differs from its descriptor fails, and nothing is listed."""
    image = case.image().with_wrong_size(0, delta=delta)
    case.push(image, "1")
    case.pull_error(case.ref("1"))
    assert not _listed(case, image.config_digest)
    assert case.status(case.ref("1")) is None


@pytest.mark.behavior("FETCH-008")
def test_corrupted_transfer_is_refused(case: Case) -> None:
    """A layer corrupted on the wire fails FailedPrecondition (FETCH-008)."""
    image = case.image()
    case.push(image, "1")
    case.world.add_fault(
        Fault(Match(method="GET", path=_layer_digest(image) + "$"), CorruptBody())
    )
    assert case.pull_error(case.ref("1")).code == "FAILED_PRECONDITION"
    assert not _listed(case, image.config_digest)


@pytest.mark.behavior("FETCH-008", "PULL-003")
def test_layer_already_present_is_not_downloaded_again(case: Case) -> None:
    """A second image sharing a base layer downloads only its own layers."""
    base, top = case.layer(0), case.layer(1)
    first = Image.schema2([base], nonce=f"{case.nonce}-first")
    second = Image.schema2([base, top], nonce=f"{case.nonce}-second")
    case.push(first, "first")
    case.push(second, "second")
    case.pull(case.ref("first"))
    case.world.journal.clear()
    assert case.pull(case.ref("second")) == second.config_digest
    assert _gets(case, base.digest) == []
    assert _gets(case, top.digest)


# -- CHAL-007: status codes while fetching --------------------------------------------


@pytest.mark.behavior("CHAL-007")
@pytest.mark.parametrize(
    ("short", "succeeds"),
    [
        pytest.param(1, True, id="one-429-fewer-than-the-attempts"),
        pytest.param(0, False, id="a-429-for-every-attempt"),
    ],
)
def test_429_is_retried_up_to_the_attempt_budget(
    case: Case, short: int, succeeds: bool
) -> None:
    """429 answers are retried at once: six attempts in all, five from 2.3 (CHAL-007)."""
    budget = 5 if case.since("containerd-2.3") else 6
    times = budget - short
    image = case.image()
    case.push(image, "1")
    case.world.add_fault(
        Fault(Match(method="HEAD", path="/manifests/1$"), Status(429), times=times)
    )
    if succeeds:
        assert case.pull(case.ref("1")) == image.config_digest
    else:
        assert case.pull_error(case.ref("1")).code == "UNKNOWN"
    heads = [ex for ex in case.exchanges() if ex.method == "HEAD"]
    assert [ex.status for ex in heads] == [429] * times + [200] * short


@pytest.mark.behavior("CHAL-007", "ERR-001")
def test_server_error_on_a_blob_fails_the_pull(case: Case) -> None:
    """A 503 for a layer fails the pull Unknown: one request, two where the profile
    retries a server error from the last host once (2.3)."""
    image = case.image()
    case.push(image, "1")
    layer = _layer_digest(image)
    case.world.add_fault(Fault(Match(method="GET", path=layer + "$"), Status(503)))
    assert case.pull_error(case.ref("1")).code == "UNKNOWN"
    retried = profile_fact(case.profile, "server_errors_retried_on_last_host")
    assert len(_gets(case, layer)) == (2 if retried else 1)
    assert not _listed(case, image.config_digest)


# -- CHAL-008/XPORT-005: redirects to blob storage (SECURITY) -----------------------


@pytest.mark.behavior("CHAL-008", "XPORT-005")
@pytest.mark.parametrize("auth", [None, ALICE], ids=["anonymous", "credentials"])
def test_redirect_to_another_host_carries_no_authorization(
    case: Case, auth: dict[str, str] | None
) -> None:
    """Blob redirects to a storage host never carry the registry's token (SECURITY)."""
    registry = case.world.tokens["standard"].registry
    image = case.image()
    case.push(image, "1", host=registry)
    case.push(image, "1", host="blobstore.test")
    case.world.add_fault(
        Fault(
            Match(method="GET", path="/blobs/", header=("Authorization", "^Bearer ")),
            Redirect("https://blobstore.test{path}"),
        ),
        host=registry,
    )
    assert case.pull(case.ref("1", host=registry), auth=auth) == image.config_digest
    redirected = [ex for ex in case.exchanges(host=registry) if ex.status == 307]
    stored = case.exchanges(host="blobstore.test")
    assert redirected
    assert stored
    assert all(ex.auth is None for ex in stored), case.journal_text()


# -- XPORT-004: connections ------------------------------------------------------------


@pytest.mark.behavior("XPORT-004")
def test_fetch_phase_does_not_reuse_the_resolve_connection(case: Case) -> None:
    """Resolution and fetching use separate transports, hence separate connections."""
    image = case.image(layers=2)
    case.push(image, "1")
    case.pull(case.ref("1"))
    exchanges = case.exchanges()
    resolve = {ex.connection_id for ex in exchanges if ex.method == "HEAD"}
    fetch = {ex.connection_id for ex in exchanges if ex.method == "GET"}
    assert resolve
    assert fetch
    assert resolve.isdisjoint(fetch)
