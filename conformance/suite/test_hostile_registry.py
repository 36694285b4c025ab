"""A registry that attacks its puller: layers that escape through replaced components,
decompression bombs, credentials lured to another host, secrets reflected in error text.

Catalog areas PULL, AUTH, ERR (SECURITY behaviours: every CRI runtime is graded).
Safety for real runtimes: every escape aims at a *canary* directory under the case's
own temp dir and is checked afterwards; every bomb inflates to at most 1 GiB, built
in a MiB and refused (by a safe runtime) long before the disk matters.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from cri_conformance.scenario import Case
from cri_conformance.targets.base import TargetError
from registry_sim.faults import BearerChallenge, Custom, Fault, Match
from registry_sim.hostile import (
    BombCompression,
    Entry,
    bomb_layer,
    index_chain,
    ordered_layer,
)
from registry_sim.images import Image, Layer
from registry_sim.wire import Headers, Request, Response

Snapshot = dict[str, tuple[int, int, int, int, str]]


def make_canary(tmp_path: Path) -> Path:
    """A directory tree outside every runtime root that no pull may change."""
    canary = tmp_path / "canary"
    (canary / "x").mkdir(parents=True)
    (canary / "x" / "file").write_text("canary")
    (canary / "file").write_text("canary")
    for path, mode in ((canary, 0o755), (canary / "x", 0o755)):
        os.chmod(path, mode)
        os.utime(path, (1_000_000_000, 1_000_000_000))
    return canary


def snapshot(canary: Path) -> Snapshot:
    """Mode, owner, mtime and content of everything in the canary (itself included)."""
    out: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(canary):
        for name in ["", *dirnames, *filenames]:
            path = Path(dirpath) / name
            if name == "" and path != canary:
                continue
            st = os.lstat(path)
            body = ""
            if stat.S_ISREG(st.st_mode):
                body = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(path)
            key = str(path.relative_to(canary.parent))
            out[key] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, body)
    return out


def changed(before: Snapshot, after: Snapshot) -> list[str]:
    return sorted(k for k in {*before, *after} if before.get(k) != after.get(k))


def pull_outcome(case: Case, image: Image) -> str:
    """Push and pull *image*; ``"pulled"`` or ``"refused <code>"`` (both may be safe)."""
    case.push(image, "1")
    try:
        image_ref = case.pull(case.ref("1"))
    except TargetError as exc:
        return f"refused {exc.code}"
    assert image_ref == image.config_digest
    return "pulled"


# -- PULL-013: metadata through a component a later entry replaced ---------------------


def replaced_component(canary: Path, mode: int) -> list[Entry]:
    """``a`` (0777), ``a/x`` (*mode*, uid 4242), then ``a`` -> the canary.

    A puller that applies directory metadata by path after the whole layer follows
    the symlink: the canary becomes 0777 and ``canary/x`` gets *mode* and uid 4242.
    """
    return [
        Entry("a", "dir", mode=0o777),
        Entry("a/x", "dir", mode=mode, uid=4242, gid=4242),
        Entry("a", "symlink", link=str(canary)),
    ]


@pytest.mark.behavior("PULL-013")
@pytest.mark.parametrize(
    "mode",
    [0o777, 0o4755, 0o6777, 0o000],
    ids=["0777", "setuid-04755", "setid-06777", "0000"],
)
def test_directory_metadata_never_follows_a_replaced_component(
    case: Case, tmp_path: Path, mode: int
) -> None:
    """The canary keeps its modes, owner and times whatever the pull's outcome."""
    canary = make_canary(tmp_path)
    before = snapshot(canary)
    layer = ordered_layer(replaced_component(canary, mode))
    image = Image.schema2([layer], nonce=f"{case.nonce}-{mode:o}")
    outcome = pull_outcome(case, image)
    assert changed(before, snapshot(canary)) == [], f"{outcome}; canary changed"


