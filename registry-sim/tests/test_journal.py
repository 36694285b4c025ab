"""The journal: redacted exchanges, queries, near-miss explanations."""

from __future__ import annotations

import base64
import json
import threading

import pytest

from registry_sim.journal import (
    ANY,
    Exchange,
    Journal,
    classify_authorization,
    redact_query,
)
from registry_sim.wire import Headers, Request, Response

SECRET = "s3cr3t-pa55"
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def describe(token: str) -> str:
    return "sub=u scope=repository:lib/app:pull"


def req(
    method: str = "GET",
    path: str = "/v2/lib/app/manifests/latest",
    query: str = "",
    host: str = "127.0.0.1:5000",
    **headers: str,
) -> Request:
    pairs = [(k.replace("_", "-"), v) for k, v in headers.items()]
    return Request(method, path, query, Headers(pairs), host=host, connection_id=7)


AUTH_ROWS = [
    pytest.param(basic("alice", SECRET), None, "Basic user=alice", ("basic", "alice"),
                 id="basic-keeps-only-the-user"),
    pytest.param("Basic !!!notbase64", None, "Basic <malformed>", ("basic", "<malformed>"),
                 id="malformed-basic"),
    pytest.param(f"Bearer {TOKEN}", None, "Bearer <token>", ("bearer", "<token>"),
                 id="bearer-without-describer"),
    pytest.param(f"Bearer {TOKEN}", describe, f"Bearer {describe(TOKEN)}",
                 ("bearer", describe(TOKEN)), id="bearer-described"),
    pytest.param(f"Bearer {TOKEN}", lambda t: f"token {t}", "Bearer <token>",
                 ("bearer", "<token>"), id="describer-echoing-the-token-is-overruled"),
    pytest.param(f"Bearer {TOKEN}", lambda t: 1 / 0, "Bearer <undescribable token>",
                 ("bearer", "<undescribable token>"), id="failing-describer"),
    pytest.param(f"Digest {SECRET}", None, "Digest <redacted>", ("digest", "<redacted>"),
                 id="other-scheme"),
]  # fmt: skip


@pytest.mark.parametrize(("value", "describer", "shown", "auth"), AUTH_ROWS)
def test_authorization_is_classified_without_the_secret(
    value: str,
    describer: object,
    shown: str,
    auth: tuple[str, str],
) -> None:
    assert describer is None or callable(describer)
    assert classify_authorization(value, describer) == (shown, auth)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("n=10&last=b", "n=10&last=b", id="harmless-query-untouched"),
        pytest.param(f"access_token={SECRET}&n=1", "access_token=%3Credacted%3E&n=1",
                     id="token-parameter-redacted"),
        pytest.param(f"password={SECRET}", "password=%3Credacted%3E", id="password"),
    ],
)  # fmt: skip
def test_credential_query_parameters_are_redacted(query: str, expected: str) -> None:
    assert redact_query(query) == expected


def test_exchange_records_selected_headers_and_redacts() -> None:
    request = req(
        Accept="application/vnd.oci.image.index.v1+json, */*",
        Range="bytes=10-",
        User_Agent="containerd/1.6.20~ds1",
        Authorization=basic("alice", SECRET),
        Cookie="session=abc",
    )
    exchange = Exchange.build(
        request, status=206, bytes_sent=5, bytes_announced=10, fault="half"
    )
    assert exchange.selected == {
        "Accept": "application/vnd.oci.image.index.v1+json, */*",
        "Range": "bytes=10-",
        "User-Agent": "containerd/1.6.20~ds1",
    }
    assert exchange.auth == ("basic", "alice")
    assert exchange.header("authorization") == "Basic user=alice"
    assert exchange.header("Cookie") == "<redacted>"
    assert (exchange.bytes_sent, exchange.bytes_announced) == (5, 10)
    assert SECRET not in json.dumps(exchange.to_dict())


def test_record_assigns_increasing_sequence_numbers() -> None:
    journal = Journal()
    first = journal.record_request(req(), status=200, bytes_sent=0)
    second = journal.record_http(req("HEAD"), Response(200, Headers(), b"abc"))
    assert (first.seq, second.seq) == (1, 2)
    assert second.bytes_sent == 3
    assert [e.method for e in journal.exchanges] == ["GET", "HEAD"]


def test_journal_uses_its_bearer_describer() -> None:
    journal = Journal(bearer_describer=describe)
    exchange = journal.record_request(
        req(Authorization=f"Bearer {TOKEN}"), status=200, bytes_sent=0
    )
    assert exchange.auth == ("bearer", describe(TOKEN))
    assert TOKEN not in journal.render()


