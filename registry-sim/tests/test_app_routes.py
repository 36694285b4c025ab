"""RegistryApp.handle against the distribution API, without sockets (table-driven)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry_sim.access import Scope
from registry_sim.app import AcceptPolicy, RegistryApp
from registry_sim.faults import Custom, Fault, FaultSet, Match, Status
from registry_sim.storage import Storage
from registry_sim.wire import FileBody, Headers, Request, Response

REPO = "library/busybox"
MT_DOCKER = "application/vnd.docker.distribution.manifest.v2+json"
MT_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_OCI = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_S1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
# containerd's resolver Accept list (behaviors.md RES-001).
CONTAINERD_ACCEPT = f"{MT_DOCKER}, {MT_LIST}, {MT_OCI}, {MT_INDEX}, */*"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def descriptor(media_type: str, data: bytes, **extra: object) -> dict[str, object]:
    return {"mediaType": media_type, "digest": sha(data), "size": len(data), **extra}


def image_manifest(media_type: str, config: bytes, layers: list[bytes]) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": [
            descriptor("application/vnd.oci.image.layer.v1.tar", b) for b in layers
        ],
    }
    return json.dumps(doc, indent=2).encode()


def index(media_type: str, children: list[tuple[str, bytes, str]]) -> bytes:
    entries = [
        descriptor(mt, data, platform={"os": "linux", "architecture": arch})
        for mt, data, arch in children
    ]
    doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
    return json.dumps(doc).encode()


def signed_schema1(layer: bytes) -> tuple[bytes, bytes]:
    """A libtrust-shaped signed schema1 document and its signed payload."""
    body = {
        "schemaVersion": 1,
        "name": REPO,
        "tag": "s1",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": sha(layer)}],
        "history": [{"v1Compatibility": '{"id":"x"}'}],
    }
    payload = json.dumps(body, indent=3).encode()
    length = len(payload) - 2  # cut before the final "\n}"
    protected = {"formatLength": length, "formatTail": b64url(payload[length:])}
    signature = {
        "header": {"alg": "ES256"},
        "signature": "c2ln",
        "protected": b64url(json.dumps(protected).encode()),
    }
    signed = (
        payload[:length]
        + b',\n   "signatures": '
        + json.dumps([signature]).encode()
        + payload[length:]
    )
    return signed, payload


LAYER = b"layer-bytes-0123456789" * 3
CONFIG = b'{"architecture":"amd64","os":"linux"}'
DOCKER = image_manifest(MT_DOCKER, CONFIG, [LAYER])
OCI = image_manifest(MT_OCI, CONFIG, [LAYER])
LIST = index(MT_LIST, [(MT_DOCKER, DOCKER, "amd64")])
INDEX = index(MT_INDEX, [(MT_OCI, OCI, "amd64")])
S1, S1_PAYLOAD = signed_schema1(LAYER)
OTHER_LAYER = b"another layer"


def fill(storage: Storage) -> None:
    for blob in (LAYER, CONFIG):
        storage.put_blob(REPO, blob)
    storage.put_blob("other/repo", OTHER_LAYER)
    for tag, media_type, data in [
        ("docker", MT_DOCKER, DOCKER),
        ("oci", MT_OCI, OCI),
        ("list", MT_LIST, LIST),
        ("index", MT_INDEX, INDEX),
        ("s1", MT_S1, S1),
        ("zz-last", MT_DOCKER, DOCKER),
    ]:
        storage.put_manifest(REPO, tag, data, media_type)


@pytest.fixture
def storage() -> Iterator[Storage]:
    with Storage() as store:
        fill(store)
        yield store


@pytest.fixture
def app(storage: Storage) -> RegistryApp:
    return RegistryApp(storage, name="test")


def call(
    app: RegistryApp,
    method: str,
    path: str,
    query: str = "",
    body: bytes = b"",
    **headers: str,
) -> Response:
    pairs = [(k.replace("_", "-"), v) for k, v in headers.items()]
    request = Request(method, path, query, Headers(pairs), body, host="reg.test:5000")
    response = app.handle(request)
    app.check()
    return response


def error_code(response: Response) -> str | None:
    if response.headers.get("Content-Type") != "application/json":
        return None
    assert isinstance(response.body, bytes)
    errors = json.loads(response.body).get("errors")
    return errors[0]["code"] if errors else None


def body_bytes(response: Response) -> bytes:
    body = response.body
    if isinstance(body, FileBody):
        with body.path.open("rb") as f:
            f.seek(body.offset)
            return f.read(body.length)
    assert isinstance(body, bytes)
    return body


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    status: int
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    request_headers: dict[str, str] = field(default_factory=dict)
    query: str = ""
    body: bytes | None = None


M = f"/v2/{REPO}/manifests"
B = f"/v2/{REPO}/blobs"
READ_ROWS = [
    pytest.param(
        Row(
            "GET",
            "/v2/",
            200,
            headers={"Docker-Distribution-API-Version": "registry/2.0"},
        ),
        id="ping-answers-200-with-api-version",
    ),
    pytest.param(
        Row(
            "HEAD",
            f"{M}/docker",
            200,
            headers={"Docker-Content-Digest": sha(DOCKER), "Content-Type": MT_DOCKER},
            request_headers={"Accept": CONTAINERD_ACCEPT},
        ),
        id="head-by-tag-gives-digest-and-type",
    ),
    pytest.param(
        Row("GET", f"{M}/docker", 200, request_headers={"Accept": "*/*"}, body=DOCKER),
        id="schema2-is-served-as-stored-to-wildcard-accept",
    ),
    pytest.param(
        Row("GET", f"{M}/oci", 200, request_headers={"Accept": MT_OCI}, body=OCI),
        id="oci-manifest-served-when-accepted",
    ),
    pytest.param(
        Row(
            "GET",
            f"{M}/oci",
            404,
            "MANIFEST_UNKNOWN",
            request_headers={"Accept": "*/*"},
        ),
        id="oci-manifest-by-tag-not-accepted-is-manifest-unknown",
    ),
    pytest.param(
        Row("GET", f"{M}/{sha(OCI)}", 404, "MANIFEST_UNKNOWN"),
        id="oci-manifest-by-digest-not-accepted-is-manifest-unknown",
    ),
    pytest.param(
        Row(
            "GET",
            f"{M}/index",
            404,
            "MANIFEST_UNKNOWN",
            request_headers={"Accept": MT_OCI},
        ),
        id="oci-index-not-accepted-is-manifest-unknown",
    ),
    pytest.param(
        Row(
            "GET",
            f"{M}/list",
            200,
            headers={"Docker-Content-Digest": sha(DOCKER), "Content-Type": MT_DOCKER},
            request_headers={"Accept": MT_DOCKER},
            body=DOCKER,
        ),
        id="list-by-tag-not-accepted-serves-linux-amd64-child",
    ),
    pytest.param(
        Row(
            "GET",
            f"{M}/list",
            400,
            "MANIFEST_INVALID",
            request_headers={"Accept": "*/*"},
        ),
        id="list-child-schema2-not-accepted-is-manifest-invalid",
    ),
    pytest.param(
        Row(
            "GET",
            f"{M}/{sha(LIST)}",
            200,
            headers={"Content-Type": MT_LIST},
            request_headers={"Accept": "*/*"},
        ),
        id="list-by-digest-is-served-as-stored",
    ),
    pytest.param(
        Row(
            "GET",
            f"{M}/s1",
            200,
            headers={"Content-Type": MT_S1, "Docker-Content-Digest": sha(S1_PAYLOAD)},
            request_headers={"Accept": "*/*"},
            body=S1,
        ),
        id="schema1-served-via-wildcard-with-payload-digest",
    ),
    pytest.param(
        Row("GET", f"{M}/nope", 404, "MANIFEST_UNKNOWN"),
        id="unknown-tag-is-manifest-unknown",
    ),
    pytest.param(
        Row("GET", f"{M}/sha256:1234", 404, "MANIFEST_UNKNOWN"),
        id="malformed-digest-reference-is-manifest-unknown",
    ),
    pytest.param(
        Row(
            "GET",
            f"{M}/docker",
            304,
            request_headers={"If-None-Match": f'"{sha(DOCKER)}"'},
        ),
        id="matching-etag-is-not-modified",
    ),
    pytest.param(
        Row("GET", "/v2/Library/BusyBox/manifests/latest", 400, "NAME_INVALID"),
        id="uppercase-repository-is-name-invalid",
    ),
    pytest.param(
        Row("GET", "/v2/a//b/manifests/latest", 400, "NAME_INVALID"),
        id="empty-path-component-is-name-invalid",
    ),
    pytest.param(Row("GET", "/v3/x", 404), id="unknown-route-is-plain-404"),
    pytest.param(
        Row("POST", f"{M}/docker", 405, "UNSUPPORTED"),
        id="wrong-method-on-known-route-is-unsupported",
    ),
    pytest.param(
        Row(
            "GET",
            f"{B}/{sha(LAYER)}",
            200,
            headers={"Docker-Content-Digest": sha(LAYER), "Accept-Ranges": "bytes"},
            body=LAYER,
        ),
        id="blob-get-serves-whole-blob",
    ),
    pytest.param(
        Row(
            "GET",
            f"{B}/{sha(LAYER)}",
            206,
            headers={"Content-Range": f"bytes 2-5/{len(LAYER)}"},
            request_headers={"Range": "bytes=2-5"},
            body=LAYER[2:6],
        ),
        id="blob-range-first-last-is-partial",
    ),
    pytest.param(
        Row(
            "GET",
            f"{B}/{sha(LAYER)}",
            206,
            request_headers={"Range": "bytes=10-"},
            body=LAYER[10:],
        ),
        id="blob-range-open-ended-resumes",
    ),
    pytest.param(
        Row(
            "GET",
            f"{B}/{sha(LAYER)}",
            206,
            request_headers={"Range": "bytes=-4"},
            body=LAYER[-4:],
        ),
        id="blob-range-suffix-gives-tail",
    ),
    pytest.param(
        Row(
            "GET",
            f"{B}/{sha(LAYER)}",
            206,
            request_headers={"Range": "bytes=3-100000"},
            body=LAYER[3:],
        ),
        id="blob-range-last-beyond-end-is-clamped",
    ),
    pytest.param(
        Row(
            "GET",
            f"{B}/{sha(LAYER)}",
            416,
            "RANGE_INVALID",
            headers={"Content-Range": f"bytes */{len(LAYER)}"},
            request_headers={"Range": f"bytes={len(LAYER)}-"},
        ),
        id="blob-range-past-end-is-range-invalid",
    ),
    pytest.param(
        Row(
            "GET",
            f"{B}/{sha(LAYER)}",
            416,
            "RANGE_INVALID",
            request_headers={"Range": "items=1-2"},
        ),
        id="blob-range-malformed-is-range-invalid",
    ),
    pytest.param(
        Row(
            "GET",
            f"{B}/{sha(LAYER)}",
            200,
            request_headers={"Range": "bytes=0-1,4-5"},
            body=LAYER,
        ),
        id="blob-multi-range-is-ignored",
    ),
    pytest.param(
        Row("GET", f"{B}/{sha(b'missing')}", 404, "BLOB_UNKNOWN"),
        id="unknown-blob-is-blob-unknown",
    ),
    pytest.param(
        Row("GET", f"{B}/{sha(OTHER_LAYER)}", 404, "BLOB_UNKNOWN"),
        id="blob-of-another-repository-is-blob-unknown",
    ),
    pytest.param(
        Row("GET", f"{B}/sha256:xyz", 400, "DIGEST_INVALID"),
        id="malformed-blob-digest-is-digest-invalid",
    ),
    pytest.param(
        Row("GET", f"{B}/{sha(DOCKER)}", 200, body=DOCKER),
        id="manifest-bytes-are-also-served-from-blobs",
    ),
    pytest.param(
        Row(
            "GET",
            f"/v2/{REPO}/tags/list",
            200,
            headers={"Link": f'</v2/{REPO}/tags/list?n=2&last=index>; rel="next"'},
            query="n=2",
            body=json.dumps({"name": REPO, "tags": ["docker", "index"]}).encode(),
        ),
        id="tags-list-first-page-links-to-next",
    ),
    pytest.param(
        Row(
            "GET",
            f"/v2/{REPO}/tags/list",
            200,
            query="n=10&last=oci",
            body=json.dumps({"name": REPO, "tags": ["s1", "zz-last"]}).encode(),
        ),
        id="tags-list-continues-after-last",
    ),
    pytest.param(
        Row(
            "GET",
            f"/v2/{REPO}/tags/list",
            400,
            "PAGINATION_NUMBER_INVALID",
            query="n=x",
        ),
        id="tags-list-non-numeric-n-is-pagination-invalid",
    ),
    pytest.param(
        Row("GET", "/v2/no/such/tags/list", 404, "NAME_UNKNOWN"),
        id="tags-list-of-unknown-repository-is-name-unknown",
    ),
    pytest.param(
        Row(
            "GET",
            "/v2/_catalog",
            200,
            body=json.dumps({"repositories": [REPO, "other/repo"]}).encode(),
        ),
        id="catalog-lists-repositories",
    ),
]


@pytest.mark.parametrize("row", READ_ROWS)
def test_read_endpoints_answer_as_distribution(app: RegistryApp, row: Row) -> None:
    response = call(app, row.method, row.path, row.query, b"", **row.request_headers)
    assert response.status == row.status, body_bytes(response)
    assert error_code(response) == row.code
    for name, value in row.headers.items():
        assert response.headers.get(name) == value, name
    if row.body is not None:
        assert body_bytes(response) == row.body


def test_head_manifest_announces_length_without_body(app: RegistryApp) -> None:
    response = call(app, "HEAD", f"{M}/docker", Accept=CONTAINERD_ACCEPT)
    assert response.body == b""
    assert response.content_length() == len(DOCKER)


def test_head_blob_announces_size_without_body(app: RegistryApp) -> None:
    response = call(app, "HEAD", f"{B}/{sha(LAYER)}")
    assert (response.status, response.body) == (200, b"")
    assert response.content_length() == len(LAYER)


def test_blob_get_answers_with_a_file_region(app: RegistryApp) -> None:
    response = call(app, "GET", f"{B}/{sha(LAYER)}", Range="bytes=1-3")
    assert isinstance(response.body, FileBody)
    assert (response.body.offset, response.body.length) == (1, 3)


def test_repository_names_may_have_several_components(app: RegistryApp) -> None:
    app.storage.put_manifest("a/b/c", "t", DOCKER, MT_DOCKER)
    response = call(app, "HEAD", "/v2/a/b/c/manifests/t", Accept=MT_DOCKER)
    assert (response.status, response.headers.get("Docker-Content-Digest")) == (
        200,
        sha(DOCKER),
    )
    assert json.loads(body_bytes(call(app, "GET", "/v2/a/b/c/tags/list"))) == {
        "name": "a/b/c",
        "tags": ["t"],
    }


def test_ignore_policy_serves_oci_manifest_to_any_accept(storage: Storage) -> None:
    app = RegistryApp(storage, accept_policy=AcceptPolicy.IGNORE)
    response = call(app, "GET", f"{M}/oci", Accept="*/*")
    assert (response.status, body_bytes(response)) == (200, OCI)


def test_distribution_2_policy_checks_accept_only_by_tag(storage: Storage) -> None:
    app = RegistryApp(storage, accept_policy=AcceptPolicy.DISTRIBUTION_2)
    assert call(app, "GET", f"{M}/oci").status == 404
    assert call(app, "GET", f"{M}/{sha(OCI)}").status == 200


# -- push side -------------------------------------------------------------------


def test_monolithic_post_stores_blob(app: RegistryApp, storage: Storage) -> None:
    data = b"monolithic"
    response = call(
        app, "POST", "/v2/new/repo/blobs/uploads/", f"digest={sha(data)}", data
    )
    assert response.status == 201
    assert response.headers.get("Location") == (
        f"http://reg.test:5000/v2/new/repo/blobs/{sha(data)}"
    )
    assert response.headers.get("Docker-Content-Digest") == sha(data)
    assert storage.has_blob("new/repo", sha(data))


def test_monolithic_post_with_wrong_digest_is_digest_invalid(app: RegistryApp) -> None:
    response = call(app, "POST", f"{B}/uploads/", f"digest={sha(b'x')}", b"y")
    assert (response.status, error_code(response)) == (400, "DIGEST_INVALID")


def test_chunked_upload_assembles_blob(app: RegistryApp, storage: Storage) -> None:
    started = call(app, "POST", f"{B}/uploads/")
    assert started.status == 202
    assert started.headers.get("Range") == "0-0"
    location = started.headers.get("Location") or ""
    path = location.removeprefix("http://reg.test:5000")
    first = call(app, "PATCH", path, body=b"abc", Content_Range="0-2")
    assert (first.status, first.headers.get("Range")) == (202, "0-2")
    second = call(app, "PATCH", path, body=b"def")  # no Content-Range: appended
    assert second.headers.get("Range") == "0-5"
    status = call(app, "GET", path)
    assert (status.status, status.headers.get("Range")) == (204, "0-5")
    done = call(app, "PUT", path, f"digest={sha(b'abcdefg')}", b"g")
    assert done.status == 201
    assert storage.has_blob(REPO, sha(b"abcdefg"))


UPLOAD_ERROR_ROWS = [
    pytest.param("PATCH", "", b"abc", {"Content-Range": "5-7"}, 416, "RANGE_INVALID",
                 id="out-of-order-chunk-is-range-invalid"),
    pytest.param("PATCH", "", b"abc", {"Content-Range": "0-9"}, 400, "SIZE_INVALID",
                 id="chunk-length-differs-from-range-is-size-invalid"),
    pytest.param("PATCH", "", b"abc", {"Content-Range": "zero-two"}, 400,
                 "BLOB_UPLOAD_INVALID", id="malformed-content-range-is-upload-invalid"),
    pytest.param("PUT", "", b"", {}, 400, "DIGEST_INVALID",
                 id="finishing-without-digest-is-digest-invalid"),
    pytest.param("PUT", f"digest={sha(b'other')}", b"abc", {}, 400, "DIGEST_INVALID",
                 id="finishing-with-wrong-digest-is-digest-invalid"),
    pytest.param("PUT", "digest=sha384:abc", b"abc", {}, 400, "DIGEST_INVALID",
                 id="finishing-with-unsupported-algorithm-is-digest-invalid"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "query", "body", "headers", "status", "code"), UPLOAD_ERROR_ROWS
)
def test_malformed_uploads_get_distribution_errors(
    app: RegistryApp,
    method: str,
    query: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    path = f"{B}/uploads/" + app.storage.start_upload(REPO)
    response = call(app, method, path, query, body, **headers)
    assert (response.status, error_code(response)) == (status, code)


def test_upload_ends_after_a_digest_mismatch(app: RegistryApp) -> None:
    path = f"{B}/uploads/" + app.storage.start_upload(REPO)
    call(app, "PUT", path, f"digest={sha(b'other')}", b"abc")
    response = call(app, "PATCH", path, body=b"more")
    assert (response.status, error_code(response)) == (404, "BLOB_UPLOAD_UNKNOWN")


def test_upload_id_of_another_repository_is_unknown(app: RegistryApp) -> None:
    session = app.storage.start_upload("other/repo")
    response = call(app, "PATCH", f"{B}/uploads/{session}", body=b"x")
    assert (response.status, error_code(response)) == (404, "BLOB_UPLOAD_UNKNOWN")


def test_cancelled_upload_is_gone(app: RegistryApp) -> None:
    path = f"{B}/uploads/" + app.storage.start_upload(REPO)
    assert call(app, "DELETE", path).status == 204
    assert call(app, "GET", path).status == 404


def test_cross_repository_mount_links_blob(app: RegistryApp, storage: Storage) -> None:
    query = f"mount={sha(LAYER)}&from={REPO}"
    response = call(app, "POST", "/v2/mirror/copy/blobs/uploads/", query)
    assert response.status == 201
    assert response.headers.get("Docker-Content-Digest") == sha(LAYER)
    assert storage.has_blob("mirror/copy", sha(LAYER))


def test_mount_of_missing_blob_starts_an_upload(app: RegistryApp) -> None:
    query = f"mount={sha(b'nothing')}&from={REPO}"
    response = call(app, "POST", "/v2/mirror/copy/blobs/uploads/", query)
    assert response.status == 202
    assert response.headers.get("Docker-Upload-UUID")


def put_manifest(
    app: RegistryApp, reference: str, data: bytes, media_type: str
) -> Response:
    return call(app, "PUT", f"{M}/{reference}", body=data, Content_Type=media_type)


def test_manifest_put_by_tag_stores_and_tags(app: RegistryApp) -> None:
    response = put_manifest(app, "pushed", OCI, MT_OCI)
    assert response.status == 201
    assert response.headers.get("Docker-Content-Digest") == sha(OCI)
    assert response.headers.get("Location") == f"http://reg.test:5000{M}/{sha(OCI)}"
    fetched = call(app, "GET", f"{M}/pushed", Accept=MT_OCI)
    assert body_bytes(fetched) == OCI


def test_manifest_put_by_digest_stores_without_tag(app: RegistryApp) -> None:
    data = OCI + b"\n"
    response = put_manifest(app, sha(data), data, MT_OCI)
    assert response.status == 201
    assert app.storage.get_manifest(REPO, sha(data)) == (MT_OCI, data, sha(data))


def test_schema1_put_is_addressed_by_its_payload(app: RegistryApp) -> None:
    response = put_manifest(app, "s1-pushed", S1, MT_S1)
    assert response.headers.get("Docker-Content-Digest") == sha(S1_PAYLOAD)


def test_manifest_with_subject_answers_oci_subject(app: RegistryApp) -> None:
    doc = json.loads(OCI)
    doc["subject"] = descriptor(MT_OCI, DOCKER)
    response = put_manifest(app, "sig", json.dumps(doc).encode(), MT_OCI)
    assert response.headers.get("OCI-Subject") == sha(DOCKER)


def _with(doc: bytes, **changes: object) -> bytes:
    loaded = json.loads(doc)
    loaded.update(changes)
    return json.dumps(loaded).encode()


MISSING = descriptor("application/vnd.oci.image.layer.v1.tar", b"absent")
MANIFEST_PUT_ROWS = [
    pytest.param("t", b"{not json", MT_OCI, 400, "MANIFEST_INVALID", id="invalid-json"),
    pytest.param("t", b"[]", MT_OCI, 400, "MANIFEST_INVALID", id="json-array"),
    pytest.param("t", _with(OCI, layers=[MISSING]), MT_OCI, 400,
                 "MANIFEST_BLOB_UNKNOWN", id="unknown-layer"),
    pytest.param("t", _with(OCI, config=MISSING), MT_OCI, 400,
                 "MANIFEST_BLOB_UNKNOWN", id="unknown-config"),
    pytest.param("t", _with(INDEX, manifests=[MISSING]), MT_INDEX, 400,
                 "MANIFEST_BLOB_UNKNOWN", id="index-with-unknown-child"),
    pytest.param("t", OCI, MT_DOCKER, 400, "MANIFEST_INVALID",
                 id="media-type-field-differs-from-content-type"),
    pytest.param("t", _with(OCI, schemaVersion=3), MT_OCI, 400, "MANIFEST_INVALID",
                 id="wrong-schema-version"),
    pytest.param("t", _with(OCI, layers="x"), MT_OCI, 400, "MANIFEST_INVALID",
                 id="layers-not-a-list"),
    pytest.param("t", _with(OCI, layers=[{"digest": "sha256:1", "size": 1}]), MT_OCI,
                 400, "DIGEST_INVALID", id="malformed-layer-digest"),
    pytest.param("t", _with(OCI, layers=[{"digest": sha(LAYER), "size": -1}]), MT_OCI,
                 400, "MANIFEST_INVALID", id="negative-layer-size"),
    pytest.param("t", OCI, "text/html", 400, "MANIFEST_INVALID",
                 id="unsupported-content-type"),
    pytest.param(sha(b"other"), OCI, MT_OCI, 400, "DIGEST_INVALID",
                 id="digest-reference-differs-from-content"),
    pytest.param("-bad-tag", OCI, MT_OCI, 400, "TAG_INVALID", id="malformed-tag"),
    pytest.param("t", b" " * (4 * 1024 * 1024 + 1), MT_OCI, 400, "MANIFEST_INVALID",
                 id="manifest-over-4-mib"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("reference", "data", "media_type", "status", "code"), MANIFEST_PUT_ROWS
)
def test_invalid_manifest_puts_get_distribution_errors(
    app: RegistryApp,
    reference: str,
    data: bytes,
    media_type: str,
    status: int,
    code: str,
) -> None:
    response = put_manifest(app, reference, data, media_type)
    assert (response.status, error_code(response)) == (status, code)


def test_manifest_put_falls_back_to_the_media_type_field(app: RegistryApp) -> None:
    response = put_manifest(app, "generic", OCI, "application/json")
    assert response.status == 201
    assert app.storage.get_manifest(REPO, "generic") == (MT_OCI, OCI, sha(OCI))


def test_foreign_layers_need_not_be_stored(app: RegistryApp) -> None:
    foreign = dict(MISSING, urls=["https://example.invalid/layer"])
    response = put_manifest(app, "foreign", _with(OCI, layers=[foreign]), MT_OCI)
    assert response.status == 201


def test_deleting_a_tag_keeps_the_manifest(app: RegistryApp) -> None:
    assert call(app, "DELETE", f"{M}/zz-last").status == 202
    assert call(app, "GET", f"{M}/zz-last").status == 404
    assert call(app, "GET", f"{M}/docker").status == 200


def test_deleting_a_manifest_removes_its_tags(app: RegistryApp) -> None:
    assert call(app, "DELETE", f"{M}/{sha(DOCKER)}").status == 202
    for reference in ("docker", "zz-last", sha(DOCKER)):
        assert call(app, "GET", f"{M}/{reference}").status == 404


def test_deleting_unknown_manifest_is_manifest_unknown(app: RegistryApp) -> None:
    response = call(app, "DELETE", f"{M}/{sha(b'none')}")
    assert (response.status, error_code(response)) == (404, "MANIFEST_UNKNOWN")


def test_deleted_blob_is_unknown(app: RegistryApp) -> None:
    assert call(app, "DELETE", f"{B}/{sha(LAYER)}").status == 202
    response = call(app, "GET", f"{B}/{sha(LAYER)}")
    assert (response.status, error_code(response)) == (404, "BLOB_UNKNOWN")


def test_delete_disabled_is_unsupported(storage: Storage) -> None:
    app = RegistryApp(storage, delete_enabled=False)
    response = call(app, "DELETE", f"{B}/{sha(LAYER)}")
    assert (response.status, error_code(response)) == (405, "UNSUPPORTED")


# -- auth, faults and simulator bugs -----------------------------------------------


class RecordingPolicy:
    """Lets everything through except repository ``private``; records the scopes."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def authorize(self, request: Request, scope: Scope | None) -> Response | None:
        self.seen.append((request.path, None if scope is None else str(scope)))
        if scope is not None and scope.repository == "private":
            headers = Headers([("WWW-Authenticate", 'Bearer realm="x"')])
            return Response(401, headers, b"")
        return None