@pytest.mark.behavior("PULL-013")
def test_a_component_replaced_by_a_later_layer_is_not_followed(
    case: Case, tmp_path: Path
) -> None:
    """Layer 1 makes ``a/x``; layer 2 redeclares ``a/x`` setuid, then ``a`` -> canary."""
    canary = make_canary(tmp_path)
    before = snapshot(canary)
    lower = ordered_layer([Entry("a", "dir"), Entry("a/x", "dir")])
    upper = ordered_layer(
        [
            Entry("a/x", "dir", mode=0o4777, uid=4242, gid=4242),
            Entry("a", "symlink", link=str(canary)),
        ]
    )
    image = Image.schema2([lower, upper], nonce=f"{case.nonce}-layers")
    outcome = pull_outcome(case, image)
    assert changed(before, snapshot(canary)) == [], f"{outcome}; canary changed"


# -- PULL-014: decompression and disk bombs --------------------------------------------

GIB = 1 << 30
BOMBS: dict[str, tuple[int, BombCompression, int]] = {
    # name: (inflated size, compression, files)
    "gzip-one-file": (GIB, "gzip", 1),
    "gzip-many-files": (GIB, "gzip", 256),
    "zstd-one-file": (GIB, "zstd", 1),
}


def _bomb(name: str) -> Layer:
    size, compression, files = BOMBS[name]
    return bomb_layer(size, compression, files)


# -- AUTH-010: a plain-http registry names a plain-http realm on another host ----------

ALICE = {"username": "alice", "password": "alice-secret"}


@pytest.mark.behavior("AUTH-010")
def test_a_plain_http_registry_cannot_lure_credentials_to_a_plain_http_realm(
    case: Case,
) -> None:
    """The loopback (plain-http) registry names ``http://plain-auth.test/token``:
    the password must not travel there in clear text (anonymous token requests are
    fine, so is refusing the pull)."""
    server = case.world.tokens["plain-realm"].token_server
    challenge = BearerChallenge(
        "http://plain-auth.test/token", "plainrealm.test", case.repo
    )
    case.world.add_fault(Fault(Match(path=f"/v2/{case.repo}/"), challenge))
    case.push(case.image(), "1")
    with contextlib.suppress(TargetError):
        case.pull(case.ref("1"), auth=ALICE)
    # A runtime that never asks the realm (it gives up at the challenge) sends it
    # nothing: that is safe too; the journal shows which case this was.
    users = [(r.method, r.user) for r in server.requests]
    assert all(user is None for _, user in users), users


@pytest.mark.behavior("PULL-014")
@pytest.mark.parametrize("name", list(BOMBS))
def test_a_decompression_bomb_is_refused(case: Case, name: str) -> None:
    """A ~1 MiB layer inflating to 1 GiB of zeros fails the pull and is not recorded.

    A bounded runtime refuses it after a few hundred MiB at most; one without bounds
    writes the GiB (bounded by construction) and records the image.
    """
    image = Image.oci([_bomb(name)], nonce=f"{case.nonce}-{name}")  # OCI: tar+zstd
    outcome = pull_outcome(case, image)
    # Whether a failed pull leaves a record is PULL-006's business (the seed's does).
    assert outcome.startswith("refused"), f"{name}: {outcome}"


# -- PULL-015: structure a registry may use to make a pull unbounded -------------------


@pytest.mark.behavior("PULL-015")
def test_an_index_chain_a_thousand_deep_is_not_followed(case: Case) -> None:
    """An index nested 1000 deep: the runtime stops well before following it all."""
    chain = index_chain(case.image(), 1000)
    case.push(chain, "1")
    with contextlib.suppress(TargetError):
        case.pull(case.ref("1"))
    fetched = [ex for ex in case.exchanges() if "/manifests/" in ex.path]
    assert len(fetched) < 100, f"followed {len(fetched)} manifests of a 1000-deep chain"


