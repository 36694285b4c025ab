"""containerd's own pull and unpack advisories, replayed against any runtime.

Each case is named for its advisory, so the report tells an operator which known
advisories their runtime is still exposed to. The shapes come from the advisories'
descriptions and the fixes visible in containerd's source; affected versions:

* GHSA-c72p-9xmj-rx3w (CVE-2021-32760), containerd < 1.4.8 and 1.5.0-1.5.3: unpacking
  chmod'ed through a symlink (a hard link to a symlink entry, or a directory replaced
  by one), changing modes outside the root. PULL-013.
* GHSA-742w-89gc-8m9c (CVE-2020-15157), containerd < 1.2.14 (1.3.0 and later are not
  affected): the resolver sent the registry credentials to a foreign layer URL whose
  server answered 401 with a challenge. FETCH-004.
* GHSA-5j5w-g665-5m35 (CVE-2021-41190), containerd < 1.4.12 and 1.5.0-1.5.7: a document
  that is both a manifest and an index is read as whatever its Content-Type says, so two
  pullers of one digest can run different content. RES-014.

GHSA-ww5g-h6rh-8wm3 (named by the issue as a 2026 tar-extraction TOCTOU) is not
replayed: neither the archives' release notes nor their source name it, so its shape
could not be substantiated here.

Escapes aim at a canary under the case's own temp dir, checked afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cri_conformance.scenario import Case
from cri_conformance.targets.base import TargetError
from registry_sim.faults import Custom, Fault, Match
from registry_sim.hostile import Entry, ordered_layer
from registry_sim.images import Image, Layer
from registry_sim.sim import RegistrySim
from registry_sim.wire import Headers, Request, Response

ALICE = {"username": "alice", "password": "alice-secret"}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def _canary(tmp_path: Path) -> Path:
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "file").write_text("canary")
    os.chmod(canary / "file", 0o644)
    return canary


def _stat(path: Path) -> tuple[int, int, int, int]:
    st = os.lstat(path)
    return st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns


# -- GHSA-c72p-9xmj-rx3w ---------------------------------------------------------------


@pytest.mark.behavior("PULL-013")
@pytest.mark.parametrize("mode", [0o777, 0o4755], ids=["0777", "setuid"])
def test_ghsa_c72p_9xmj_rx3w_a_hard_link_to_a_symlink_is_not_chmod_through(
    case: Case, tmp_path: Path, mode: int
) -> None:
    """``link`` -> canary/file, then ``hard`` (a hard link to ``link``, *mode*): the
    canary file keeps its mode, owner and time."""
    canary = _canary(tmp_path)
    before = _stat(canary / "file")
    layer = ordered_layer(
        [
            Entry("link", "symlink", link=str(canary / "file"), mode=0o777),
            Entry("hard", "hardlink", link="link", mode=mode, uid=4242, gid=4242),
        ]
    )
    image = Image.schema2([layer], nonce=f"{case.nonce}-{mode:o}")
    case.push(image, "1")
    try:
        outcome = f"pulled {case.pull(case.ref('1'))}"
    except TargetError as exc:
        outcome = f"refused {exc.code}"
    assert _stat(canary / "file") == before, f"{outcome}; the canary file changed"


@pytest.mark.behavior("PULL-013")
def test_ghsa_c72p_9xmj_rx3w_a_directory_replaced_by_a_symlink_keeps_its_target(
    case: Case, tmp_path: Path
) -> None:
    """``d`` (0777), then ``d`` -> canary: the canary directory keeps its mode."""
    canary = _canary(tmp_path)
    before = _stat(canary)
    layer = ordered_layer(
        [Entry("d", "dir", mode=0o777), Entry("d", "symlink", link=str(canary))]
    )
    image = Image.schema2([layer], nonce=f"{case.nonce}-dir")
    case.push(image, "1")
    try:
        outcome = f"pulled {case.pull(case.ref('1'))}"
    except TargetError as exc:
        outcome = f"refused {exc.code}"
    assert _stat(canary) == before, f"{outcome}; the canary directory changed"


# -- GHSA-742w-89gc-8m9c ---------------------------------------------------------------


@pytest.fixture(scope="module")
def foreign_host() -> Iterator[RegistrySim]:
    """A loopback server standing in for the foreign-layer host of the advisory."""
    with RegistrySim() as sim:
        yield sim


def _challenge_everything(challenge: str) -> Custom:
    """401 with a registry-style challenge; a token for anyone asking its realm."""

    def answer(request: Request, response: Response) -> Response:
        if request.path.endswith("/token"):
            body = b'{"token":"foreign-token"}'
            return Response(200, Headers.of({"Content-Type": "application/json"}), body)
        headers = Headers.of(
            {
                "WWW-Authenticate": challenge,
                "Docker-Distribution-Api-Version": "registry/2.0",
            }
        )
        return Response(401, headers, b"{}")

    return Custom(answer)


@pytest.mark.behavior("FETCH-004", "AUTH-008")
@pytest.mark.parametrize("scheme", ["basic", "bearer"], ids=["basic", "bearer"])
def test_ghsa_742w_89gc_8m9c_a_challenging_foreign_url_gets_no_credentials(
    case: Case, foreign_host: RegistrySim, scheme: str
) -> None:
    """The layer names a foreign URL whose server answers 401 with a registry-style
    challenge (Basic, or Bearer with a realm on itself): it never receives the
    registry's credentials, neither in a header nor in a token POST."""
    foreign_host.reset()
    challenge = 'Basic realm="foreign"'
    if scheme == "bearer":
        challenge = f'Bearer realm="{foreign_host.url}/foreign/token",service="f"'
    foreign_host.faults.add(
        Fault(Match(path="/foreign/"), _challenge_everything(challenge))
    )
    url = f"{foreign_host.url}/foreign/{case.nonce}"
    image = case.image().with_descriptor(0, urls=[url])
    case.push(image, "1", host="basic.test")
    # Whether the pull then falls back to the registry is FETCH-004's other half.
    with contextlib.suppress(TargetError):
        case.pull(case.ref("1", host="basic.test"), auth=ALICE)
    seen = [ex for ex in foreign_host.journal.exchanges if "/foreign/" in ex.path]
    assert seen, "the foreign URL was never tried"
    assert [ex.header("Authorization") for ex in seen] == [None] * len(seen)
    assert [ex.method for ex in seen if ex.path.endswith("/token")] in ([], ["GET"])