SCOPE_ROWS = [
    pytest.param("GET", "/v2/", None, id="ping-has-no-scope"),
    pytest.param("GET", f"{M}/docker", f"repository:{REPO}:pull", id="manifest-get-pull"),
    pytest.param("HEAD", f"{B}/{sha(LAYER)}", f"repository:{REPO}:pull", id="blob-head-pull"),
    pytest.param("POST", f"{B}/uploads/", f"repository:{REPO}:pull,push", id="upload-push"),
    pytest.param("PUT", f"{M}/x", f"repository:{REPO}:pull,push", id="manifest-put-push"),
    pytest.param("DELETE", f"{M}/x", f"repository:{REPO}:delete", id="delete-delete"),
    pytest.param("GET", "/v2/_catalog", "registry:catalog:*", id="catalog-registry-scope"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "scope"), SCOPE_ROWS)
def test_auth_policy_is_asked_with_the_request_scope(
    storage: Storage, method: str, path: str, scope: str | None
) -> None:
    policy = RecordingPolicy()
    call(RegistryApp(storage, auth=policy), method, path)
    assert policy.seen == [(path, scope)]


def test_auth_challenge_is_returned_before_the_handler_runs(storage: Storage) -> None:
    app = RegistryApp(storage, auth=RecordingPolicy())
    response = call(app, "PUT", "/v2/private/manifests/x", body=OCI)
    assert response.status == 401
    assert response.headers.get("Docker-Distribution-API-Version") == "registry/2.0"
    assert storage.repositories() == [REPO, "other/repo"]


