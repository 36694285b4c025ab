"""Which manifest of an index is pulled, how many downloads run at once, and how
layers are checked and unpacked.

Catalog area PULL (behaviors.md §11); upstream finding F-27. Observed through the
registry journal, the gRPC code and ImageStatus/ListImages only (plus, for unsafe
archives, the absence of files outside the runtime's snapshot directories).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cri_conformance.profile_facts import profile_fact
from cri_conformance.scenario import Case
from registry_sim.faults import Custom, Fault, Match
from registry_sim.images import Config, FileSpec, Image, Index, Layer, Platform, Schema1
from registry_sim.wire import Request, Response

AMD64 = Config(architecture="amd64")
ARM64 = Config(architecture="arm64")
I386 = Config(architecture="386")


def _platform_image(case: Case, salt: str, config: Config = AMD64) -> Image:
    """An image with its own layer (index children must not share blobs here)."""
    layer = Layer.random(512, seed=f"{case.nonce}-{case.repo}-{salt}")
    return Image.schema2([layer], config, nonce=f"{case.nonce}-{case.repo}-{salt}")


def _listed(case: Case, image_id: str) -> bool:
    return any(info.id == image_id for info in case.target.list())


def _fetched(case: Case, image: Image) -> bool:
    """Whether any of *image*'s manifest, config or layers was downloaded."""
    digests = {
        image.digest,
        image.config_digest,
        *(str(d["digest"]) for d in image.layer_descriptors),
    }
    return any(
        ex.method == "GET" and ex.path.rsplit("/", 1)[-1] in digests
        for ex in case.exchanges()
    )


# -- PULL-001: platform selection -------------------------------------------------------


@pytest.mark.behavior("PULL-001")
@pytest.mark.parametrize("flavour", ["oci", "docker"])
def test_only_the_host_platform_manifest_is_downloaded(
    case: Case, flavour: str
) -> None:
    """From ``[arm64, amd64]`` only the amd64 manifest, config and layers are fetched."""
    arm64 = _platform_image(case, "arm64", ARM64)
    amd64 = _platform_image(case, "amd64", AMD64)
    build = Index.oci if flavour == "oci" else Index.docker_list
    case.push(build([arm64, amd64]), "multi")
    assert case.pull(case.ref("multi")) == amd64.config_digest
    assert _fetched(case, amd64)
    assert not _fetched(case, arm64), case.journal_text()


@pytest.mark.behavior("PULL-001", "ERR-001")
def test_index_without_a_matching_platform_is_not_found(case: Case) -> None:
    """An index with no entry for the host platform fails NotFound."""
    arm64 = _platform_image(case, "arm64", ARM64)
    s390x = _platform_image(case, "s390x", Config(architecture="s390x"))
    case.push(Index.oci([arm64, s390x]), "multi")
    assert case.pull_error(case.ref("multi")).code == "NOT_FOUND"
    assert not _fetched(case, arm64)
    assert not _fetched(case, s390x)


@pytest.mark.behavior("PULL-001")
def test_index_with_only_386_follows_the_profile(case: Case) -> None:
    """On amd64, a 386-only index is NotFound in the seed and pulled by containerd 1.6;
    2.3's transfer service never downloads the 386 entry its CRI then picks: NotFound."""
    i386 = _platform_image(case, "386", I386)
    case.push(Index.oci([i386]), "multi")
    if profile_fact(case.profile, "amd64_platform_fallbacks") and not profile_fact(
        case.profile, "transfer_fetches_exact_platform_entries"
    ):
        assert case.pull(case.ref("multi")) == i386.config_digest
    else:
        assert case.pull_error(case.ref("multi")).code == "NOT_FOUND"


@pytest.mark.behavior("PULL-001")
def test_amd64_is_preferred_over_an_earlier_386_entry(case: Case) -> None:
    """With ``[386, amd64]`` the amd64 entry wins; 386 is at best a fallback."""
    i386 = _platform_image(case, "386", I386)
    amd64 = _platform_image(case, "amd64", AMD64)
    case.push(Index.oci([i386, amd64]), "multi")
    assert case.pull(case.ref("multi")) == amd64.config_digest
    assert not _fetched(case, i386)


@pytest.mark.behavior("PULL-001")
def test_entries_without_platform_sort_after_matching_ones(case: Case) -> None:
    """A platform-less entry is kept but ranks after a matching platform (2.3's
    transfer service still downloads it)."""
    bare = _platform_image(case, "bare")
    amd64 = _platform_image(case, "amd64", AMD64)
    case.push(Index.oci([(bare, None), amd64]), "multi")
    assert case.pull(case.ref("multi")) == amd64.config_digest
    every = profile_fact(case.profile, "transfer_fetches_exact_platform_entries")
    assert _fetched(case, bare) is every, case.journal_text()


@pytest.mark.behavior("PULL-001")
def test_entry_without_platform_is_pulled_when_alone(case: Case) -> None:
    """An index whose only entry has no platform pulls that entry."""
    bare = _platform_image(case, "bare")
    case.push(Index.oci([(bare, None)]), "multi")
    assert case.pull(case.ref("multi")) == bare.config_digest


