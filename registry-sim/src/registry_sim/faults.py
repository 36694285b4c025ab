"""Declarative fault rules: which requests to break, and how.

A :class:`Fault` pairs a :class:`Match` with one action. Body-level actions rewrite the
response (status, headers, body, announced length); transport-level actions only set
``Response.delivery`` and ``server.py`` plays them on the socket::

    faults = FaultSet([
        Fault(Match(method="GET", path=r"/blobs/"), Status(503, retry_after=1), times=2),
        Fault(Match(path=r"/blobs/sha256:ab"), Truncate(at=1024), name="half-layer"),
    ])

Every matching rule applies, in the order added; ``times`` limits how often a rule
fires (``None``: always); the response's ``fault`` names the rules that shaped it.
Rules also load from JSON or TOML files (:func:`load_faults`) for the CLI.
"""

from __future__ import annotations

import json
import re
import threading
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry_sim._fault_actions import (
    ACTION_TYPES,
    Action,
    BearerChallenge,
    CorruptBody,
    Custom,
    Delay,
    Drip,
    DropHeader,
    Redirect,
    Reset,
    SetHeader,
    Stall,
    Status,
    Truncate,
    WrongDigestHeader,
    WrongLength,
    WrongMediaType,
)
from registry_sim.wire import Request, Response

__all__ = [
    "Action",
    "BearerChallenge",
    "CorruptBody",
    "Custom",
    "Delay",
    "Drip",
    "DropHeader",
    "Fault",
    "FaultSet",
    "Match",
    "Redirect",
    "Reset",
    "SetHeader",
    "Stall",
    "Status",
    "Truncate",
    "WrongDigestHeader",
    "WrongLength",
    "WrongMediaType",
    "load_faults",
]


@dataclass(frozen=True)
class Match:
    """Which requests a rule applies to; ``None`` fields match anything.

    Args:
        method: an HTTP method (``GET``), or several separated by spaces.
        path: a regular expression *searched* in the path (anchor it to be exact).
        host: the Host, with or without its port (``mirror.test``, ``127.0.0.1:5000``).
        query: a regular expression searched in the raw query string.
        header: ``(name, regex)``: the header must be present and match.
    """

    method: str | None = None
    path: str | None = None
    host: str | None = None
    query: str | None = None
    header: tuple[str, str] | None = None

    def matches(self, request: Request) -> bool:
        """Whether ``request`` is one this rule applies to."""
        if (
            self.method is not None
            and request.method not in self.method.upper().split()
        ):
            return False
        if self.path is not None and re.search(self.path, request.path) is None:
            return False
        if (
            self.query is not None
            and re.search(self.query, request.query_string) is None
        ):
            return False
        if self.host is not None and not _host_matches(self.host, request.host):
            return False
        if self.header is not None:
            value = request.headers.get(self.header[0])
            if value is None or re.search(self.header[1], value) is None:
                return False
        return True


def _host_matches(wanted: str, host: str) -> bool:
    wanted, host = wanted.lower(), host.lower()
    return host == wanted or host.rsplit(":", 1)[0] == wanted


@dataclass(frozen=True)
class Fault:
    """One rule: when ``match`` matches, apply ``action`` (at most ``times`` times).

    ``name`` labels the rule in responses and the journal; it defaults to the
    action's repr.
    """

    match: Match
    action: Action
    times: int | None = None
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or repr(self.action)


@dataclass
class _Slot:
    fault: Fault
    fired: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class FaultSet:
    """A thread-safe, ordered list of fault rules with fire counters."""

    def __init__(self, faults: Iterable[Fault] = ()) -> None:
        self._lock = threading.Lock()
        self._slots: list[_Slot] = [_Slot(f) for f in faults]

    def add(self, fault: Fault) -> Fault:
        """Append a rule; returns it."""
        with self._lock:
            self._slots.append(_Slot(fault))
        return fault

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._slots.clear()

    def __iter__(self) -> Iterator[Fault]:
        with self._lock:
            return iter([s.fault for s in self._slots])

    def __len__(self) -> int:
        with self._lock:
            return len(self._slots)

    def fired(self, name: str) -> int:
        """How many times the rules labelled ``name`` fired."""
        with self._lock:
            return sum(s.fired for s in self._slots if s.fault.label == name)

    def _take(self, request: Request) -> list[Fault]:
        taken: list[Fault] = []
        with self._lock:
            for slot in self._slots:
                times = slot.fault.times
                if times is not None and slot.fired >= times:
                    continue
                if slot.fault.match.matches(request):
                    slot.fired += 1
                    taken.append(slot.fault)
        return taken

    def apply(self, request: Request, response: Response) -> Response:
        """Apply every matching rule in order and label the response.

        Args:
            request: the request being answered.
            response: what the registry would answer.

        Returns:
            The (possibly replaced) response; ``fault`` lists the rule labels.
        """
        taken = self._take(request)
        for fault in taken:
            response = fault.action.apply(request, response)
        if taken:
            labels = [f.label for f in taken]
            if response.fault:
                labels.insert(0, response.fault)
            response.fault = ",".join(labels)
        return response


# -- loading from files ------------------------------------------------------------


def _action_from(spec: Mapping[str, Any]) -> Action:
    fields = dict(spec)
    kind = fields.pop("type", None)
    cls = ACTION_TYPES.get(str(kind))
    if cls is None:
        raise ValueError(
            f"unknown fault action type {kind!r}; one of {sorted(ACTION_TYPES)}"
        )
    if "headers" in fields:
        fields["headers"] = tuple(
            (str(k), str(v)) for k, v in dict(fields["headers"]).items()
        )
    action: Action = cls(**fields)
    return action


def _fault_from(spec: Mapping[str, Any]) -> Fault:
    match_spec = dict(spec.get("match", {}))
    if "header" in match_spec:
        match_spec["header"] = tuple(match_spec["header"])
    return Fault(
        match=Match(**match_spec),
        action=_action_from(spec["action"]),
        times=spec.get("times"),
        name=str(spec.get("name", "")),
    )


def load_faults(path: Path) -> FaultSet:
    """Read fault rules from a ``.json`` or ``.toml`` file.

    The file holds a list of rules under ``fault`` (TOML ``[[fault]]``) or
    ``faults``, or (JSON) is the list itself. Each rule::

        [[fault]]
        name = "blob-503"
        times = 2
        match = { method = "GET", path = "/blobs/" }
        action = { type = "status", code = 503, retry_after = 1 }

    Action ``type`` is the snake-case class name (``status``, ``truncate``,
    ``wrong_digest_header``, ...); ``Custom`` cannot be loaded.

    Raises:
        ValueError: an unknown action type or a malformed rule.
    """
    text = path.read_text()
    data: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    if isinstance(data, dict):
        data = data.get("fault", data.get("faults", []))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of fault rules")
    try:
        return FaultSet(_fault_from(rule) for rule in data)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: malformed fault rule: {exc}") from exc