def test_mount_from_a_repository_the_client_cannot_read_starts_an_upload(
    storage: Storage,
) -> None:
    storage.put_blob("private", b"secret layer")
    app = RegistryApp(storage, auth=RecordingPolicy())
    query = f"mount={sha(b'secret layer')}&from=private"
    response = call(app, "POST", "/v2/mine/blobs/uploads/", query)
    assert response.status == 202
    assert not storage.has_blob("mine", sha(b"secret layer"))


def test_faults_reshape_the_response(storage: Storage) -> None:
    faults = FaultSet([Fault(Match(path="/blobs/"), Status(503), name="blob-503")])
    app = RegistryApp(storage, faults=faults)
    response = call(app, "GET", f"{B}/{sha(LAYER)}")
    assert (response.status, response.fault) == (503, "blob-503")
    assert call(app, "GET", f"{M}/docker").status == 200


class BrokenStorage(Storage):
    def get_manifest(self, repo: str, reference: str) -> tuple[str, bytes, str] | None:
        raise RuntimeError("storage exploded")


def test_handler_exception_is_a_recorded_bug_reraised_by_check() -> None:
    with BrokenStorage() as storage:
        app = RegistryApp(storage, name="broken")
        response = app.handle(Request("GET", f"{M}/docker"))
        assert response.status == 500
        assert response.headers.get("X-Registry-Sim-Bug") == "RuntimeError"
        assert len(app.errors) == 1
        with pytest.raises(RuntimeError, match="storage exploded"):
            app.check()
        app.check()  # the bug was reported once


