"""HTTP/1.1 message framing for the simulator's server, without sockets.

Pure functions: parse a request line and header lines, decide how a request body is
framed, and serialise a response head. ``server.py`` does the reading and writing.
Everything here follows RFC 9112 (HTTP/1.1 message syntax).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from registry_sim.wire import Headers, Response

__all__ = [
    "BodyFraming",
    "MessageError",
    "RequestHead",
    "announced_length",
    "body_framing",
    "format_response_head",
    "parse_chunk_size",
    "parse_header_line",
    "parse_request_line",
    "plain_response",
    "reason_phrase",
    "split_target",
    "wants_close",
]

#: Largest request line or header line accepted (bytes, CRLF included).
MAX_LINE = 65536
#: Most header fields accepted in one request.
MAX_HEADERS = 200

# RFC 9110 5.6.2: token = 1*tchar
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9112 3: request-line = method SP request-target SP HTTP-version
_REQUEST_LINE = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP/(\d)\.(\d)")
# RFC 9112 7.1: chunk-size = 1*HEXDIG, optionally followed by chunk extensions.
_CHUNK_SIZE = re.compile(r"([0-9A-Fa-f]{1,16})[ \t]*(;.*)?")

_REASONS = {
    100: "Continue",
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    206: "Partial Content",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    304: "Not Modified",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    411: "Length Required",
    413: "Content Too Large",
    416: "Range Not Satisfiable",
    417: "Expectation Failed",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class MessageError(Exception):
    """A request the server cannot parse; answered with ``status`` and closed."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class RequestHead:
    """The request line, parsed. ``target`` is the raw request-target."""

    method: str
    target: str
    version: tuple[int, int]


@dataclass(frozen=True)
class BodyFraming:
    """How the request body is delimited: ``chunked`` or ``length`` bytes."""

    chunked: bool
    length: int


def plain_response(status: int, text: str) -> Response:
    """A ``text/plain`` response carrying ``text``."""
    headers = Headers([("Content-Type", "text/plain; charset=utf-8")])
    return Response(status, headers, text.encode())


def reason_phrase(status: int) -> str:
    """Returns the reason phrase for ``status`` (empty when unknown, which is legal)."""
    return _REASONS.get(status, "")


def parse_request_line(line: bytes) -> RequestHead:
    """Parses ``METHOD SP target SP HTTP/x.y`` (RFC 9112 3).

    Args:
        line: the line as read, with or without its CRLF.

    Returns:
        The parsed :class:`RequestHead`.

    Raises:
        MessageError: the line is not a valid HTTP/1.x request line.
    """
    text = line.rstrip(b"\r\n").decode("latin-1")
    match = _REQUEST_LINE.fullmatch(text)
    if match is None:
        raise MessageError(f"malformed request line {text[:80]!r}")
    major, minor = int(match.group(3)), int(match.group(4))
    if major != 1:
        raise MessageError(f"unsupported HTTP version {major}.{minor}", 505)
    return RequestHead(match.group(1), match.group(2), (major, minor))


def parse_header_line(line: bytes) -> tuple[str, str]:
    """Parses one ``field-name: field-value`` line (RFC 9112 5).

    Raises:
        MessageError: no colon, an invalid name, or whitespace before the colon
            (RFC 9112 5.1: "A server MUST reject ... with a response status code of
            400").
    """
    text = line.rstrip(b"\r\n").decode("latin-1")
    name, sep, value = text.partition(":")
    if not sep or _TOKEN.fullmatch(name) is None:
        raise MessageError(f"malformed header line {text[:80]!r}")
    return name, value.strip(" \t")


