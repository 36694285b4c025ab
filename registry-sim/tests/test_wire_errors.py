"""Wire errors are plain values with the spec's body shape."""

from __future__ import annotations

import json

import pytest

from registry_sim.wire_errors import ErrorCode, error, error_response


def test_error_response_has_the_spec_body_and_json_type() -> None:
    response = error_response(404, ErrorCode.BLOB_UNKNOWN, "blob unknown", "sha256:x")
    assert response.status == 404
    assert response.headers.get("Content-Type") == "application/json"
    assert isinstance(response.body, bytes)
    assert json.loads(response.body) == {
        "errors": [
            {"code": "BLOB_UNKNOWN", "message": "blob unknown", "detail": "sha256:x"}
        ]
    }


def test_detail_is_omitted_when_none() -> None:
    response = error_response(401, ErrorCode.UNAUTHORIZED, "auth")
    assert isinstance(response.body, bytes)
    assert json.loads(response.body) == {
        "errors": [{"code": "UNAUTHORIZED", "message": "auth"}]
    }


def test_unknown_code_strings_can_be_sent() -> None:
    response = error_response(400, "MADE_UP", "m", {"k": [1]})
    assert isinstance(response.body, bytes)
    assert json.loads(response.body)["errors"][0] == {
        "code": "MADE_UP",
        "message": "m",
        "detail": {"k": [1]},
    }


# Statuses as distribution registers them (registry/api/v2/errors.go, errcode).
STATUS_ROWS = [
    (ErrorCode.BLOB_UNKNOWN, 404),
    (ErrorCode.BLOB_UPLOAD_INVALID, 400),
    (ErrorCode.BLOB_UPLOAD_UNKNOWN, 404),
    (ErrorCode.DIGEST_INVALID, 400),
    (ErrorCode.MANIFEST_BLOB_UNKNOWN, 400),
    (ErrorCode.MANIFEST_INVALID, 400),
    (ErrorCode.MANIFEST_UNKNOWN, 404),
    (ErrorCode.NAME_INVALID, 400),
    (ErrorCode.NAME_UNKNOWN, 404),
    (ErrorCode.SIZE_INVALID, 400),
    (ErrorCode.UNAUTHORIZED, 401),
    (ErrorCode.DENIED, 403),
    (ErrorCode.UNSUPPORTED, 405),
    (ErrorCode.TOOMANYREQUESTS, 429),
    (ErrorCode.RANGE_INVALID, 416),
]


@pytest.mark.parametrize(
    ("code", "status"), [pytest.param(c, s, id=c.value) for c, s in STATUS_ROWS]
)
def test_each_code_has_distributions_status(code: ErrorCode, status: int) -> None:
    response = error(code)
    assert response.status == status
    assert isinstance(response.body, bytes)
    entry = json.loads(response.body)["errors"][0]
    assert entry == {"code": code.value, "message": code.message}


def test_every_code_is_its_own_name_with_a_message() -> None:
    for code in ErrorCode:
        assert code.value == code.name
        assert code.message
        assert 400 <= code.status < 600


def test_error_accepts_a_custom_message() -> None:
    response = error(ErrorCode.MANIFEST_UNKNOWN, "d", message="OCI index found")
    assert isinstance(response.body, bytes)
    assert json.loads(response.body)["errors"][0]["message"] == "OCI index found"


def test_error_responses_are_fresh_values() -> None:
    first = error(ErrorCode.DENIED)
    first.headers.set("X-Changed", "1")
    assert error(ErrorCode.DENIED).headers.get("X-Changed") is None
