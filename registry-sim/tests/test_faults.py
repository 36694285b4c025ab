"""Fault rules: matching, each action, counting, loading from files."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from registry_sim.faults import (
    Action,
    CorruptBody,
    Custom,
    Delay,
    Drip,
    DropHeader,
    Fault,
    FaultSet,
    Match,
    Redirect,
    Reset,
    SetHeader,
    Stall,
    Status,
    Truncate,
    WrongDigestHeader,
    WrongLength,
    WrongMediaType,
    load_faults,
)
from registry_sim.wire import Delivery, FileBody, Headers, Request, Response

BLOB = "/v2/lib/app/blobs/sha256:" + "a" * 64


def request(
    method: str = "GET",
    path: str = BLOB,
    query: str = "",
    host: str = "reg.test:5000",
    **headers: str,
) -> Request:
    return Request(method, path, query, Headers(list(headers.items())), host=host)


def ok(body: bytes = b"0123456789") -> Response:
    headers = Headers(
        [
            ("Content-Type", "application/octet-stream"),
            ("Docker-Content-Digest", "sha256:" + "a" * 64),
        ]
    )
    return Response(200, headers, body)


MATCH_ROWS = [
    pytest.param(Match(), request(), True, id="empty-match-matches-everything"),
    pytest.param(Match(method="GET"), request("HEAD"), False, id="method-differs"),
    pytest.param(Match(method="get head"), request("HEAD"), True, id="method-list"),
    pytest.param(Match(path=r"/blobs/"), request(), True, id="path-is-searched"),
    pytest.param(Match(path=r"^/blobs/"), request(), False, id="anchored-path"),
    pytest.param(Match(host="reg.test"), request(), True, id="host-without-port"),
    pytest.param(Match(host="reg.test:5000"), request(), True, id="host-with-port"),
    pytest.param(Match(host="mirror.test"), request(), False, id="other-host"),
    pytest.param(Match(query=r"digest="), request(query="digest=x"), True, id="query"),
    pytest.param(Match(query=r"digest="), request(), False, id="query-absent"),
    pytest.param(
        Match(header=("Range", r"^bytes=\d+-$")),
        request(Range="bytes=10-"),
        True,
        id="header-regex",
    ),
    pytest.param(Match(header=("Range", ".")), request(), False, id="header-absent"),
]


@pytest.mark.parametrize(("match", "req", "expected"), MATCH_ROWS)
def test_match_selects_requests(match: Match, req: Request, expected: bool) -> None:
    assert match.matches(req) is expected


def apply(
    action: Action, response: Response | None = None, req: Request | None = None
) -> Response:
    faults = FaultSet([Fault(Match(), action, name="rule")])
    return faults.apply(req or request(), response or ok())


def body(response: Response) -> bytes:
    assert isinstance(response.body, bytes)
    return response.body


def code(response: Response) -> str:
    return str(json.loads(body(response))["errors"][0]["code"])


def test_status_503_answers_a_distribution_error_with_retry_after() -> None:
    response = apply(Status(503, retry_after=2))
    assert response.status == 503
    assert response.headers.get("Retry-After") == "2"
    assert code(response) == "UNAVAILABLE"
    assert response.fault == "rule"


def test_status_429_is_toomanyrequests() -> None:
    response = apply(Status(429, retry_after=0.5))
    assert response.headers.get("Retry-After") == "0.5"
    assert code(response) == "TOOMANYREQUESTS"


def test_status_404_names_the_resource_kind() -> None:
    manifest = request(path="/v2/x/manifests/latest")
    assert code(apply(Status(404), req=manifest)) == "MANIFEST_UNKNOWN"
    assert code(apply(Status(404))) == "BLOB_UNKNOWN"


def test_status_with_explicit_body_and_headers() -> None:
    response = apply(Status(500, body="<html>oops</html>", headers=(("X-A", "1"),)))
    assert (response.status, body(response)) == (500, b"<html>oops</html>")
    assert response.headers.get("X-A") == "1"
    assert response.headers.get("Docker-Content-Digest") is None


def test_corrupt_body_flips_one_byte_and_keeps_length() -> None:
    corrupted = body(apply(CorruptBody()))
    assert len(corrupted) == 10
    diffs = [
        i
        for i, (a, b) in enumerate(zip(corrupted, b"0123456789", strict=True))
        if a != b
    ]
    assert diffs == [5]


def test_corrupt_body_streams_a_file_region_with_the_byte_flipped(
    tmp_path: Path,
) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(bytes(range(200)))
    file_response = Response(200, Headers(), FileBody(blob, 100, 50))
    corrupted = apply(CorruptBody(at=3), file_response)
    assert corrupted.content_length() == 50
    assert not isinstance(corrupted.body, bytes | FileBody)
    streamed = b"".join(corrupted.body)
    expected = bytearray(range(100, 150))
    expected[3] ^= 0xFF
    assert streamed == bytes(expected)


def test_wrong_length_announces_more_than_the_body() -> None:
    response = apply(WrongLength(+5))
    assert response.content_length() == 15
    assert body(response) == b"0123456789"


@pytest.mark.parametrize(
    ("action", "header", "value"),
    [
        pytest.param(WrongDigestHeader("sha256:XYZ"), "Docker-Content-Digest",
                     "sha256:XYZ", id="wrong-digest-header"),
        pytest.param(DropHeader("Docker-Content-Digest"), "Docker-Content-Digest", None,
                     id="drop-header"),
        pytest.param(SetHeader("X-Trace", "1"), "X-Trace", "1", id="set-header"),
        pytest.param(WrongMediaType("text/plain"), "Content-Type", "text/plain",
                     id="wrong-media-type"),
    ],
)  # fmt: skip
def test_header_actions_rewrite_headers(
    action: Action, header: str, value: str | None
) -> None:
    assert apply(action).headers.get(header) == value


@pytest.mark.parametrize(
    ("action", "delivery"),
    [
        pytest.param(Delay(0.5), Delivery(delay_s=0.5), id="delay"),
        pytest.param(Drip(1024), Delivery(drip_bytes_per_s=1024), id="drip"),
        pytest.param(Truncate(4), Delivery(truncate_at=4), id="truncate"),
        pytest.param(Reset(), Delivery(reset_at=0), id="reset"),
        pytest.param(Stall(3, 1.5), Delivery(stall_after=3, stall_s=1.5), id="stall"),
    ],
)
def test_transport_actions_only_set_delivery(
    action: Action, delivery: Delivery
) -> None:
    response = apply(action)
    assert response.delivery == delivery
    assert (response.status, body(response)) == (200, b"0123456789")


def test_redirect_substitutes_path_and_query() -> None:
    action = Redirect("http://127.0.0.2:9000/storage{path}{query}")
    response = apply(action, req=request(query="x=1"))
    assert response.status == 307
    assert (
        response.headers.get("Location") == f"http://127.0.0.2:9000/storage{BLOB}?x=1"
    )
    bare = apply(Redirect("https://{host}/r{path}{query}", status=302))
    assert bare.headers.get("Location") == f"https://reg.test:5000/r{BLOB}"


def test_custom_action_replaces_the_response() -> None:
    response = apply(Custom(lambda req, resp: Response(418, Headers(), b"teapot")))
    assert response.status == 418


def test_times_limits_how_often_a_rule_fires() -> None:
    faults = FaultSet([Fault(Match(), Status(503), times=2, name="twice")])
    statuses = [faults.apply(request(), ok()).status for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    assert faults.fired("twice") == 2


def test_non_matching_requests_do_not_consume_times() -> None:
    faults = FaultSet([Fault(Match(method="HEAD"), Status(500), times=1)])
    assert faults.apply(request("GET"), ok()).status == 200
    assert faults.apply(request("HEAD"), ok()).status == 500


def test_every_matching_rule_applies_in_order_and_is_named() -> None:
    faults = FaultSet()
    faults.add(Fault(Match(), Delay(1.0), name="slow"))
    faults.add(Fault(Match(), Truncate(3), name="short"))
    faults.add(Fault(Match(method="PUT"), Status(500), name="never"))
    response = faults.apply(request(), ok())
    assert response.delivery == Delivery(delay_s=1.0, truncate_at=3)
    assert response.fault == "slow,short"


def test_unnamed_rule_is_labelled_by_its_action() -> None:
    response = FaultSet([Fault(Match(), Status(502))]).apply(request(), ok())
    assert response.fault == repr(Status(502))


def test_clear_removes_every_rule() -> None:
    faults = FaultSet([Fault(Match(), Status(500))])
    faults.clear()
    assert len(faults) == 0
    assert faults.apply(request(), ok()).status == 200


def test_times_is_exact_under_concurrency() -> None:
    faults = FaultSet([Fault(Match(), Status(503), times=5, name="five")])
    statuses: list[int] = []
    lock = threading.Lock()

    def hit() -> None:
        for _ in range(20):
            status = faults.apply(request(), ok()).status
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(503) == 5
    assert faults.fired("five") == 5


TOML_RULES = """
[[fault]]
name = "blob-503"
times = 2
match = { method = "GET", path = "/blobs/" }
action = { type = "status", code = 503, retry_after = 1, headers = { X-Why = "test" } }

