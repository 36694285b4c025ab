"""How a reference is resolved to a root descriptor: requests, headers, fallbacks, caps.

Catalog areas RES and XPORT-005 (behaviors.md §8, §10); upstream findings F-18, F-31.
Observed through the registry journal, the gRPC code and ImageStatus only.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from cri_conformance.profile_facts import profile_fact
from cri_conformance.scenario import Case
from registry_sim.faults import (
    CorruptBody,
    Custom,
    DropHeader,
    Fault,
    Match,
    Redirect,
    Status,
    WrongDigestHeader,
    WrongMediaType,
)
from registry_sim.images import Image, Schema1
from registry_sim.journal import Exchange
from registry_sim.wire import Headers, Request, Response

# behaviors.md RES-001; containerd@v1.6.20 remotes/docker/resolver.go Resolve
RESOLVE_ACCEPT = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "*/*",
    ]
)
# behaviors.md RES-008: MaxManifestSize = 4 * 1048 * 1048 (a typo'd 4 MiB).
MANIFEST_CAP = 4 * 1048 * 1048
MIRRORS = ("mirror-a.test", "mirror-b.test", "mirrored.test")


def _manifests(case: Case, *, host: str | None = None) -> list[Exchange]:
    return [ex for ex in case.exchanges(host=host) if "/manifests/" in ex.path]


def _calls(exchanges: list[Exchange]) -> list[tuple[str, str, int]]:
    return [(ex.method, ex.path, ex.status) for ex in exchanges]


def _listed(case: Case, image_id: str) -> bool:
    return any(info.id == image_id for info in case.target.list())


@pytest.mark.behavior("RES-001")
def test_tag_is_resolved_by_head_with_the_manifest_accept_list(case: Case) -> None:
    """The first request is ``HEAD manifests/<tag>`` with the exact Accept list."""
    image = case.image()
    case.push(image, "1")
    case.pull(case.ref("1"))
    first = case.exchanges()[0]
    assert (first.method, first.path) == ("HEAD", f"/v2/{case.repo}/manifests/1")
    assert first.header("Accept") == RESOLVE_ACCEPT
    assert (first.header("User-Agent") or "").startswith("containerd/")
    # Go adds Accept-Encoding only to non-HEAD requests (behaviors.md RES-001).
    assert first.header("Accept-Encoding") is None


@pytest.mark.behavior("RES-002")
def test_head_without_digest_header_falls_back_to_get(case: Case) -> None:
    """No ``Docker-Content-Digest`` on HEAD: the same URL is fetched with GET."""
    image = case.image()
    digest = case.push(image, "1")
    case.world.add_fault(
        Fault(
            Match(method="HEAD", path="/manifests/1$"),
            DropHeader("Docker-Content-Digest"),
        )
    )
    assert case.pull(case.ref("1")) == image.config_digest
    tag_path = f"/v2/{case.repo}/manifests/1"
    assert _calls(_manifests(case))[:2] == [
        ("HEAD", tag_path, 200),
        ("GET", tag_path, 200),
    ]
    info = case.status(case.ref("1"))
    assert info is not None
    # The digest now comes from hashing the body the GET returned.
    assert digest == "sha256:" + hashlib.sha256(image.manifest).hexdigest()
    assert list(info.repo_digests) == [case.ref(None, digest=digest)]


def _chunked_head(digest_header: str) -> Custom:
    """Answer a HEAD with *digest_header* and chunked framing: no ``Content-Length``.

    Go reads a HEAD answer's length from ``Content-Length`` alone, so a chunked one
    has ``ContentLength == -1`` (net/http transfer.go readTransfer).
    """

    def answer(request: Request, response: Response) -> Response:
        headers = response.headers.copy()
        headers.remove("Content-Length")
        headers.set("Docker-Content-Digest", digest_header)
        return Response(response.status, headers, iter(()))

    return Custom(answer)


@pytest.mark.behavior("RES-002")
def test_head_digest_without_content_length_is_not_trusted(case: Case) -> None:
    """A digest header on a HEAD without ``Content-Length`` is ignored: GET decides.

    The HEAD names the digest of an older image in the same repository (a stale
    cache, say); containerd trusts a header only with a length (resolver.go Resolve:
    ``dgstHeader != "" && size != -1``), so the tag's current manifest is fetched,
    hashed and pulled.
    """
    stale = case.image(salt="stale")
    stale_digest = case.push(stale, "0")
    image = case.image()
    digest = case.push(image, "1")
    assert stale_digest != digest
    case.world.add_fault(
        Fault(Match(method="HEAD", path="/manifests/1$"), _chunked_head(stale_digest))
    )
    assert case.pull(case.ref("1")) == image.config_digest
    tag_path = f"/v2/{case.repo}/manifests/1"
    manifests = _manifests(case)
    assert _calls(manifests) == [
        ("HEAD", tag_path, 200),
        ("GET", tag_path, 200),
        ("GET", f"/v2/{case.repo}/manifests/{digest}", 200),
    ], case.journal_text()
    assert manifests[0].bytes_announced is None  # the HEAD really had no length
    info = case.status(case.ref("1"))
    assert info is not None
    assert info.id == image.config_digest
    assert list(info.repo_digests) == [case.ref(None, digest=digest)]


@pytest.mark.behavior("RES-002", "S1-002")
def test_signed_schema1_fetched_by_get_is_digested_without_signatures(
    case: Case,
) -> None:
    """A signed schema1 digested from the GET body is hashed as its payload.

    The HEAD carries no digest, so the resolver hashes the GET body; for schema1 it
    strips the signatures first (S1-002), and the manifest is then fetched under
    the digest distribution gives it: the sha256 of the payload.
    """
    if case.since("containerd-2.0"):
        pytest.skip(
            f"unsupported: {case.profile} refuses schema1 manifests (S1-001; "
            "test_schema1.py::test_schema1_pull_follows_the_profile shows it)"
        )
    s1 = Schema1.signed([case.layer(0)], name=case.repo, tag="1", nonce=case.nonce)
    assert s1.digest != s1.body_digest  # the signatures change the hash
    assert case.push(s1, "1") == s1.digest
    case.world.add_fault(
        Fault(
            Match(method="HEAD", path="/manifests/1$"),
            DropHeader("Docker-Content-Digest"),
        )
    )
    assert case.pull(case.ref("1")).startswith("sha256:")
    tag_path = f"/v2/{case.repo}/manifests/1"
    assert _calls(_manifests(case)) == [
        ("HEAD", tag_path, 200),
        ("GET", tag_path, 200),
        ("GET", f"/v2/{case.repo}/manifests/{s1.digest}", 200),
    ], case.journal_text()


@pytest.mark.behavior("RES-003", "ERR-001")
def test_invalid_digest_header_ends_resolution_at_once(case: Case) -> None:
    """An invalid header digest is fatal: no GET, and later mirrors are never asked."""
    image = case.image()
    for host in MIRRORS:
        case.push(image, "1", host=host)
    case.world.add_fault(
        Fault(Match(path="/manifests/"), WrongDigestHeader("sha256:XYZ")),
        host="mirror-a.test",
    )
    error = case.pull_error(case.ref("1", host="mirrored.test"))
    assert error.code == "UNKNOWN"
    assert _calls(_manifests(case)) == [
        ("HEAD", f"/v2/{case.repo}/manifests/1", 200)
    ], case.journal_text()


@pytest.mark.behavior("RES-004")
def test_content_type_parameters_are_ignored(case: Case) -> None:
    """``; charset=…`` after the media type does not change the root type (RES-004)."""
    image = case.image()
    case.push(image, "1")
    served = image.media_type + "; charset=utf-8"
    case.world.add_fault(Fault(Match(path="/manifests/"), WrongMediaType(served)))
    assert case.pull(case.ref("1")) == image.config_digest


@pytest.mark.behavior("RES-004", "PULL-008", "ERR-001")
def test_unknown_root_type_is_fetched_then_fails_not_found(case: Case) -> None:
    """An unknown root type (``application/json``) is fetched, then fails NotFound."""
    image = case.image()
    digest = case.push(image, "1")
    case.world.add_fault(
        Fault(Match(path="/manifests/"), WrongMediaType("application/json"))
    )
    assert case.pull_error(case.ref("1")).code == "NOT_FOUND"
    # An unknown type is not a manifest type, so it is fetched like a blob.
    assert any(
        ex.method == "GET" and ex.path.endswith(digest) and ex.status == 200
        for ex in case.exchanges()
    ), case.journal_text()
    assert not _listed(case, image.config_digest)


@pytest.mark.behavior("RES-004", "ERR-001")
def test_root_without_content_type_is_an_invalid_argument(case: Case) -> None:
    """No Content-Type leaves the root media type empty: InvalidArgument, nothing listed.

    The image record needs a media type (containerd@v1.6.20 metadata/images.go
    validateImage: ``Target.MediaType must be set``).
    """
    image = case.image()
    case.push(image, "1")
    case.world.add_fault(Fault(Match(path="/manifests/"), DropHeader("Content-Type")))
    assert case.pull_error(case.ref("1")).code == "INVALID_ARGUMENT"
    assert not _listed(case, image.config_digest)


@pytest.mark.behavior("RES-005", "RES-007")
def test_digest_reference_tries_manifests_then_blobs_on_every_host(case: Case) -> None:
    """By digest: HEAD ``manifests/`` on each host, then HEAD ``blobs/`` on each."""
    digest = case.image().digest  # never pushed anywhere
    error = case.pull_error(case.ref(None, host="mirrored.test", digest=digest))
    assert error.code == "NOT_FOUND"
    seen = [
        (ex.method, ex.host, ex.path.rsplit("/", 2)[1])
        for ex in case.exchanges()
        if ex.path.endswith(digest)
    ]
    expected = [("HEAD", h, kind) for kind in ("manifests", "blobs") for h in MIRRORS]
    # The journal records requests on different connections as their answers
    # complete, which may swap neighbours; the per-host order is exact.
    assert sorted(seen) == sorted(expected), case.journal_text()
    for host in MIRRORS:
        kinds = [kind for _, seen_host, kind in seen if seen_host == host]
        assert kinds == ["manifests", "blobs"], case.journal_text()


@pytest.mark.behavior("RES-005", "FETCH-001")
def test_manifest_served_only_under_blobs_follows_the_profile(case: Case) -> None:
    """A manifest only under ``/blobs/`` pulls in the seed and fails in 1.6."""
    image = case.image()
    digest = case.push(image, None)
    case.world.sim.push_blob(case.repo, image.manifest)
    case.world.add_fault(Fault(Match(path="/manifests/"), Status(404)))
    case.world.add_fault(
        Fault(Match(path=f"/blobs/{digest}"), WrongMediaType(image.media_type))
    )
    ref = case.ref(None, digest=digest)
    if profile_fact(case.profile, "manifest_blob_fallback"):
        assert case.pull(ref) == image.config_digest
        assert any(
            ex.method == "GET" and ex.path.endswith(f"/blobs/{digest}")
            for ex in case.exchanges()
        )
    else:
        assert case.pull_error(ref).code == "NOT_FOUND"
        assert not _listed(case, image.config_digest)


@pytest.mark.behavior("RES-006", "EP-002")
@pytest.mark.parametrize(
    "action",
    [
        pytest.param(Status(500), id="status-500"),
        pytest.param(Status(401), id="status-401"),
    ],
)
def test_failing_first_mirror_follows_the_profile(case: Case, action: Status) -> None:
    """A failing first mirror aborts the seed; containerd 1.6 moves to the next host."""
    image = case.image()
    case.push(image, "1", host="mirror-b.test")
    case.world.add_fault(Fault(Match(path="/manifests/"), action), host="mirror-a.test")
    ref = case.ref("1", host="mirrored.test")
    if profile_fact(case.profile, "resolve_falls_through_on_error"):
        assert case.pull(ref) == image.config_digest
        assert _manifests(case, host="mirror-b.test")
    else:
        case.pull_error(ref)
        assert _manifests(case, host="mirror-b.test") == []
        assert _manifests(case, host="mirrored.test") == []


@pytest.mark.behavior("RES-006", "RES-007")
def test_not_found_moves_to_the_next_host(case: Case) -> None:
    """A 404 from a mirror moves on; when every host says 404 the code is NotFound."""
    error = case.pull_error(case.ref("1", host="mirrored.test"))
    assert error.code == "NOT_FOUND"
    heads = [(ex.method, ex.host) for ex in _manifests(case)]
    assert heads == [("HEAD", host) for host in MIRRORS]


def _padded(image: Image, total: int) -> bytes:
    """The OCI manifest of *image* padded with an annotation to *total* bytes."""
    doc = json.loads(image.manifest)
    doc["annotations"] = {"pad": ""}
    shortfall = total - len(json.dumps(doc).encode())
    doc["annotations"]["pad"] = "x" * shortfall
    data = json.dumps(doc).encode()
    assert len(data) == total
    return data


@pytest.mark.behavior("RES-008")
@pytest.mark.parametrize(
    ("size", "accepted"),
    [
        pytest.param(MANIFEST_CAP, True, id="at-cap"),
        pytest.param(MANIFEST_CAP + 1, False, id="one-byte-over"),
    ],
)
def test_root_manifest_size_cap(case: Case, size: int, accepted: bool) -> None:
    """A root manifest of 4,393,216 bytes pulls; one byte more is NotFound unfetched."""
    image = case.image(flavour="oci")
    data = _padded(image, size)
    for content in image.blobs.values():
        case.world.sim.push_blob(case.repo, content)
    case.world.sim.push_manifest(case.repo, "1", data, image.media_type)
    if accepted:
        assert case.pull(case.ref("1")) == image.config_digest
    else:
        assert case.pull_error(case.ref("1")).code == "NOT_FOUND"
        assert [ex.method for ex in _manifests(case)] == ["HEAD"]


@pytest.mark.behavior("RES-009", "CHAL-007")
def test_head_answered_405_is_retried_as_get(case: Case) -> None:
    """``405`` to a manifest HEAD switches to GET of the same URL (RES-009)."""
    image = case.image()
    case.push(image, "1")
    case.world.add_fault(Fault(Match(method="HEAD", path="/manifests/"), Status(405)))
    assert case.pull(case.ref("1")) == image.config_digest
    tag_path = f"/v2/{case.repo}/manifests/1"
    assert _calls(_manifests(case))[:2] == [
        ("HEAD", tag_path, 405),
        ("GET", tag_path, 200),
    ]


@pytest.mark.behavior("RES-011", "XPORT-005")
def test_resolve_follows_a_redirect_to_another_host_keeping_head(case: Case) -> None:
    """A redirected HEAD stays HEAD and the final answer resolves the tag."""
    image = case.image()
    case.push(image, "1", host="redirect.test")
    case.push(image, "1", host="upstream.test")
    case.world.add_fault(
        Fault(
            Match(method="HEAD", path="/manifests/1$"),
            Redirect("https://upstream.test{path}", 302),
        ),
        host="redirect.test",
    )
    assert case.pull(case.ref("1", host="redirect.test")) == image.config_digest
    upstream = _calls(_manifests(case, host="upstream.test"))
    assert upstream[0] == ("HEAD", f"/v2/{case.repo}/manifests/1", 200)


def _hop_chain(hops: int) -> Custom:
    """Redirect a request to itself with ``?hop=n+1`` until *hops* redirects were sent."""

    def redirect(request: Request, response: Response) -> Response:
        hop = int(request.query_value("hop") or 0)
        if hop >= hops:
            return response
        location = f"http://{request.host}{request.path}?hop={hop + 1}"
        return Response(302, Headers([("Location", location)]), b"")

    return Custom(redirect)


@pytest.mark.behavior("RES-011", "XPORT-005")
@pytest.mark.parametrize(
    ("hops", "follows"),
    [
        pytest.param(9, True, id="nine-redirects"),
        pytest.param(10, False, id="ten-redirects"),
    ],
)
def test_resolve_follows_at_most_ten_redirects(
    case: Case, hops: int, follows: bool
) -> None:
    """At most ten requests are made: a tenth redirect ends the pull.

    Go's default ``CheckRedirect`` (kept by containerd 1.6) stops "after 10
    consecutive requests", so nine redirects are followed and the tenth is refused.
    """
    image = case.image()
    case.push(image, "1")
    case.world.add_fault(
        Fault(Match(method="HEAD", path="/manifests/1$"), _hop_chain(hops))
    )
    if follows:
        assert case.pull(case.ref("1")) == image.config_digest
    else:
        assert case.pull_error(case.ref("1")).code == "UNKNOWN"
    heads = [ex for ex in _manifests(case) if ex.method == "HEAD"]
    assert len(heads) == min(hops + 1, 10)
    assert all(ex.method == "HEAD" for ex in heads)


@pytest.mark.behavior("RES-012", "FETCH-008", "ERR-001")
def test_manifest_not_matching_the_resolved_digest_is_refused(case: Case) -> None:
    """The manifest fetched for a tag must hash to the digest the HEAD named."""
    image = case.image()
    digest = case.push(image, "1")
    case.world.add_fault(
        Fault(Match(method="GET", path=f"/manifests/{digest}"), CorruptBody())
    )
    assert case.pull_error(case.ref("1")).code == "FAILED_PRECONDITION"
    assert not _listed(case, image.config_digest)


@pytest.mark.behavior("RES-013", "FETCH-008")
@pytest.mark.parametrize("by_digest", [False, True], ids=["by-tag", "by-digest"])
def test_repeated_pull_resolves_again_without_downloading(
    case: Case, by_digest: bool
) -> None:
    """A second pull still asks the registry, but downloads nothing (RES-013)."""
    image = case.image(layers=2)
    digest = case.push(image, "1")
    ref = case.ref(None, digest=digest) if by_digest else case.ref("1")
    case.pull(ref)
    case.world.journal.clear()
    assert case.pull(ref) == image.config_digest
    seen = case.exchanges()
    assert [ex.method for ex in seen] == ["HEAD"], case.journal_text()
    assert "/manifests/" in seen[0].path
