"""The gRPC status a failed PullImage carries, and what its message must never hold.

Catalog area ERR (behaviors.md §15); upstream findings F-09, F-18. Only status codes
are compared; message text is inspected solely for the absence of secrets (ERR-003).
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from cri_conformance.catalog import family_of
from cri_conformance.scenario import Case
from cri_conformance.targets.base import Capability, TargetError
from registry_sim.faults import CorruptBody, Fault, Match, Redirect, Status
from registry_sim.images import Config, Index

Setup = Callable[[Case], str]


def _missing_tag(case: Case) -> str:
    return case.ref("missing")


def _bad_reference(case: Case) -> str:
    return case.ref("1").replace("/t/", "/T/")


def _refused_connection(case: Case) -> str:
    return f"127.0.0.1:1/{case.repo}:1"


def _resolve_500(case: Case) -> str:
    case.push(case.image(), "1")
    case.world.add_fault(Fault(Match(path="/manifests/"), Status(500)))
    return case.ref("1")


def _unauthorized(case: Case) -> str:
    case.push(case.image(), "1", host="basic.test")
    return case.ref("1", host="basic.test")


def _blob_denied(case: Case) -> str:
    image = case.image()
    case.push(image, "1")
    layer = str(image.layer_descriptors[0]["digest"])
    case.world.add_fault(Fault(Match(path=layer + "$"), Status(403)))
    return case.ref("1")


def _blob_missing(case: Case) -> str:
    image = case.image()
    case.push(image, "1")
    layer = str(image.layer_descriptors[0]["digest"])
    case.world.add_fault(Fault(Match(path=layer + "$"), Status(404)))
    return case.ref("1")


def _blob_corrupted(case: Case) -> str:
    image = case.image()
    case.push(image, "1")
    layer = str(image.layer_descriptors[0]["digest"])
    case.world.add_fault(Fault(Match(method="GET", path=layer + "$"), CorruptBody()))
    return case.ref("1")


def _no_platform(case: Case) -> str:
    arm64 = case.image(salt="arm64", config=Config(architecture="arm64"))
    case.push(Index.oci([arm64]), "1")
    return case.ref("1")


def _wrong_diff_id(case: Case) -> str:
    case.push(case.image().with_wrong_diff_ids(), "1")
    return case.ref("1")


# behaviors.md ERR-001; containerd@v1.6.20 errdefs/grpc.go ToGRPC: only errdefs
# classes get their own code, everything else is Unknown.
CLASSES = [
    pytest.param(_missing_tag, "NOT_FOUND", id="tag-not-found"),
    pytest.param(_blob_missing, "NOT_FOUND", id="blob-not-found"),
    pytest.param(_no_platform, "NOT_FOUND", id="no-matching-platform"),
    pytest.param(_blob_corrupted, "FAILED_PRECONDITION", id="digest-mismatch"),
    pytest.param(_bad_reference, "UNKNOWN", id="invalid-reference"),
    pytest.param(_refused_connection, "UNKNOWN", id="connection-refused"),
    pytest.param(_resolve_500, "UNKNOWN", id="registry-500"),
    pytest.param(_unauthorized, "UNKNOWN", id="unauthorized"),
    pytest.param(_blob_denied, "UNKNOWN", id="blob-denied"),
    pytest.param(_wrong_diff_id, "UNKNOWN", id="wrong-diff-id"),
]


@pytest.mark.behavior("ERR-001")
@pytest.mark.parametrize(("setup", "code"), CLASSES)
def test_failure_class_maps_to_its_grpc_code(
    case: Case, setup: Setup, code: str
) -> None:
    """Each failure class surfaces with its errdefs gRPC code, else Unknown."""
    ref = setup(case)
    assert case.pull_error(ref).code == code


@pytest.mark.behavior("ERR-003", "AUTH-003")
def test_undecodable_auth_is_not_echoed_in_the_error(case: Case) -> None:
    """A decoded ``auth`` blob without a colon never appears in the error (SECURITY)."""
    secret = f"TOPSECRET{case.nonce}"
    case.push(case.image(), "1", host="basic.test")
    auth = {"auth": base64.b64encode(secret.encode()).decode()}
    error = case.pull_error(case.ref("1", host="basic.test"), auth=auth)
    assert secret not in error.message
    assert secret not in case.journal_text()


@pytest.mark.behavior("ERR-003", "AUTH-002")
def test_server_address_password_is_not_echoed_in_the_error(case: Case) -> None:
    """An unparseable ``server_address`` with a password in it fails without it (SECURITY)."""
    secret = f"hunter{case.nonce}"
    case.push(case.image(), "1", host="basic.test")
    auth = {
        "username": "alice",
        "password": "alice-secret",
        "server_address": f"https://user:{secret}@basic.test:bad",
    }
    ref = case.ref("1", host="basic.test")
    if family_of(case.profile) == "containerd":
        message = case.pull_error(ref, auth=auth).message  # AUTH-002: it fails
    else:
        # AUTH-002 binds the containerd family only: CRI-O ignores server_address
        # and may pull; whatever it answers holds no secret.
        try:
            message = case.pull(ref, auth=auth)
        except TargetError as exc:
            message = exc.message
    assert secret not in message
    assert secret not in case.journal_text()


@pytest.mark.behavior("ERR-003")
def test_signed_url_secret_is_not_echoed_in_the_error(case: Case) -> None:
    """A failing redirect to a signed URL does not put its signature in the error."""
    case.require(Capability.PROXY_ENVIRONMENT)
    signature = f"sig{case.nonce}"
    image = case.image()
    case.push(image, "1")
    layer = str(image.layer_descriptors[0]["digest"])
    location = "https://blobstore.test{path}?X-Amz-Signature=" + signature
    case.world.add_fault(
        Fault(Match(method="GET", path=layer + "$"), Redirect(location))
    )
    case.world.add_fault(
        Fault(Match(path=layer + "$"), Status(500)), host="blobstore.test"
    )
    error = case.pull_error(case.ref("1"))
    assert case.exchanges(host="blobstore.test"), case.journal_text()
    assert signature not in error.message