@pytest.fixture
def journal() -> Journal:
    journal = Journal(bearer_describer=describe)
    blob = "/v2/lib/app/blobs/sha256:" + "b" * 64
    journal.record_request(req("HEAD"), status=401, bytes_sent=0)
    journal.record_request(
        req("HEAD", Authorization=f"Bearer {TOKEN}"), status=200, bytes_sent=0
    )
    journal.record_request(
        req("GET", blob, host="mirror.test"),
        status=503,
        bytes_sent=0,
        fault="blob-503",
        proxied_via="mirror.test:443",
    )
    journal.record_request(req("GET", blob, Range="bytes=5-"), status=206, bytes_sent=9)
    return journal


FIND_ROWS = [
    pytest.param({}, [1, 2, 3, 4], id="no-criteria-finds-all"),
    pytest.param({"method": "head"}, [1, 2], id="method-case-insensitive"),
    pytest.param({"path": r"/blobs/"}, [3, 4], id="path-regex"),
    pytest.param({"host": "mirror.test"}, [3], id="host-without-port"),
    pytest.param({"host": "127.0.0.1:5000"}, [1, 2, 4], id="host-with-port"),
    pytest.param({"status": 401}, [1], id="status"),
    pytest.param({"auth": None}, [1, 3, 4], id="no-credentials"),
    pytest.param({"auth": "bearer"}, [2], id="auth-kind"),
    pytest.param({"auth": ("bearer", describe(TOKEN))}, [2], id="auth-exact"),
    pytest.param({"fault": None}, [1, 2, 4], id="no-fault"),
    pytest.param({"fault": "blob-503"}, [3], id="fault-name"),
    pytest.param({"method": "GET", "status": 206}, [4], id="all-criteria-must-hold"),
]


@pytest.mark.parametrize(("criteria", "seqs"), FIND_ROWS)
def test_find_filters_exchanges(
    journal: Journal, criteria: dict[str, object], seqs: list[int]
) -> None:
    assert [e.seq for e in journal.find(**criteria)] == seqs  # type: ignore[arg-type]


def test_assert_request_returns_the_matches(journal: Journal) -> None:
    found = journal.assert_request(method="GET", status=206)
    assert found[0].selected["Range"] == "bytes=5-"
    journal.assert_request(count=None, method="HEAD")
    journal.assert_request(count=0, auth="basic")


def test_assert_request_failure_lists_near_misses(journal: Journal) -> None:
    with pytest.raises(AssertionError) as info:
        journal.assert_request(method="GET", path=r"/blobs/", status=200, auth=ANY)
    message = str(info.value)
    assert message.startswith(
        "expected 1 request(s) matching method='GET' path='/blobs/' status=200, found 0."
    )
    lines = message.splitlines()
    assert lines[1] == "3 similar request(s):"
    # the closest (two criteria met) come first, then the rest in order
    assert lines[2].startswith("  #3 GET mirror.test/v2/lib/app/blobs/")
    assert lines[2].endswith("(differs in: status)")
    assert lines[3].startswith("  #4 GET 127.0.0.1:5000/v2/lib/app/blobs/")
    assert lines[4].startswith("  #2 HEAD ")
    assert lines[4].endswith("(differs in: method, path)")


def test_assert_request_with_wrong_count_lists_the_matches(journal: Journal) -> None:
    with pytest.raises(AssertionError, match=r"expected 1 .* found 2\.\nMatching:"):
        journal.assert_request(method="HEAD")


def test_render_is_one_redacted_line_per_exchange(journal: Journal) -> None:
    journal.record_request(
        req(Authorization=basic("bob", SECRET)), status=200, bytes_sent=0
    )
    rendered = journal.render()
    assert len(rendered.splitlines()) == 5
    assert SECRET not in rendered
    assert TOKEN not in rendered
    assert "auth=basic:bob" in rendered
    assert "via=mirror.test:443" in rendered


def test_clear_forgets_exchanges_but_keeps_counting(journal: Journal) -> None:
    journal.clear()
    assert len(journal) == 0
    assert journal.record_request(req(), status=200, bytes_sent=0).seq == 5


def test_wait_for_returns_once_a_matching_exchange_arrives() -> None:
    journal = Journal()
    timer = threading.Timer(
        0.05, lambda: journal.record_request(req("PUT"), status=201, bytes_sent=0)
    )
    timer.start()
    try:
        assert [e.method for e in journal.wait_for(5.0, method="PUT")] == ["PUT"]
    finally:
        timer.join()
    assert journal.wait_for(0.01, method="DELETE") == []


def test_concurrent_records_get_unique_sequence_numbers() -> None:
    journal = Journal()

    def record() -> None:
        for _ in range(50):
            journal.record_request(req(), status=200, bytes_sent=0)

    threads = [threading.Thread(target=record) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(e.seq for e in journal.exchanges) == list(range(1, 401))