@pytest.mark.behavior("PULL-001")
def test_equal_matches_keep_index_order(case: Case) -> None:
    """Two amd64 entries: the first one in the index is pulled (2.3's transfer service
    downloads the second one too)."""
    first = _platform_image(case, "first", AMD64)
    second = _platform_image(case, "second", AMD64)
    case.push(Index.oci([first, second]), "multi")
    assert case.pull(case.ref("multi")) == first.config_digest
    every = profile_fact(case.profile, "transfer_fetches_exact_platform_entries")
    assert _fetched(case, second) is every, case.journal_text()


# -- PULL-002: concurrency ---------------------------------------------------------------


class _InFlight:
    """Counts blob GETs being answered at once; each is held for ``hold`` seconds."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.now = 0
        self.peak = 0
        self.lock = threading.Lock()

    def __call__(self, request: Request, response: Response) -> Response:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            time.sleep(self.hold)
        finally:
            with self.lock:
                self.now -= 1
        return response


@pytest.mark.behavior("PULL-002", "CFG-002")
def test_concurrent_downloads_are_bounded_by_the_default_of_three(case: Case) -> None:
    """No more than ``max_concurrent_downloads`` (3) blob GETs are in flight at once."""
    image = case.image(layers=7)
    case.push(image, "1")
    counter = _InFlight(hold=0.3)
    case.world.add_fault(Fault(Match(method="GET", path="/blobs/"), Custom(counter)))
    assert case.pull(case.ref("1")) == image.config_digest
    assert counter.peak == 3


# -- PULL-004/005/006: config and layer consistency ---------------------------------------


@pytest.mark.behavior("PULL-004", "ERR-001")
@pytest.mark.parametrize("extra", [1, -1], ids=["one-diff-id-too-many", "one-too-few"])
def test_diff_id_count_must_match_the_layer_count(case: Case, extra: int) -> None:
    """A config listing more or fewer diff_ids than layers fails the pull (Unknown)."""
    good = case.image(layers=2)
    diff_ids = [*good.diff_ids, good.diff_ids[0]] if extra > 0 else good.diff_ids[:1]
    image = good.with_wrong_diff_ids(diff_ids)
    case.push(image, "1")
    assert case.pull_error(case.ref("1")).code == "UNKNOWN"
    assert case.status(case.ref("1")) is None or not profile_fact(
        case.profile, "record_after_unpack"
    )


@pytest.mark.behavior("PULL-005", "ERR-001")
def test_layer_not_matching_its_diff_id_fails(case: Case) -> None:
    """A layer whose uncompressed digest is not its diff_id fails with Unknown."""
    image = case.image(layers=2).with_wrong_diff_ids()
    case.push(image, "1")
    assert case.pull_error(case.ref("1")).code == "UNKNOWN"


@pytest.mark.behavior("PULL-006", "PULL-005")
@pytest.mark.parametrize("failure", ["wrong-diff-id", "unknown-layer-type"])
def test_visibility_after_a_failed_unpack_follows_the_profile(
    case: Case, failure: str
) -> None:
    """After a failed unpack 1.6 shows nothing; the seed *may* leave the tag listed.

    The seed's record can outlive a failed unpack (PULL-006 says "can"), so in the
    seed profile either outcome conforms and only the failed pull is asserted; a
    runtime that lists the image there conforms too. The reference never lists an
    image that did not unpack, in any profile.
    """
    image = (
        case.image().with_wrong_diff_ids()
        if failure == "wrong-diff-id"
        else case.image().with_descriptor(0, mediaType="application/x-unknown-layer")
    )
    case.push(image, "1")
    case.pulled.append(case.ref("1"))  # removed afterwards if the runtime kept it
    case.pull_error(case.ref("1"))
    # Seed: "can stay visible" -- either outcome conforms (see the docstring), so
    # only the failed pull above is asserted there.
    if profile_fact(case.profile, "record_after_unpack"):
        assert case.status(case.ref("1")) is None
        assert not _listed(case, image.config_digest)


@pytest.mark.behavior("PULL-007")
def test_octet_stream_config_follows_the_profile(case: Case) -> None:
    """An ``application/octet-stream`` config: seed rewrites the manifest, 1.6 fails."""
    image = case.image().with_config_media_type("application/octet-stream")
    digest = case.push(image, "1")
    layer = str(image.layer_descriptors[0]["digest"])
    case.pulled.append(case.ref("1"))  # a failed 1.6 pull leaves the tag behind
    if profile_fact(case.profile, "deferred_layer_download"):
        # The unpacker skips such manifests, so the layer is never downloaded and
        # the image-level unpack finds no content (containerd#10628).
        assert case.pull_error(case.ref("1")).code == "NOT_FOUND"
        assert not any(ex.path.endswith(layer) for ex in case.exchanges())
    else:
        assert case.pull(case.ref("1")) == image.config_digest
        info = case.status(case.ref("1"))
        assert info is not None
        assert case.ref(None, digest=digest) not in info.repo_digests


# -- PULL-008/010: media types and compression ---------------------------------------------


@pytest.mark.behavior("PULL-008")
def test_schema1_inside_an_index_is_refused(case: Case) -> None:
    """An index entry of schema1 type is unsupported: the pull fails, nothing listed."""
    schema1 = Schema1.signed([case.layer(0)], name=case.repo, tag="1", nonce=case.nonce)
    entries: list[Any] = [(schema1, Platform())]
    case.push(Index.docker_list(entries), "multi")
    case.pull_error(case.ref("multi"))
    assert case.status(case.ref("multi")) is None


@pytest.mark.behavior("PULL-010")
def test_zstd_layers_follow_the_profile(case: Case) -> None:
    """OCI ``+zstd`` layers pull in containerd 1.6 and fail in the seed."""
    layer = Layer.random(512, seed=f"{case.nonce}-zstd", compression="zstd")
    image = Image.oci([layer], nonce=f"{case.nonce}-zstd")
    case.push(image, "1")
    if profile_fact(case.profile, "zstd_layers"):
        assert case.pull(case.ref("1")) == image.config_digest
    else:
        case.pull_error(case.ref("1"))


@pytest.mark.behavior("PULL-010")
def test_uncompressed_layers_are_applied(case: Case) -> None:
    """A plain tar layer is recognised by content and applied (PULL-010)."""
    layer = Layer.random(512, seed=f"{case.nonce}-plain", compression="none")
    image = Image.schema2([layer], nonce=f"{case.nonce}-plain")
    case.push(image, "1")
    assert case.pull(case.ref("1")) == image.config_digest


# -- unpacking stays inside its root (PULL-012, SECURITY) --------------------------------


FileMap = dict[str, bytes | str | FileSpec]


def _hostile(kind: str, marker: str) -> FileMap:
    """Archives whose entries try to leave the unpack root (registry_sim HOSTILE)."""
    archives: dict[str, FileMap] = {
        "dotdot": {f"../{marker}": "escaped"},
        "dotdot-nested": {f"a/../../{marker}": "escaped"},
        "absolute": {f"/{marker}": "escaped"},
        "symlink-escape": {"link": FileSpec.symlink("../../.."), f"link/{marker}": "x"},
        "absolute-symlink": {"link": FileSpec.symlink("/"), f"link/{marker}": "x"},
    }
    return archives[kind]


def _inside_a_layer_root(root: Path, path: Path, layers: str) -> bool:
    """Whether *path* lies under the root a layer was unpacked into.

    That root is ``<layers>/<id>/fs`` when the snapshot has an ``fs`` directory
    (containerd's overlayfs, the reference) and ``<layers>/<id>`` otherwise
    (containerd's native snapshotter, containers/storage vfs). A file beside ``fs``,
    or directly in ``<layers>``, is outside it: judging by the parent directory would
    pass a ``../x`` entry that escaped its snapshot.
    """
    parts = path.relative_to(root).parts
    if layers not in parts:
        return False
    # The last one: the reference keeps its snapshots in snapshots/snapshots/<id>.
    start = len(parts) - 1 - parts[::-1].index(layers)
    depth = start + 2  # <layers>/<id>
    if len(parts) <= depth:
        return False
    if (root.joinpath(*parts[:depth]) / "fs").is_dir():
        return len(parts) > depth + 1 and parts[depth] == "fs"
    return True


def _escaped_copies(
    root: Path | None, marker: str, layers: str = "snapshots"
) -> list[Path]:
    """Files named *marker* that are not inside a layer's own root (see above).

    *layers* names the directory whose children are the per-layer snapshots:
    containerd's ``snapshots``, containers/storage vfs's ``dir`` (the target's
    ``layers_dir_name``).
    """
    found = [Path("/") / marker] if (Path("/") / marker).exists() else []
    if root is None:
        return found
    found += [
        path
        for path in root.rglob(marker)
        if not _inside_a_layer_root(root, path, layers)
    ]
    return found


@pytest.mark.behavior("PULL-012")
@pytest.mark.parametrize(
    "kind",
    ["dotdot", "dotdot-nested", "absolute", "symlink-escape", "absolute-symlink"],
)
def test_unsafe_archive_entries_never_write_outside_the_root(
    case: Case, kind: str
) -> None:
    """Hostile tar entries either fail the pull or stay inside the snapshot."""
    marker = f"escape-{case.nonce}-{kind}"
    layer = Layer.from_files(_hostile(kind, marker), parents=False)
    image = Image.schema2([layer], nonce=f"{case.nonce}-{kind}")
    case.push(image, "1")
    try:
        image_id = case.pull(case.ref("1"))
    except Exception:  # refusing the archive is a valid outcome
        assert not _listed(case, image.config_digest)
    else:
        assert image_id == image.config_digest
    # A runtime the suite starts has a workdir; the in-process reference, a root.
    root = getattr(case.target, "workdir", None) or getattr(case.target, "root", None)
    layers = getattr(case.target, "layers_dir_name", "snapshots")
    escaped = _escaped_copies(Path(root) if root else None, marker, layers)
    for path in escaped:  # leave nothing behind for a later run
        path.unlink()
    assert escaped == []
