"""The simulator's view of one HTTP exchange, independent of any server or socket.

``app.py`` maps a :class:`Request` to a :class:`Response` without touching a socket;
``server.py`` (the only module with a listening socket) turns bytes into a ``Request``
and writes the ``Response`` back, using ``sendfile`` for :class:`FileBody`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

__all__ = ["Body", "Delivery", "FileBody", "Headers", "Request", "Response"]


class Headers:
    """Case-insensitive, ordered, multi-valued HTTP headers."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(k, v) for k, v in items]

    @classmethod
    def of(cls, mapping: Mapping[str, str] | None = None, **extra: str) -> Headers:
        items = list((mapping or {}).items()) + list(extra.items())
        return cls(items)

    def get(self, name: str, default: str | None = None) -> str | None:
        lname = name.lower()
        for k, v in self._items:
            if k.lower() == lname:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self._items if k.lower() == lname]

    def set(self, name: str, value: str) -> None:
        self.remove(name)
        self._items.append((name, value))

    def add(self, name: str, value: str) -> None:
        self._items.append((name, value))

    def remove(self, name: str) -> None:
        lname = name.lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != lname]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def copy(self) -> Headers:
        return Headers(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(frozen=True)
class FileBody:
    """A region of a file sent as the body (zero-copy with ``sendfile`` where possible)."""

    path: Path
    offset: int
    length: int


#: A response body: bytes, a file region, or an iterator of chunks (streamed as produced).
Body = bytes | FileBody | Iterable[bytes]


@dataclass
class Request:
    """One parsed request as the application sees it.

    ``host`` is the Host header (or the CONNECT/absolute-form target when proxied),
    ``connection_id`` identifies the TCP (or tunnelled) connection it arrived on,
    ``scheme`` is ``http`` or ``https`` as seen by the simulator.
    """

    method: str
    path: str
    query_string: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    host: str = ""
    scheme: str = "http"
    connection_id: int = 0
    client_cert_subject: str | None = None
    #: The ALPN protocol the TLS handshake negotiated (``None``: none, or plain http).
    alpn: str | None = None
    #: When the request's head was read (``time.time()``; 0: not stamped by a server).
    received: float = 0.0

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.query_string, keep_blank_values=True)

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(frozen=True)
class Delivery:
    """How the server writes a response: the transport-level faults it must play.

    ``delay_s`` before the status line; ``drip_bytes_per_s`` throttles the body;
    ``truncate_at`` closes the connection cleanly after that many body bytes (the
    announced length stays); ``reset_at`` sends a TCP RST after that many body bytes;
    ``stall_s`` pauses once after ``truncate_at``/``reset_at`` is not set but
    ``stall_after`` bytes were sent.
    """

    delay_s: float = 0.0
    drip_bytes_per_s: int | None = None
    truncate_at: int | None = None
    reset_at: int | None = None
    stall_after: int | None = None
    stall_s: float = 0.0


@dataclass
class Response:
    """What the application answers. ``length`` is the Content-Length to announce
    (``None``: derived from the body when it is bytes or a file region, else chunked).
    """

    status: int
    headers: Headers = field(default_factory=Headers)
    body: Body = b""
    length: int | None = None
    delivery: Delivery = field(default_factory=Delivery)
    #: Name of the fault rule that shaped this response, for the journal.
    fault: str | None = None

    def content_length(self) -> int | None:
        if self.length is not None:
            return self.length
        if isinstance(self.body, bytes):
            return len(self.body)
        if isinstance(self.body, FileBody):
            return self.body.length
        return None