def test_fault_rule_exception_is_a_recorded_bug(storage: Storage) -> None:
    def explode(request: Request, response: Response) -> Response:
        raise ValueError("bad rule")

    app = RegistryApp(storage, faults=FaultSet([Fault(Match(), Custom(explode))]))
    assert app.handle(Request("GET", "/v2/")).status == 500
    with pytest.raises(ValueError, match="bad rule"):
        app.check()


# -- bad input never crashes the simulator ---------------------------------------

_SEGMENTS = st.sampled_from(
    ["v2", "library", "busybox", "manifests", "blobs", "uploads", "tags", "list",
     "_catalog", "docker", sha(LAYER), sha(DOCKER), "sha256:", "..", "", "%2F", "A"]
)  # fmt: skip
_PATHS = st.one_of(
    st.lists(st.one_of(_SEGMENTS, st.text(max_size=8)), max_size=7).map(
        lambda parts: "/" + "/".join(parts)
    ),
    st.text(max_size=40),
)
_HEADER_NAMES = st.sampled_from(
    ["Accept", "Range", "Content-Range", "Content-Type", "If-None-Match", "X-Other"]
)
_QUERY = st.lists(
    st.tuples(
        st.sampled_from(["digest", "mount", "from", "n", "last", "x"]),
        st.one_of(st.text(max_size=10), st.just(sha(LAYER)), st.just("-1")),
    ),
    max_size=3,
).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))


@pytest.fixture(scope="module")
def fuzz_app() -> Iterator[RegistryApp]:
    with Storage() as store:
        fill(store)
        yield RegistryApp(store)


@settings(deadline=None)
@given(
    method=st.sampled_from(["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "BREW"]),
    path=_PATHS,
    query=_QUERY,
    headers=st.lists(st.tuples(_HEADER_NAMES, st.text(max_size=20)), max_size=4),
    body=st.binary(max_size=64),
)
def test_random_requests_get_distribution_answers_not_crashes(
    fuzz_app: RegistryApp,
    method: str,
    path: str,
    query: str,
    headers: list[tuple[str, str]],
    body: bytes,
) -> None:
    request = Request(method, path, query, Headers(headers), body)
    response = fuzz_app.handle(request)
    fuzz_app.check()
    assert 200 <= response.status < 500
    if (
        response.status >= 400
        and response.headers.get("Content-Type") == "application/json"
    ):
        assert error_code(response) is not None
