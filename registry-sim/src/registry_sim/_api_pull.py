"""Read-side endpoints: ping, manifests and blobs GET/HEAD, tag and catalog listing."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

from registry_sim._api import Call, is_tag, parse_accept
from registry_sim._api_manifests import Chosen, negotiate
from registry_sim._content import is_digest
from registry_sim.wire import FileBody, Headers, Response
from registry_sim.wire_errors import ErrorCode, error

__all__ = ["get_blob", "get_manifest", "list_catalog", "list_tags", "ping"]


def ping(call: Call) -> Response:
    """``GET /v2/``: the API version check.

    https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#determining-support
    "a 200 OK response from this endpoint indicates that the target implements the spec"
    """
    headers = Headers([("Content-Type", "application/json")])
    return Response(200, headers, b"{}")


def _etag_matches(call: Call, digest: str) -> bool:
    # distribution etagMatch: quoted or unquoted digest in If-None-Match.
    wanted = {digest, f'"{digest}"'}
    return any(
        v.strip() in wanted for v in call.request.headers.get_all("If-None-Match")
    )


def get_manifest(call: Call) -> Response:
    """``GET``/``HEAD /v2/<name>/manifests/<reference>``.

    https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pulling-manifests
    "The <reference> MUST be either (a) the digest of the manifest or (b) a tag";
    "If the manifest is not found in the repository, the response code MUST be 404".
    """
    by_tag = is_tag(call.ref)
    if not by_tag and not is_digest(call.ref):
        return error(
            ErrorCode.MANIFEST_UNKNOWN, detail=f"invalid reference {call.ref!r}"
        )
    stored = call.storage.get_manifest(call.name, call.ref)
    if stored is None:
        kind = "tag" if by_tag else "revision"
        return error(ErrorCode.MANIFEST_UNKNOWN, detail=f"unknown {kind} {call.ref}")
    chosen = negotiate(
        call.storage,
        call.name,
        stored,
        accepted=parse_accept(call.request.headers),
        by_tag=by_tag,
        policy=call.accept_policy,
    )
    if isinstance(chosen, Response):
        return chosen
    return _manifest_response(call, chosen)


def _manifest_response(call: Call, chosen: Chosen) -> Response:
    headers = Headers(
        [
            ("Content-Type", chosen.media_type),
            ("Docker-Content-Digest", chosen.digest),
            ("Etag", f'"{chosen.digest}"'),
        ]
    )
    if _etag_matches(call, chosen.digest):
        return Response(304, headers, b"", length=0)
    if call.is_head:
        return Response(200, headers, b"", length=len(chosen.data))
    return Response(200, headers, chosen.data)


# RFC 9110 §14.1.2: byte-range-spec = first-pos "-" [ last-pos ]; suffix = "-" length
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _parse_range(value: str, size: int) -> tuple[int, int] | str | None:
    """``(first, last)`` inclusive, ``None`` to ignore the header, or ``"invalid"``."""
    value = value.strip()
    if value.startswith("bytes=") and "," in value:
        # Deviation: multiple ranges are ignored and the whole blob is sent, which
        # RFC 9110 §14.2 allows ("A server MAY ignore the Range header field").
        return None
    match = _RANGE.fullmatch(value)
    if match is None or match.group(1) == match.group(2) == "":
        return "invalid"
    first_s, last_s = match.group(1), match.group(2)
    if first_s == "":
        suffix = int(last_s)
        if suffix == 0 or size == 0:
            return "invalid"
        return max(size - suffix, 0), size - 1
    first = int(first_s)
    last = size - 1 if last_s == "" else min(int(last_s), size - 1)
    if first >= size or (last_s != "" and int(last_s) < first):
        return "invalid"
    return first, last


def get_blob(call: Call) -> Response:
    """``GET``/``HEAD /v2/<name>/blobs/<digest>``, with single byte ranges.

    https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pulling-blobs
    "A GET request to an existing blob URL MUST provide the expected blob, with a
    response code that MUST be 200 OK"; a registry "SHOULD support the Range header".
    """
    if not is_digest(call.ref):
        return error(ErrorCode.DIGEST_INVALID, detail=f"invalid digest {call.ref!r}")
    path = call.storage.blob_path(call.ref)
    size = call.storage.blob_size(call.ref)
    if not call.storage.has_blob(call.name, call.ref) or path is None or size is None:
        return error(ErrorCode.BLOB_UNKNOWN, detail=call.ref)
    headers = Headers(
        [
            ("Content-Type", "application/octet-stream"),
            ("Docker-Content-Digest", call.ref),
            ("Etag", f'"{call.ref}"'),
            ("Accept-Ranges", "bytes"),
            ("Cache-Control", "max-age=31536000"),
        ]
    )
    if _etag_matches(call, call.ref):
        return Response(304, headers, b"", length=0)
    status, first, length = 200, 0, size
    range_header = call.request.headers.get("Range")
    if range_header is not None:
        chosen = _parse_range(range_header, size)
        if chosen == "invalid":
            refused = error(ErrorCode.RANGE_INVALID, detail=range_header)
            refused.headers.set("Content-Range", f"bytes */{size}")
            return refused
        if isinstance(chosen, tuple):
            status, first, length = 206, chosen[0], chosen[1] - chosen[0] + 1
            headers.set("Content-Range", f"bytes {chosen[0]}-{chosen[1]}/{size}")
    if call.is_head:
        return Response(status, headers, b"", length=length)
    return Response(status, headers, FileBody(path, first, length))


def _page(
    call: Call, items: list[str], path: str
) -> tuple[list[str], str | None] | Response:
    # https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-tags
    # "?n=<integer>" limits the list; "?last=<tag>" continues lexically after <tag>;
    # a Link header with rel="next" tells the client there is more.
    n_value = call.request.query_value("n")
    last = call.request.query_value("last")
    if last:
        items = [i for i in items if i > last]
    if n_value is None or n_value == "":
        return items, None
    if not n_value.isdigit():
        return error(ErrorCode.PAGINATION_NUMBER_INVALID, detail=f"n={n_value!r}")
    n = int(n_value)
    if len(items) <= n:
        return items[:n], None
    page = items[:n]
    after = page[-1] if page else (last or "")
    link = f'<{path}?n={n}&last={quote(after, safe="")}>; rel="next"'
    return page, link


def _json_page(call: Call, key: str, items: list[str], path: str) -> Response:
    paged = _page(call, items, path)
    if isinstance(paged, Response):
        return paged
    page, link = paged
    document: dict[str, object] = {key: page}
    if key == "tags":
        document = {"name": call.name, "tags": page}
    headers = Headers([("Content-Type", "application/json")])
    if link is not None:
        headers.add("Link", link)
    return Response(200, headers, json.dumps(document).encode())


def list_tags(call: Call) -> Response:
    """``GET /v2/<name>/tags/list`` with ``n``/``last`` pagination.

    https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-tags
    """
    if not call.storage.has_repository(call.name):
        return error(ErrorCode.NAME_UNKNOWN, detail={"name": call.name})
    path = f"/v2/{call.name}/tags/list"
    return _json_page(call, "tags", call.storage.tags(call.name), path)


def list_catalog(call: Call) -> Response:
    """``GET /v2/_catalog`` with ``n``/``last`` pagination.

    Not in the OCI spec; Docker Registry HTTP API V2, "Listing Repositories"
    https://github.com/distribution/distribution/blob/v2.8.3/docs/spec/api.md#listing-repositories
    """
    return _json_page(call, "repositories", call.storage.repositories(), "/v2/_catalog")