@pytest.mark.behavior("PULL-015")
def test_an_image_of_a_thousand_layers_is_refused(case: Case) -> None:
    """1000 layers (one tiny blob repeated): refused before they are all applied."""
    layer = Layer.from_files({"f": case.nonce})
    image = Image.schema2([layer] * 1000, nonce=f"{case.nonce}-many")
    outcome = pull_outcome(case, image)
    assert outcome.startswith("refused"), f"an image of 1000 layers was {outcome}"


# -- TOKEN-010: a realm answering with a 48 MiB token ----------------------------------


def _huge_token(size: int) -> Custom:
    """A valid token followed by *size* bytes of padding in another field."""
    body = b'{"token":"t0k","padding":"' + b"a" * size + b'"}'

    def answer(request: Request, response: Response) -> Response:
        headers = Headers.of({"Content-Type": "application/json"})
        return Response(200, headers, body)

    return Custom(answer)


@pytest.mark.behavior("TOKEN-010")
def test_a_token_response_of_48_mib_is_not_used(case: Case) -> None:
    """The registry's realm (its own host) answers with a 48 MiB token response (a
    usable token plus padding): a bounded runtime gives up on it and the pull fails;
    one that reads it whole gets the token and pulls."""
    realm = f"http://{case.world.sim.host_port}/token/{case.repo}/t"
    challenge = BearerChallenge(realm, "hostile", case.repo)
    huge = Fault(Match(path=f"^/token/{case.repo}/t$"), _huge_token(48 << 20))
    case.world.add_fault(huge)
    case.world.add_fault(Fault(Match(path=f"^/v2/{case.repo}/"), challenge))
    case.push(case.image(), "1")
    outcome = "refused"
    try:
        case.pull(case.ref("1"))
    except TargetError:
        pass
    else:
        outcome = "pulled"
    # A runtime that never asks the realm (it gives up at the challenge) is refused
    # too; the journal shows which case this was.
    assert outcome == "refused", "the 48 MiB token was accepted"


# -- ERR-003: a registry reflecting the Authorization header into its error text -------


def _reflect_authorization() -> Custom:
    """403 for authorized blob requests, the error message quoting the header."""

    def answer(request: Request, response: Response) -> Response:
        sent = request.headers.get("Authorization")
        if not sent:
            return response
        body = json.dumps(
            {"errors": [{"code": "DENIED", "message": f"you sent {sent}"}]}
        ).encode()
        return Response(403, Headers.of({"Content-Type": "application/json"}), body)

    return Custom(answer)


@pytest.mark.behavior("ERR-003")
def test_a_reflected_authorization_header_is_not_repeated(case: Case) -> None:
    """The Basic-auth registry answers blob requests with 403 and the Authorization
    header it received in its error message: the pull error holds no secret."""
    image = case.image()
    case.push(image, "1", host="basic.test")
    case.world.add_fault(
        Fault(Match(method="GET", path=r"/blobs/sha256:"), _reflect_authorization()),
        host="basic.test",
    )
    error = case.pull_error(case.ref("1", host="basic.test"), auth=ALICE)
    basic = base64.b64encode(b"alice:alice-secret").decode()
    assert any(ex.status == 403 for ex in case.exchanges(host="basic.test"))
    assert basic not in error.message
    assert "alice-secret" not in error.message


@pytest.mark.behavior("PULL-015", "ERR-001")
def test_a_megabyte_image_name_is_an_invalid_reference(case: Case) -> None:
    """A 1 MiB reference fails as an invalid reference (gRPC Unknown, like any other
    malformed reference) with a short message, not as an exhausted resource."""
    name = f"{case.world.sim.host_port}/{case.repo}/" + "a" * (1 << 20)
    error = case.pull_error(name)
    assert error.code == "UNKNOWN", f"answered {error.code}: {error.message[:200]}"
    assert len(error.message) < 4096, f"{len(error.message)}-character error"
    assert case.exchanges() == []
