"""Write-side endpoints: blob uploads, cross-repository mounts, manifest PUT, deletes."""

from __future__ import annotations

import json
import re

from registry_sim._api import Call, is_repository_name, is_tag
from registry_sim._api_manifests import validate_manifest
from registry_sim._content import manifest_digest, split_digest
from registry_sim.access import Scope
from registry_sim.storage import (
    DigestMismatch,
    UnsupportedDigest,
    UploadOutOfOrder,
    UploadUnknown,
)
from registry_sim.wire import Headers, Response
from registry_sim.wire_errors import ErrorCode, error

__all__ = [
    "cancel_upload",
    "delete_blob",
    "delete_manifest",
    "finish_upload",
    "patch_upload",
    "put_manifest",
    "start_upload",
    "upload_status",
]

# distribution maxManifestBodySize; the spec: registries SHOULD accept at least 4 MiB.
_MAX_MANIFEST = 4 * 1024 * 1024
# Content-Range of a chunk: the spec's "<start>-<end>", plus the RFC form some send.
_CONTENT_RANGE = re.compile(r"(?:bytes )?(\d+)-(\d+)(?:/(?:\d+|\*))?")


def _empty(status: int, *pairs: tuple[str, str]) -> Response:
    return Response(status, Headers(list(pairs)), b"", length=0)


def _upload_state(call: Call, session: str, status: int) -> Response:
    size = call.storage.upload_size(session)
    # distribution blobUploadResponse: "Range: 0-<size-1>", "0-0" while empty.
    end = max(size - 1, 0)
    return _empty(
        status,
        ("Location", call.url(f"/v2/{call.name}/blobs/uploads/{session}")),
        ("Range", f"0-{end}"),
        ("Docker-Upload-UUID", session),
    )


def _created_blob(call: Call, digest: str) -> Response:
    return _empty(
        201,
        ("Location", call.url(f"/v2/{call.name}/blobs/{digest}")),
        ("Docker-Content-Digest", digest),
    )


def _finish(call: Call, session: str, digest: str | None) -> Response:
    if digest is None or split_digest(digest) is None:
        return error(ErrorCode.DIGEST_INVALID, detail=f"bad digest {digest!r}")
    try:
        call.storage.finish_upload(session, digest)
    except (DigestMismatch, UnsupportedDigest) as exc:
        return error(ErrorCode.DIGEST_INVALID, detail=str(exc))
    return _created_blob(call, digest)


def _mount(call: Call, digest: str, source: str) -> Response | None:
    # https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#mounting-a-blob-from-another-repository
    # "If the registry does not support cross-repository mounting or is unable to
    #  mount the requested blob, it SHOULD return a 202" and start a normal upload.
    if split_digest(digest) is None:
        return error(ErrorCode.DIGEST_INVALID, detail=f"bad digest {digest!r}")
    if not is_repository_name(source):
        return error(ErrorCode.NAME_INVALID, detail={"name": source})
    if call.authorize(Scope.pull(source)) is not None:
        return None
    if not call.storage.mount_blob(source, call.name, digest):
        return None
    return _created_blob(call, digest)


def start_upload(call: Call) -> Response:
    """``POST /v2/<name>/blobs/uploads/``: session, monolithic upload or mount.

    https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pushing-blobs
    "...the registry MUST respond with a 202 Accepted and a Location header";
    monolithic: "POST /v2/<name>/blobs/uploads/?digest=<digest>" answers 201 Created.
    """
    mount, source = call.request.query_value("mount"), call.request.query_value("from")
    if mount is not None and source is not None:
        mounted = _mount(call, mount, source)
        if mounted is not None:
            return mounted
    digest = call.request.query_value("digest")
    if digest is not None and split_digest(digest) is None:
        return error(ErrorCode.DIGEST_INVALID, detail=f"bad digest {digest!r}")
    session = call.storage.start_upload(call.name)
    if digest is None:
        return _upload_state(call, session, 202)
    call.storage.append_upload(session, call.request.body)
    return _finish(call, session, digest)


def _session(call: Call) -> str | Response:
    try:
        owner = call.storage.upload_repo(call.ref)
    except UploadUnknown:
        owner = None
    if owner != call.name:
        return error(ErrorCode.BLOB_UPLOAD_UNKNOWN, detail=call.ref)
    return call.ref


def _append(call: Call, session: str) -> Response | None:
    body = call.request.body
    content_range = call.request.headers.get("Content-Range")
    start = None
    if content_range is not None:
        match = _CONTENT_RANGE.fullmatch(content_range.strip())
        if match is None:
            return error(ErrorCode.BLOB_UPLOAD_INVALID, detail=content_range)
        start, end = int(match.group(1)), int(match.group(2))
        if start > end and not (body == b"" and end == start - 1):
            return error(ErrorCode.RANGE_INVALID, detail=content_range)
        if end - start + 1 != len(body):
            return error(ErrorCode.SIZE_INVALID, detail=content_range)
    try:
        call.storage.append_upload(session, body, start)
    except UploadOutOfOrder as exc:
        # "If a chunk is uploaded out of order, the registry MUST respond with a
        #  416 Requested Range Not Satisfiable code" (#pushing-a-blob-in-chunks).
        refused = error(ErrorCode.RANGE_INVALID, detail=str(exc))
        state = _upload_state(call, session, 416)
        refused.headers.set("Location", state.headers.get("Location") or "")
        refused.headers.set("Range", state.headers.get("Range") or "")
        return refused
    return None