# -- GHSA-5j5w-g665-5m35 ---------------------------------------------------------------


def _ambiguous(manifest: Image, other: Image, served_as: str) -> bytes:
    """*manifest*'s document plus a ``manifests`` list naming *other*."""
    doc = json.loads(manifest.manifest)
    doc["mediaType"] = served_as
    doc["manifests"] = [
        {
            "mediaType": other.media_type,
            "digest": other.digest,
            "size": other.size,
            "platform": {"architecture": "amd64", "os": "linux"},
        }
    ]
    return json.dumps(doc).encode()


@pytest.mark.behavior("RES-014")
@pytest.mark.parametrize(
    "served_as", [OCI_MANIFEST, OCI_INDEX], ids=["manifest", "index"]
)
def test_ghsa_5j5w_g665_5m35_a_document_both_manifest_and_index_is_refused(
    case: Case, served_as: str
) -> None:
    """One digest, two readings (config+layers, and manifests): the pull fails."""
    first = Image.oci([Layer.from_files({"a": case.nonce})], nonce=f"{case.nonce}-a")
    second = Image.oci([Layer.from_files({"b": case.nonce})], nonce=f"{case.nonce}-b")
    case.push(first, "first")
    case.push(second, "second")
    data = _ambiguous(first, second, served_as)
    case.world.sim.push_manifest(case.repo, "1", data, served_as)
    error = case.pull_error(case.ref("1"))
    assert error.code != "OK"
    assert case.status(case.ref("1")) is None
