"""The actions a fault rule can take (see ``faults.py``).

Body-level actions rewrite status, headers, body or the announced length;
transport-level actions only set ``Response.delivery``, which ``server.py`` plays on
the socket (delay, drip, truncate, reset, stall).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from registry_sim.wire import FileBody, Headers, Request, Response
from registry_sim.wire_errors import ErrorCode, error_response

__all__ = [
    "ACTION_TYPES",
    "Action",
    "CorruptBody",
    "Custom",
    "Delay",
    "Drip",
    "DropHeader",
    "Redirect",
    "Reset",
    "SetHeader",
    "Stall",
    "Status",
    "Truncate",
    "WrongDigestHeader",
    "WrongLength",
    "WrongMediaType",
]


# -- body-level actions ------------------------------------------------------------


_STATUS_CODES = {
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.DENIED,
    405: ErrorCode.UNSUPPORTED,
    429: ErrorCode.TOOMANYREQUESTS,
    503: ErrorCode.UNAVAILABLE,
}


def _not_found_code(path: str) -> ErrorCode:
    if "/manifests/" in path:
        return ErrorCode.MANIFEST_UNKNOWN
    if "/blobs/uploads/" in path:
        return ErrorCode.BLOB_UPLOAD_UNKNOWN
    if "/blobs/" in path:
        return ErrorCode.BLOB_UNKNOWN
    return ErrorCode.NAME_UNKNOWN


@dataclass(frozen=True)
class Status:
    """Replace the response with ``code``.

    The body is ``body`` when given, else a distribution error document for codes
    that have one (401, 403, 405, 429 ``TOOMANYREQUESTS``, 503 ``UNAVAILABLE``; 404
    names the resource: ``MANIFEST_UNKNOWN``, ``BLOB_UNKNOWN``, ...), else empty
    (500 and other codes).
    """

    code: int
    retry_after: float | None = None
    body: bytes | str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def apply(self, request: Request, response: Response) -> Response:
        code = _STATUS_CODES.get(self.code)
        if self.code == 404:
            code = _not_found_code(request.path)
        if self.body is not None:
            raw = self.body.encode() if isinstance(self.body, str) else self.body
            replaced = Response(self.code, Headers(), raw)
        elif code is not None:
            replaced = error_response(self.code, code, code.message)
        else:
            replaced = Response(self.code, Headers(), b"")
        if self.retry_after is not None:
            seconds = self.retry_after
            text = str(int(seconds)) if float(seconds).is_integer() else str(seconds)
            replaced.headers.set("Retry-After", text)
        for name, value in self.headers:
            replaced.headers.add(name, value)
        return replaced


@dataclass(frozen=True)
class CorruptBody:
    """Flip one byte of the body (at ``at``, default the middle): a wrong digest.

    File bodies are streamed with the byte flipped, never read whole.
    """

    at: int | None = None

    def apply(self, request: Request, response: Response) -> Response:
        length = response.content_length()
        body = response.body
        if not length or not isinstance(body, bytes | FileBody):
            return response
        index = min(self.at if self.at is not None else length // 2, length - 1)
        if isinstance(body, bytes):
            flipped = bytearray(body)
            flipped[index] ^= 0xFF
            response.body = bytes(flipped)
        else:
            response.body = _flipped_file(body, index)
            response.length = length
        return response


def _flipped_file(body: FileBody, index: int) -> Iterator[bytes]:
    chunk_size = 1 << 20
    with body.path.open("rb") as stream:
        stream.seek(body.offset)
        position, remaining = 0, body.length
        while remaining > 0:
            chunk = stream.read(min(chunk_size, remaining))
            if not chunk:
                return
            if position <= index < position + len(chunk):
                edited = bytearray(chunk)
                edited[index - position] ^= 0xFF
                chunk = bytes(edited)
            position += len(chunk)
            remaining -= len(chunk)
            yield chunk


@dataclass(frozen=True)
class WrongLength:
    """Announce a ``Content-Length`` off by ``delta`` (the body stays the same)."""

    delta: int

    def apply(self, request: Request, response: Response) -> Response:
        actual = response.content_length()
        if actual is not None:
            response.length = max(actual + self.delta, 0)
        return response


@dataclass(frozen=True)
class SetHeader:
    """Set (replace) a response header."""

    name: str
    value: str

    def apply(self, request: Request, response: Response) -> Response:
        response.headers.set(self.name, self.value)
        return response


@dataclass(frozen=True)
class DropHeader:
    """Remove a response header (e.g. ``Docker-Content-Digest``)."""

    name: str

    def apply(self, request: Request, response: Response) -> Response:
        response.headers.remove(self.name)
        return response


@dataclass(frozen=True)
class WrongDigestHeader:
    """Answer with this ``Docker-Content-Digest`` instead of the real one."""

    value: str

    def apply(self, request: Request, response: Response) -> Response:
        response.headers.set("Docker-Content-Digest", self.value)
        return response


@dataclass(frozen=True)
class WrongMediaType:
    """Answer with this ``Content-Type`` instead of the stored one."""

    value: str

    def apply(self, request: Request, response: Response) -> Response:
        response.headers.set("Content-Type", self.value)
        return response


@dataclass(frozen=True)
class Redirect:
    """Answer with a redirect, as registries do to blob storage.

    ``location_template`` may use ``{path}``, ``{query}`` (with its leading ``?``,
    empty when there is no query), ``{host}`` and ``{scheme}`` of the request.
    """

    location_template: str
    status: int = 307

    def apply(self, request: Request, response: Response) -> Response:
        values = {
            "{path}": request.path,
            "{query}": f"?{request.query_string}" if request.query_string else "",
            "{host}": request.host,
            "{scheme}": request.scheme,
        }
        location = self.location_template
        for key, value in values.items():
            location = location.replace(key, value)
        return Response(self.status, Headers([("Location", location)]), b"")


@dataclass(frozen=True)
class Custom:
    """Call ``fn(request, response)`` and answer with what it returns."""

    fn: Callable[[Request, Response], Response]

    def apply(self, request: Request, response: Response) -> Response:
        return self.fn(request, response)


@dataclass(frozen=True)
class BearerChallenge:
    """Answer 401 with a Bearer challenge naming ``realm`` until a request carries
    any ``Authorization``; then pass the response through.

    The challenge is the one a token-auth registry sends (``realm``, ``service``,
    ``scope="repository:<repo>:pull"``); where the realm points is the test's choice,
    which is how a hostile registry lures credentials to a realm of its own.
    """

    realm: str
    service: str
    repo: str

    def apply(self, request: Request, response: Response) -> Response:
        if request.headers.get("Authorization"):
            return response
        scope = f"repository:{self.repo}:pull"
        challenge = (
            f'Bearer realm="{self.realm}",service="{self.service}",scope="{scope}"'
        )
        return Response(401, Headers.of({"WWW-Authenticate": challenge}), b"{}")


# -- transport-level actions (played by server.py) ---------------------------------


def _deliver(response: Response, **changes: Any) -> Response:
    response.delivery = dataclasses.replace(response.delivery, **changes)
    return response


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` before sending the status line."""

    seconds: float

    def apply(self, request: Request, response: Response) -> Response:
        return _deliver(response, delay_s=self.seconds)


