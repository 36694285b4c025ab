"""The request journal: what every client sent and what it got (STYLE point 9).

Against a real CRI runtime the journal is often the only evidence, so it records the
headers that matter and explains failed assertions with near misses, the way
pytest-httpserver does. Credentials never reach it: ``Authorization`` is replaced by
a classification (``Basic user=alice``, ``Bearer <description>``) when an exchange is
built, so no rendering can leak a password or token ("We don't want to log
credentials", ggcr ``redact``).
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from registry_sim._redact import (
    DROPPED_HEADERS,
    SECRET_HEADERS,
    Auth,
    BearerDescriber,
    classify_authorization,
    redact_query,
)
from registry_sim.wire import Request, Response

__all__ = ["ANY", "Exchange", "Journal", "classify_authorization", "redact_query"]

#: Headers kept verbatim in ``Exchange.selected`` (behaviors.md H-REG).
SELECTED_HEADERS = ("Accept", "Range", "User-Agent", "Accept-Encoding", "Content-Type")


class _Any:
    def __repr__(self) -> str:
        return "ANY"


#: "Don't care" for :meth:`Journal.find` arguments whose ``None`` means something.
ANY: Any = _Any()


@dataclass(frozen=True)
class Exchange:
    """One request and its response, redacted.

    ``time`` is when the request arrived (its head was read), so exchanges on
    different connections or registries sort in the order a client sent them; ``seq``
    is the order they finished in.
    ``bytes_announced`` is the Content-Length sent (``None``: chunked or absent);
    ``bytes_sent`` what the server actually wrote. ``proxied_via`` is the CONNECT
    target when the request came through the proxy.
    """

    seq: int
    time: float
    connection_id: int
    scheme: str
    method: str
    host: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    status: int
    bytes_announced: int | None = None
    bytes_sent: int = 0
    fault: str | None = None
    proxied_via: str | None = None
    auth: Auth = None
    alpn: str | None = None  # the ALPN protocol negotiated on the connection

    @classmethod
    def build(
        cls,
        request: Request,
        *,
        status: int,
        bytes_sent: int = 0,
        bytes_announced: int | None = None,
        fault: str | None = None,
        proxied_via: str | None = None,
        bearer_describer: BearerDescriber | None = None,
        seq: int = 0,
        when: float | None = None,
    ) -> Exchange:
        """Make a redacted record of ``request`` and what was answered.

        Args:
            request: the request as received.
            status: the status sent.
            bytes_sent: body bytes actually written.
            bytes_announced: the Content-Length sent (``None``: chunked/absent).
            fault: the fault label of the response.
            proxied_via: the CONNECT target, if tunnelled.
            bearer_describer: see :func:`classify_authorization`.
            seq: sequence number (the journal assigns one when recording).
            when: the time (the request's arrival when omitted, else now).
        """
        headers: list[tuple[str, str]] = []
        auth: Auth = None
        for name, value in request.headers:
            lname = name.lower()
            if lname in DROPPED_HEADERS:
                headers.append((name, "<redacted>"))
            elif lname in SECRET_HEADERS:
                redacted, found = classify_authorization(value, bearer_describer)
                headers.append((name, redacted))
                auth = found if lname == "authorization" else auth
            else:
                headers.append((name, value))
        return cls(
            seq=seq,
            time=when if when is not None else (request.received or time.time()),
            connection_id=request.connection_id,
            scheme=request.scheme,
            method=request.method,
            host=request.host,
            path=request.path,
            query=redact_query(request.query_string),
            headers=tuple(headers),
            status=status,
            bytes_announced=bytes_announced,
            bytes_sent=bytes_sent,
            fault=fault,
            proxied_via=proxied_via,
            auth=auth,
            alpn=request.alpn,
        )

    def header(self, name: str) -> str | None:
        """A (redacted) request header, case-insensitively."""
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)

    @property
    def selected(self) -> dict[str, str]:
        """The request headers the catalog observes: Accept, Range, User-Agent, ..."""
        found = {name: self.header(name) for name in SELECTED_HEADERS}
        return {k: v for k, v in found.items() if v is not None}

    @property
    def target(self) -> str:
        """``path?query`` as requested (redacted)."""
        return f"{self.path}?{self.query}" if self.query else self.path

    def line(self) -> str:
        """A one-line summary: ``#3 GET host/v2/x/blobs/sha256:… 401 auth=None``."""
        parts = [
            f"#{self.seq}",
            self.method,
            f"{self.host}{self.target}",
            str(self.status),
        ]
        parts.append(f"auth={_auth_text(self.auth)}")
        if self.fault:
            parts.append(f"fault={self.fault}")
        if self.proxied_via:
            parts.append(f"via={self.proxied_via}")
        extra = [f"{k}={v!r}" for k, v in self.selected.items() if k in ("Range",)]
        return " ".join(parts + extra)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (already redacted) for reports."""
        data = dataclasses.asdict(self)
        data["headers"] = [list(h) for h in self.headers]
        data["auth"] = list(self.auth) if self.auth else None
        return data


def _auth_text(auth: Auth) -> str:
    return "None" if auth is None else f"{auth[0]}:{auth[1]}"


@dataclass(frozen=True)
class _Query:
    method: str | None
    path: str | None
    host: str | None
    status: int | None
    auth: Any
    fault: Any
    query: str | None
    connection_id: int | None

    def checks(self, ex: Exchange) -> list[tuple[str, bool]]:
        found: list[tuple[str, bool]] = []
        if self.method is not None:
            found.append(("method", ex.method == self.method.upper()))
        if self.path is not None:
            found.append(("path", re.search(self.path, ex.path) is not None))
        if self.host is not None:
            host = ex.host.lower()
            wanted = self.host.lower()
            found.append(
                ("host", host in (wanted,) or host.rsplit(":", 1)[0] == wanted)
            )
        if self.status is not None:
            found.append(("status", ex.status == self.status))
        if self.auth is not ANY:
            found.append(("auth", _auth_matches(self.auth, ex.auth)))
        if self.fault is not ANY:
            found.append(("fault", ex.fault == self.fault))
        if self.query is not None:
            found.append(("query", re.search(self.query, ex.query) is not None))
        if self.connection_id is not None:
            found.append(("connection_id", ex.connection_id == self.connection_id))
        return found

    def describe(self) -> str:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        shown = {k: v for k, v in fields.items() if v is not None and v is not ANY}
        return " ".join(f"{k}={v!r}" for k, v in shown.items()) or "<anything>"


def _auth_matches(wanted: Any, actual: Auth) -> bool:
    if wanted is None or actual is None:
        return wanted is actual
    if isinstance(wanted, str):  # just the kind: "basic" / "bearer"
        return actual[0] == wanted
    return tuple(wanted) == actual


class Journal:
    """A thread-safe, append-only log of exchanges.

    Args:
        bearer_describer: classifies bearer tokens without revealing them (the auth
            module provides one); used by :meth:`record_http`.
    """

    def __init__(self, *, bearer_describer: BearerDescriber | None = None) -> None:
        self.bearer_describer = bearer_describer
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []
        self._seq = 0
        self._changed = threading.Condition(self._lock)

    def record(self, exchange: Exchange) -> Exchange:
        """Append ``exchange`` with the next sequence number; returns the stored one."""
        with self._lock:
            self._seq += 1
            stored = dataclasses.replace(exchange, seq=self._seq)
            self._exchanges.append(stored)
            self._changed.notify_all()
        return stored

    def record_request(
        self,
        request: Request,
        *,
        status: int,
        bytes_sent: int,
        fault: str | None = None,
        proxied_via: str | None = None,
        bytes_announced: int | None = None,
    ) -> Exchange:
        """Record a finished exchange (the server's ``ExchangeSink`` signature).

        Redacts through :meth:`Exchange.build` with this journal's describer.
        """
        exchange = Exchange.build(
            request,
            status=status,
            bytes_sent=bytes_sent,
            bytes_announced=bytes_announced,
            fault=fault,
            proxied_via=proxied_via,
            bearer_describer=self.bearer_describer,
        )
        return self.record(exchange)

    def record_http(
        self,
        request: Request,
        response: Response,
        *,
        bytes_sent: int | None = None,
        proxied_via: str | None = None,
    ) -> Exchange:
        """Record ``request`` and ``response`` (in-process use, e.g. a test transport).

        ``bytes_sent`` defaults to the announced length.
        """
        announced = response.content_length()
        return self.record_request(
            request,
            status=response.status,
            bytes_sent=(announced or 0) if bytes_sent is None else bytes_sent,
            fault=response.fault,
            proxied_via=proxied_via,
            bytes_announced=announced,
        )

    def clear(self) -> None:
        """Forget every exchange (sequence numbers keep counting)."""
        with self._lock:
            self._exchanges.clear()

    @property
    def exchanges(self) -> list[Exchange]:
        """A snapshot of the recorded exchanges, oldest first."""
        with self._lock:
            return list(self._exchanges)

    def __iter__(self) -> Iterator[Exchange]:
        return iter(self.exchanges)

    def __len__(self) -> int:
        with self._lock:
            return len(self._exchanges)

    def find(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        host: str | None = None,
        status: int | None = None,
        auth: Any = ANY,
        fault: Any = ANY,
        query: str | None = None,
        connection_id: int | None = None,
    ) -> list[Exchange]:
        """Exchanges matching every given criterion.

        Args:
            method: exact method.
            path: regular expression searched in the path.
            host: Host with or without port.
            status: exact status.
            auth: ``None`` (no credentials), ``"basic"``/``"bearer"`` (the kind), or
                an exact ``(kind, who)`` pair; :data:`ANY` by default.
            fault: the fault label (``None``: no fault fired); :data:`ANY` by default.
            query: regular expression searched in the (redacted) query string.
            connection_id: exact connection id.
        """
        wanted = _Query(method, path, host, status, auth, fault, query, connection_id)
        return [ex for ex in self.exchanges if all(ok for _, ok in wanted.checks(ex))]

    def assert_request(
        self, *, count: int | None = 1, **criteria: Any
    ) -> list[Exchange]:
        """Assert how many exchanges match; explain near misses when not.

        Args:
            count: the exact number expected, or ``None`` for "at least one".
            **criteria: as for :meth:`find`.

        Returns:
            The matching exchanges.

        Raises:
            AssertionError: with the criteria, the count found and the most similar
                exchanges (those matching the most criteria).
        """
        found = self.find(**criteria)
        if (count is None and found) or (count is not None and len(found) == count):
            return found
        wanted = _Query(
            criteria.get("method"),
            criteria.get("path"),
            criteria.get("host"),
            criteria.get("status"),
            criteria.get("auth", ANY),
            criteria.get("fault", ANY),
            criteria.get("query"),
            criteria.get("connection_id"),
        )
        expected = "at least 1" if count is None else str(count)
        lines = [
            f"expected {expected} request(s) matching {wanted.describe()}, "
            f"found {len(found)}."
        ]
        lines += self._near_misses(wanted, found)
        raise AssertionError("\n".join(lines))

    def _near_misses(self, wanted: _Query, found: list[Exchange]) -> list[str]:
        if found:
            return ["Matching:"] + [f"  {ex.line()}" for ex in found[:10]]
        scored = []
        for ex in self.exchanges:
            checks = wanted.checks(ex)
            hits = sum(ok for _, ok in checks)
            if hits:
                missed = [name for name, ok in checks if not ok]
                scored.append((hits, ex, missed))
        if not scored:
            return [f"No similar request among {len(self)} recorded."]
        scored.sort(key=lambda item: (-item[0], item[1].seq))
        lines = [f"{len(scored)} similar request(s):"]
        for _, ex, missed in scored[:10]:
            lines.append(f"  {ex.line()}  (differs in: {', '.join(missed)})")
        return lines

    def wait_for(self, timeout: float, **criteria: Any) -> list[Exchange]:
        """Block until at least one exchange matches (or ``timeout`` seconds pass).

        Returns:
            The matches, possibly empty after the timeout.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(**criteria)
            remaining = deadline - time.monotonic()
            if found or remaining <= 0:
                return found
            with self._changed:
                self._changed.wait(min(remaining, 0.05))

    def render(self) -> str:
        """All exchanges, one line each, for reports (already redacted)."""
        lines = []
        for ex in self.exchanges:
            selected = " ".join(f"{k}={v!r}" for k, v in ex.selected.items())
            lines.append(
                f"{ex.line()} conn={ex.connection_id} sent={ex.bytes_sent}"
                f"/{ex.bytes_announced} {selected}".rstrip()
            )
        return "\n".join(lines)