[[fault]]
match = { header = ["Range", "bytes"] }
action = { type = "truncate", at = 4 }
"""


def test_load_faults_reads_toml(tmp_path: Path) -> None:
    path = tmp_path / "faults.toml"
    path.write_text(TOML_RULES)
    faults = load_faults(path)
    rules = list(faults)
    assert rules[0] == Fault(
        Match(method="GET", path="/blobs/"),
        Status(503, retry_after=1, headers=(("X-Why", "test"),)),
        times=2,
        name="blob-503",
    )
    assert rules[1] == Fault(Match(header=("Range", "bytes")), Truncate(4))
    assert faults.apply(request(), ok()).status == 503


def test_load_faults_reads_json_list(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    rules = [{"match": {"path": "manifests"}, "action": {"type": "drop_header",
              "name": "Docker-Content-Digest"}}]  # fmt: skip
    path.write_text(json.dumps(rules))
    assert list(load_faults(path)) == [
        Fault(Match(path="manifests"), DropHeader("Docker-Content-Digest"))
    ]


@pytest.mark.parametrize(
    "content",
    [
        pytest.param('[{"match": {}, "action": {"type": "explode"}}]', id="unknown-type"),
        pytest.param('[{"match": {}}]', id="missing-action"),
        pytest.param('{"faults": 3}', id="not-a-list"),
        pytest.param('[{"match": {"nope": 1}, "action": {"type": "reset"}}]',
                     id="unknown-match-field"),
    ],
)  # fmt: skip
def test_load_faults_rejects_malformed_rules(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError):
        load_faults(path)