@dataclass(frozen=True)
class Drip:
    """Throttle the body to ``bytes_per_s``."""

    bytes_per_s: int

    def apply(self, request: Request, response: Response) -> Response:
        return _deliver(response, drip_bytes_per_s=self.bytes_per_s)


@dataclass(frozen=True)
class Truncate:
    """Close the connection cleanly after ``at`` body bytes (length still announced)."""

    at: int

    def apply(self, request: Request, response: Response) -> Response:
        return _deliver(response, truncate_at=self.at)


@dataclass(frozen=True)
class Reset:
    """Send a TCP RST after ``at`` body bytes."""

    at: int = 0

    def apply(self, request: Request, response: Response) -> Response:
        return _deliver(response, reset_at=self.at)


@dataclass(frozen=True)
class Stall:
    """Pause ``seconds`` once, after ``after`` body bytes."""

    after: int
    seconds: float

    def apply(self, request: Request, response: Response) -> Response:
        return _deliver(response, stall_after=self.after, stall_s=self.seconds)


Action = (
    Status
    | CorruptBody
    | WrongLength
    | SetHeader
    | DropHeader
    | WrongDigestHeader
    | WrongMediaType
    | Redirect
    | Custom
    | Delay
    | Drip
    | Truncate
    | Reset
    | Stall
)


#: Action classes by the ``type`` name used in fault files.
ACTION_TYPES: dict[str, type[Any]] = {
    "status": Status,
    "corrupt_body": CorruptBody,
    "wrong_length": WrongLength,
    "set_header": SetHeader,
    "drop_header": DropHeader,
    "wrong_digest_header": WrongDigestHeader,
    "wrong_media_type": WrongMediaType,
    "redirect": Redirect,
    "delay": Delay,
    "drip": Drip,
    "truncate": Truncate,
    "reset": Reset,
    "stall": Stall,
}
