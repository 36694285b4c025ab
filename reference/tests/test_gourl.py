"""Go ``net/url.Parse`` emulation: the inputs behaviors.md lists for AUTH-002, EP-006,
HOST-001 and REF-013, plus the error paths of Go's parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refpull.gocompat.gourl import GoURL, URLError, Userinfo, go_quote, parse


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            "myreg.example.com:5000",
            GoURL(scheme="myreg.example.com", opaque="5000"),
            id="host-port-is-scheme-and-opaque",
        ),
        pytest.param(
            "localhost:5000",
            GoURL(scheme="localhost", opaque="5000"),
            id="localhost-port-is-scheme-and-opaque",
        ),
        pytest.param(
            "mirror.local:5000",
            GoURL(scheme="mirror.local", opaque="5000"),
            id="mirror-without-scheme",
        ),
        pytest.param(
            "myreg.example.com", GoURL(path="myreg.example.com"), id="bare-host-is-path"
        ),
        pytest.param("127.0.0.1", GoURL(path="127.0.0.1"), id="bare-ip-is-path"),
        pytest.param(
            "https://index.docker.io/v1/",
            GoURL(scheme="https", host="index.docker.io", path="/v1/"),
            id="docker-hub-config-key",
        ),
        pytest.param(
            "https://user:pw@m:5000/x?y=1#f",
            GoURL(
                scheme="https",
                user=Userinfo("user", "pw"),
                host="m:5000",
                path="/x",
                raw_query="y=1",
                fragment="f",
            ),
            id="all-parts",
        ),
        pytest.param(
            "HTTPS://Host:443",
            GoURL(scheme="https", host="Host:443"),
            id="scheme-lowercased-host-kept",
        ),
        pytest.param(
            "http://[::1]:5000/v2",
            GoURL(scheme="http", host="[::1]:5000", path="/v2"),
            id="ipv6-literal-keeps-brackets",
        ),
        pytest.param(
            "http://[fe80::1%25en0]:80/",
            GoURL(scheme="http", host="[fe80::1%en0]:80", path="/"),
            id="ipv6-zone",
        ),
        pytest.param(
            "http://a.b:99999999999999999999/",
            GoURL(scheme="http", host="a.b:99999999999999999999", path="/"),
            id="port-digits-not-range-checked",
        ),
        pytest.param(
            "http://h:/", GoURL(scheme="http", host="h:", path="/"), id="empty-port"
        ),
        pytest.param(
            "http://%C3%A4/", GoURL(scheme="http", host="ä", path="/"), id="utf8-host"
        ),
        pytest.param(
            "http://foo_bar.com/x",
            GoURL(scheme="http", host="foo_bar.com", path="/x"),
            id="underscore-host",
        ),
        pytest.param(
            "dummy://docker.io/library/busybox:latest",
            GoURL(scheme="dummy", host="docker.io", path="/library/busybox:latest"),
            id="resolver-dummy-scheme",
        ),
        pytest.param(
            "http://h/a%2Fb", GoURL(scheme="http", host="h", path="/a/b"), id="path-unq"
        ),
        pytest.param("x?", GoURL(path="x", force_query=True), id="force-query"),
        pytest.param("a?b?", GoURL(path="a", raw_query="b?"), id="two-question-marks"),
        pytest.param("//h/p", GoURL(host="h", path="/p"), id="network-path-reference"),
        pytest.param("///p", GoURL(path="///p"), id="triple-slash-is-path"),
        pytest.param("*", GoURL(path="*"), id="asterisk"),
        pytest.param("", GoURL(), id="empty"),
        pytest.param("mailto:a@b", GoURL(scheme="mailto", opaque="a@b"), id="opaque"),
        pytest.param(
            "a+b-c.d:x", GoURL(scheme="a+b-c.d", opaque="x"), id="scheme-punctuation"
        ),
        pytest.param(
            "http://u@h@h2/",
            GoURL(scheme="http", user=Userinfo("u@h"), host="h2", path="/"),
            id="last-at-splits-userinfo",
        ),
        pytest.param(
            "http://u:p:q@h/",
            GoURL(scheme="http", user=Userinfo("u", "p:q"), host="h", path="/"),
            id="first-colon-splits-password",
        ),
        pytest.param("http://h/#", GoURL(scheme="http", host="h", path="/"), id="hash"),
    ],
)
def test_parse_matches_go(raw: str, expected: GoURL) -> None:
    assert parse(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(
            "10.0.0.1:5000",
            "first path segment in URL cannot contain colon",
            id="ip-port",
        ),
        pytest.param(
            "[::1]:5000",
            "first path segment in URL cannot contain colon",
            id="ipv6-port-without-scheme",
        ),
        pytest.param(":x", "missing protocol scheme", id="leading-colon"),
        pytest.param(
            "1http://h/",
            "first path segment in URL cannot contain colon",
            id="scheme-cannot-start-with-digit",
        ),
        pytest.param("http://h:x/", 'invalid port ":x" after host', id="bad-port"),
        pytest.param("http://[::1]x/", 'invalid port "x" after host', id="v6-junk"),
        pytest.param("http://[::1", "missing ']' in host", id="unclosed-bracket"),
        pytest.param(
            "http://a b/", 'invalid character " " in host name', id="space-in-host"
        ),
        pytest.param("http://%41/", 'invalid URL escape "%41"', id="ascii-escape-host"),
        pytest.param("http://h/%zz", 'invalid URL escape "%zz"', id="bad-escape"),
        pytest.param("http://h/%4", 'invalid URL escape "%4"', id="short-escape"),
        pytest.param(
            "http://[fe80::1%25%0a]/", 'invalid URL escape "%0a"', id="zone-newline"
        ),
        pytest.param("http://ü@h/", "net/url: invalid userinfo", id="userinfo-utf8"),
        pytest.param(
            "http://h/\n", "net/url: invalid control character in URL", id="ctl-byte"
        ),
    ],
)
def test_parse_errors_match_go(raw: str, reason: str) -> None:
    with pytest.raises(URLError) as info:
        parse(raw)
    assert info.value.reason == reason
    assert info.value.url == raw


def test_fragment_error_reports_whole_url() -> None:
    with pytest.raises(URLError) as info:
        parse("http://h/p#%zz")
    assert info.value.url == "http://h/p#%zz"
    assert info.value.reason == 'invalid URL escape "%zz"'


def test_error_before_fragment_reports_text_before_hash() -> None:
    with pytest.raises(URLError) as info:
        parse("10.0.0.1:5000#frag")
    assert info.value.url == "10.0.0.1:5000"


@pytest.mark.parametrize(
    ("quoted", "text"),
    [
        pytest.param(
            True,
            'parse "10.0.0.1:5000": first path segment in URL cannot contain colon',
            id="go-1.14-and-later",
        ),
        pytest.param(
            False,
            "parse 10.0.0.1:5000: first path segment in URL cannot contain colon",
            id="older-go",
        ),
    ],
)
def test_error_message_quotes_url_per_go_version(quoted: bool, text: str) -> None:
    with pytest.raises(URLError) as info:
        parse("10.0.0.1:5000")
    assert info.value.message(quoted=quoted) == text


def test_error_str_is_modern_go_form() -> None:
    with pytest.raises(URLError, match=r'^parse ":x": missing protocol scheme$'):
        parse(":x")


def test_userinfo_repr_hides_password() -> None:
    assert "pw" not in repr(parse("https://user:pw@h/").user)


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        pytest.param("abc", '"abc"', id="plain"),
        pytest.param('a"b\\c', '"a\\"b\\\\c"', id="quote-and-backslash"),
        pytest.param("\x00\n\x7f", '"\\x00\\n\\x7f"', id="control"),
        pytest.param("ä", '"ä"', id="printable-unicode-kept"),
        pytest.param("\u00ad\xa0", '"\\u00ad\\u00a0"', id="unprintable-unicode"),
        pytest.param(
            b"\xff".decode("utf-8", "surrogateescape"), '"\\xff"', id="raw-byte"
        ),
    ],
)
def test_go_quote_matches_strconv_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


@given(st.text())
def test_parse_raises_only_url_error(raw: str) -> None:
    try:
        url = parse(raw)
    except URLError:
        return  # the only exception type allowed out of parse()
    assert url.scheme == url.scheme.lower()
    assert not (url.opaque and url.host)