def body_framing(headers: Headers) -> BodyFraming:
    """Decides how the request body is framed (RFC 9112 6.3).

    Raises:
        MessageError: both or contradictory framings, or an invalid Content-Length.
    """
    encodings = [
        item.strip().lower()
        for value in headers.get_all("Transfer-Encoding")
        for item in value.split(",")
        if item.strip()
    ]
    lengths = headers.get_all("Content-Length")
    if encodings:
        # RFC 9112 6.1: chunked must be the final coding; we support only chunked.
        if encodings != ["chunked"]:
            raise MessageError(f"unsupported transfer coding {encodings!r}", 501)
        # RFC 9112 6.3 (3): a message with both is a smuggling vector; reject it.
        if lengths:
            raise MessageError("both Transfer-Encoding and Content-Length")
        return BodyFraming(chunked=True, length=0)
    if not lengths:
        return BodyFraming(chunked=False, length=0)
    values = {v.strip() for value in lengths for v in value.split(",")}
    if len(values) != 1 or not next(iter(values)).isdigit():
        raise MessageError(f"invalid Content-Length {lengths!r}")
    return BodyFraming(chunked=False, length=int(values.pop()))


def parse_chunk_size(line: bytes) -> int:
    """Parses a chunk-size line (RFC 9112 7.1), ignoring chunk extensions.

    Raises:
        MessageError: the line is not a hexadecimal size.
    """
    text = line.rstrip(b"\r\n").decode("latin-1")
    match = _CHUNK_SIZE.fullmatch(text)
    if match is None:
        raise MessageError(f"malformed chunk size {text[:40]!r}")
    return int(match.group(1), 16)


def split_target(target: str) -> tuple[str | None, str, str]:
    """Splits a request-target into (authority or None, path, query).

    Origin-form ``/v2/x?n=1`` has no authority; absolute-form ``http://h:5000/v2/``
    (sent to proxies, RFC 9112 3.2.2) carries one, which then overrides Host.

    Raises:
        MessageError: neither form.
    """
    if target.startswith("/"):
        path, _, query = target.partition("?")
        return None, path, query
    if "://" in target:
        parts = urlsplit(target)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise MessageError(f"unsupported absolute target {target[:80]!r}")
        return parts.netloc, parts.path or "/", parts.query
    raise MessageError(f"unsupported request target {target[:80]!r}")


def wants_close(version: tuple[int, int], headers: Headers) -> bool:
    """Whether the client asked to close the connection after this exchange.

    RFC 9112 9.3: HTTP/1.1 persists unless ``Connection: close``; HTTP/1.0 closes
    unless ``Connection: keep-alive``.
    """
    tokens = {
        item.strip().lower()
        for value in headers.get_all("Connection")
        for item in value.split(",")
    }
    if version >= (1, 1):
        return "close" in tokens
    return "keep-alive" not in tokens


def announced_length(response: Response, method: str) -> int | None:
    """The Content-Length the server announces for ``response`` (None: chunked).

    ``Response.length`` wins (faults use it to lie); a HEAD answer built with an
    empty body may carry the length in its own Content-Length header instead.
    """
    if response.length is not None:
        return response.length
    declared = response.headers.get("Content-Length")
    empty = isinstance(response.body, bytes) and not response.body
    if (
        declared is not None
        and declared.strip().isdigit()
        and (empty or method == "HEAD")
    ):
        return int(declared)
    return response.content_length()


def format_response_head(
    status: int, headers: Headers, *, length: int | None, close: bool, bodiless: bool
) -> bytes:
    """Serialises the status line and header block of a response.

    Args:
        status: the status code.
        headers: the application's headers; framing headers in it are replaced.
        length: the Content-Length to announce, or None for chunked.
        close: add ``Connection: close``.
        bodiless: a status (1xx, 204, 304) that carries no body and no framing
            (RFC 9110 8.6: "A server MUST NOT send a Content-Length header field in
            any response with a status code of 1xx ... or 204").

    Returns:
        The bytes up to and including the empty line.
    """
    lines = [f"HTTP/1.1 {status} {reason_phrase(status)}"]
    skip = {"content-length", "transfer-encoding", "connection"}
    lines += [f"{k}: {v}" for k, v in headers if k.lower() not in skip]
    if not bodiless:
        if length is None:
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append(f"Content-Length: {length}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
