"""Distribution error codes as plain values (STYLE point 5).

Handlers *return* these responses; a Python exception inside a handler is a simulator
bug, never a wire error.

https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#error-codes
"The error response body MUST be a JSON object with an ``errors`` array; each element
has ``code``, ``message`` and optionally ``detail``."
"""

from __future__ import annotations

import json
from enum import StrEnum

from registry_sim.wire import Headers, Response

__all__ = ["ErrorCode", "error", "error_response"]


class ErrorCode(StrEnum):
    """The error codes the simulator can put on the wire.

    The first fourteen are the distribution-spec v1.1.0 table; ``RANGE_INVALID``,
    ``TAG_INVALID``, ``PAGINATION_NUMBER_INVALID``, ``UNAVAILABLE`` and ``UNKNOWN``
    come from distribution's ``registry/api/v2/errors.go`` and ``errcode`` packages.
    """

    BLOB_UNKNOWN = "BLOB_UNKNOWN"
    BLOB_UPLOAD_INVALID = "BLOB_UPLOAD_INVALID"
    BLOB_UPLOAD_UNKNOWN = "BLOB_UPLOAD_UNKNOWN"
    DIGEST_INVALID = "DIGEST_INVALID"
    MANIFEST_BLOB_UNKNOWN = "MANIFEST_BLOB_UNKNOWN"
    MANIFEST_INVALID = "MANIFEST_INVALID"
    MANIFEST_UNKNOWN = "MANIFEST_UNKNOWN"
    NAME_INVALID = "NAME_INVALID"
    NAME_UNKNOWN = "NAME_UNKNOWN"
    SIZE_INVALID = "SIZE_INVALID"
    UNAUTHORIZED = "UNAUTHORIZED"
    DENIED = "DENIED"
    UNSUPPORTED = "UNSUPPORTED"
    TOOMANYREQUESTS = "TOOMANYREQUESTS"
    RANGE_INVALID = "RANGE_INVALID"
    TAG_INVALID = "TAG_INVALID"
    PAGINATION_NUMBER_INVALID = "PAGINATION_NUMBER_INVALID"
    UNAVAILABLE = "UNAVAILABLE"
    UNKNOWN = "UNKNOWN"

    @property
    def status(self) -> int:
        """The HTTP status distribution sends with this code."""
        return _STATUS[self]

    @property
    def message(self) -> str:
        """The spec's message text for this code."""
        return _MESSAGE[self]


# Statuses as distribution's errcode descriptors register them (registry/api/v2/errors.go).
_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BLOB_UNKNOWN: 404,
    ErrorCode.BLOB_UPLOAD_INVALID: 400,
    ErrorCode.BLOB_UPLOAD_UNKNOWN: 404,
    ErrorCode.DIGEST_INVALID: 400,
    ErrorCode.MANIFEST_BLOB_UNKNOWN: 400,
    ErrorCode.MANIFEST_INVALID: 400,
    ErrorCode.MANIFEST_UNKNOWN: 404,
    ErrorCode.NAME_INVALID: 400,
    ErrorCode.NAME_UNKNOWN: 404,
    ErrorCode.SIZE_INVALID: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.DENIED: 403,
    ErrorCode.UNSUPPORTED: 405,
    ErrorCode.TOOMANYREQUESTS: 429,
    ErrorCode.RANGE_INVALID: 416,
    ErrorCode.TAG_INVALID: 400,
    ErrorCode.PAGINATION_NUMBER_INVALID: 400,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.UNKNOWN: 500,
}

# Messages from the spec's error-code table (v1.1.0), distribution's for the extras.
_MESSAGE: dict[ErrorCode, str] = {
    ErrorCode.BLOB_UNKNOWN: "blob unknown to registry",
    ErrorCode.BLOB_UPLOAD_INVALID: "blob upload invalid",
    ErrorCode.BLOB_UPLOAD_UNKNOWN: "blob upload unknown to registry",
    ErrorCode.DIGEST_INVALID: "provided digest did not match uploaded content",
    ErrorCode.MANIFEST_BLOB_UNKNOWN: (
        "manifest references a manifest or blob unknown to registry"
    ),
    ErrorCode.MANIFEST_INVALID: "manifest invalid",
    ErrorCode.MANIFEST_UNKNOWN: "manifest unknown to registry",
    ErrorCode.NAME_INVALID: "invalid repository name",
    ErrorCode.NAME_UNKNOWN: "repository name not known to registry",
    ErrorCode.SIZE_INVALID: "provided length did not match content length",
    ErrorCode.UNAUTHORIZED: "authentication required",
    ErrorCode.DENIED: "requested access to the resource is denied",
    ErrorCode.UNSUPPORTED: "the operation is unsupported",
    ErrorCode.TOOMANYREQUESTS: "too many requests",
    ErrorCode.RANGE_INVALID: "invalid content range",
    ErrorCode.TAG_INVALID: "manifest tag did not match URI",
    ErrorCode.PAGINATION_NUMBER_INVALID: "invalid number of results requested",
    ErrorCode.UNAVAILABLE: "service unavailable",
    ErrorCode.UNKNOWN: "unknown error",
}


def error_response(
    status: int,
    code: ErrorCode | str,
    message: str,
    detail: object = None,
) -> Response:
    """Build a distribution error response with one entry.

    Args:
        status: the HTTP status.
        code: an :class:`ErrorCode` (or any string, to simulate unknown codes).
        message: the human-readable message.
        detail: any JSON-serialisable value; omitted from the body when ``None``.

    Returns:
        A response with ``Content-Type: application/json`` and the body
        ``{"errors": [{"code", "message", "detail"}]}``.
    """
    entry: dict[str, object] = {"code": str(code), "message": message}
    if detail is not None:
        entry["detail"] = detail
    body = json.dumps({"errors": [entry]}, default=str).encode()
    headers = Headers([("Content-Type", "application/json")])
    return Response(status, headers, body)


def error(
    code: ErrorCode, detail: object = None, *, message: str | None = None
) -> Response:
    """The usual response for ``code``: its status and the spec's message.

    Args:
        code: the error code.
        detail: optional detail value.
        message: overrides the default message.

    Returns:
        The error response.
    """
    return error_response(code.status, code, message or code.message, detail)