def patch_upload(call: Call) -> Response:
    """``PATCH /v2/<name>/blobs/uploads/<id>``: one chunk.

    https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pushing-a-blob-in-chunks
    """
    session = _session(call)
    if isinstance(session, Response):
        return session
    problem = _append(call, session)
    return problem or _upload_state(call, session, 202)


def finish_upload(call: Call) -> Response:
    """``PUT /v2/<name>/blobs/uploads/<id>?digest=<digest>``, optionally a last chunk.

    https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pushing-a-blob-in-chunks
    "The closing PUT request MUST include the <digest> of the whole blob".
    """
    session = _session(call)
    if isinstance(session, Response):
        return session
    digest = call.request.query_value("digest")
    if digest is None or split_digest(digest) is None:
        return error(ErrorCode.DIGEST_INVALID, detail=f"bad digest {digest!r}")
    if call.request.body or call.request.headers.get("Content-Range") is not None:
        problem = _append(call, session)
        if problem is not None:
            return problem
    return _finish(call, session, digest)


def upload_status(call: Call) -> Response:
    """``GET /v2/<name>/blobs/uploads/<id>``: how much was received.

    https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pushing-a-blob-in-chunks
    "...the registry MUST respond with 204 No Content and a Range header".
    """
    session = _session(call)
    if isinstance(session, Response):
        return session
    return _upload_state(call, session, 204)


def cancel_upload(call: Call) -> Response:
    """``DELETE /v2/<name>/blobs/uploads/<id>`` (distribution's upload cancel)."""
    session = _session(call)
    if isinstance(session, Response):
        return session
    call.storage.cancel_upload(session)
    return _empty(204)


def put_manifest(call: Call) -> Response:
    """``PUT /v2/<name>/manifests/<reference>``.

    https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pushing-manifests
    "...the registry MUST respond with a 201 Created and a Location header";
    "Docker-Content-Digest" carries the canonical digest.
    """
    by_digest = split_digest(call.ref)
    if by_digest is None and not is_tag(call.ref):
        code = ErrorCode.DIGEST_INVALID if ":" in call.ref else ErrorCode.TAG_INVALID
        return error(code, detail=call.ref)
    data = call.request.body
    if len(data) > _MAX_MANIFEST:
        return error(ErrorCode.MANIFEST_INVALID, detail="manifest too large")
    content_type = (call.request.headers.get("Content-Type") or "").split(";")[0]
    checked = validate_manifest(
        content_type.strip().lower(),
        data,
        has_blob=lambda d: call.storage.has_blob(call.name, d),
        has_manifest=lambda d: call.storage.resolve(call.name, d) is not None,
    )
    if isinstance(checked, Response):
        return checked
    algorithm = by_digest[0] if by_digest else "sha256"
    digest = manifest_digest(data, checked, algorithm)
    if by_digest is not None and digest != call.ref:
        return error(ErrorCode.DIGEST_INVALID, detail=f"content is {digest}")
    call.storage.put_manifest(call.name, digest, data, checked)
    if by_digest is None:
        call.storage.tag(call.name, call.ref, digest)
    response = _empty(
        201,
        ("Location", call.url(f"/v2/{call.name}/manifests/{digest}")),
        ("Docker-Content-Digest", digest),
    )
    subject = _subject(data)
    if subject is not None:
        # v1.1.0 #pushing-manifests-with-subject: "OCI-Subject" names the subject.
        response.headers.set("OCI-Subject", subject)
    return response


def _subject(data: bytes) -> str | None:
    try:
        subject = json.loads(data).get("subject")
    except (ValueError, AttributeError):
        return None
    if isinstance(subject, dict) and isinstance(subject.get("digest"), str):
        return str(subject["digest"])
    return None


def delete_manifest(call: Call) -> Response:
    """``DELETE /v2/<name>/manifests/<reference>`` (a tag, or a manifest by digest).

    https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#deleting-manifests
    "...the registry MUST respond with either a 202 Accepted code or a 404 Not Found".
    """
    if not call.delete_enabled:
        return error(ErrorCode.UNSUPPORTED)
    if not call.storage.delete_manifest(call.name, call.ref):
        return error(ErrorCode.MANIFEST_UNKNOWN, detail=call.ref)
    return _empty(202)


def delete_blob(call: Call) -> Response:
    """``DELETE /v2/<name>/blobs/<digest>``.

    https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#deleting-blobs
    "...the registry MUST respond with either a 202 Accepted or a 404 Not Found".
    """
    if not call.delete_enabled:
        return error(ErrorCode.UNSUPPORTED)
    if split_digest(call.ref) is None:
        return error(ErrorCode.DIGEST_INVALID, detail=call.ref)
    if not call.storage.delete_blob(call.name, call.ref):
        return error(ErrorCode.BLOB_UNKNOWN, detail=call.ref)
    return _empty(202, ("Docker-Content-Digest", call.ref))
