"""Known deviations of one target: ``conformance/expectations/<target>.toml``.

Autobahn's ``exclude-agent-cases`` made strict and precise (STYLE.md point 12, issue
11): every listed deviation states how the runtime fails, its *signature*. A case that
fails that way is XFAIL (with the reason shown); a case that fails any other way is
FAIL (ERROR for a harness failure), with a note that the failure did not match the
recorded signature; a case that passes is XPASS and fails the run, so the list cannot
rot. File format::

    target = "containerd"              # the --target this file is for (required)
    profile = "containerd-1.6"         # optional: the profile it was written against
    description = "Debian 12 containerd 1.6.20~ds1"

    [[deviation]]
    behavior = "AUTH-008"              # catalog ID (required)
    test = "test_request_credentials_*" # fnmatch glob on the test name (default "*")
    signature = { evidence = "GET https://mirror\\S* .*Authorization" }   # required
    reason = "request credentials are offered to mirrors"   # required
    upstream = "https://github.com/containerd/containerd/issues/10996"

A signature is exactly one of ``{ code = "UNKNOWN" }`` (the gRPC status code of a
:class:`~cri_conformance.targets.base.TargetError` the case fails with, also when the
error is the cause of the failing assertion), ``{ assertion = "regex" }`` (searched in
the failing exception's message), ``{ evidence = "regex" }`` (searched in the case's
evidence: CRI calls, registry journal, failure text) or ``{ crash = true }`` (the case
raised :class:`~cri_conformance.targets.base.TargetCrashed`). The header keys may also
sit in an ``[expectations]`` table.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Deviation",
    "Expectations",
    "ExpectationsError",
    "Failure",
    "Signature",
    "load_expectations",
    "parse_expectations",
]

_HEADER_KEYS = frozenset({"target", "profile", "description"})
_DEVIATION_KEYS = frozenset({"behavior", "test", "reason", "upstream", "signature"})
_SIGNATURE_KINDS = ("code", "assertion", "evidence", "crash")
# grpc.StatusCode names (https://grpc.github.io/grpc/core/md_doc_statuscodes.html).
_GRPC_CODES = frozenset(
    {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
        "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
        "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    }
)  # fmt: skip


class ExpectationsError(ValueError):
    """An expectations file is malformed or names an unknown behaviour."""


@dataclass(frozen=True, kw_only=True)
class Failure:
    """How one case failed, as far as a :class:`Signature` can see it.

    Attributes:
        message: the failing exception's text (``AssertionError: ...``).
        codes: gRPC code names of the ``TargetError`` in the exception's chain.
        crashed: the case raised ``TargetCrashed``.
        evidence: the case's evidence texts joined (CRI calls, journal, failure).
    """

    message: str
    codes: tuple[str, ...] = ()
    crashed: bool = False
    evidence: str = ""


@dataclass(frozen=True)
class Signature:
    """How a known deviation fails: ``kind`` is code, assertion, evidence or crash."""

    kind: str
    value: str = ""

    def matches(self, failure: Failure) -> bool:
        """Tell whether *failure* is the one this signature records.

        A crash matches only a crash signature, and a crash signature only a crash.
        """
        if self.kind == "crash" or failure.crashed:
            return self.kind == "crash" and failure.crashed
        if self.kind == "code":
            return self.value in failure.codes
        text = failure.message if self.kind == "assertion" else failure.evidence
        return re.search(self.value, text, re.MULTILINE) is not None

    def describe(self) -> str:
        """The signature in words, for notes in the report."""
        if self.kind == "crash":
            return "the target crashes"
        if self.kind == "code":
            return f"gRPC code {self.value}"
        return f"{self.kind} matching /{self.value}/"


@dataclass(frozen=True, kw_only=True)
class Deviation:
    """One known deviation: a behaviour the target does not meet, for matching tests."""

    behavior: str
    reason: str
    signature: Signature
    test: str = "*"
    upstream: str = ""

    def matches(self, names: Iterable[str], behaviors: Collection[str]) -> bool:
        """Tell whether a test with these *names* and tagged *behaviors* is covered.

        Args:
            names: the test's names to try the glob on (name with parameter id,
                original function name, node id).
            behaviors: the catalog IDs the test is tagged with.
        """
        if self.behavior not in behaviors:
            return False
        return any(fnmatch.fnmatchcase(name, self.test) for name in names)

    def xfail_reason(self) -> str:
        """The reason text shown for the XFAIL this deviation becomes."""
        text = f"known deviation {self.behavior}: {self.reason}"
        return f"{text} ({self.upstream})" if self.upstream else text

    def mismatch_note(self) -> str:
        """The note added to a listed case that failed some other way."""
        return (
            f"listed as known deviation {self.behavior}, but the failure does not "
            f"match its recorded signature ({self.signature.describe()}); fix the "
            "case or update the signature in the expectations file"
        )


@dataclass(frozen=True, kw_only=True)
class Expectations:
    """The deviations listed for one target."""

    target: str
    deviations: tuple[Deviation, ...]
    profile: str | None = None
    description: str = ""
    source: Path | None = None

    def find(
        self, names: Iterable[str], behaviors: Collection[str]
    ) -> Deviation | None:
        """Return the first deviation matching a test, or None.

        Args:
            names: the test's names (see :meth:`Deviation.matches`).
            behaviors: the catalog IDs the test is tagged with.
        """
        candidates = tuple(names)
        for deviation in self.deviations:
            if deviation.matches(candidates, behaviors):
                return deviation
        return None


def _text(
    table: Mapping[str, object], key: str, where: str, *, default: str | None = None
) -> str:
    value = table.get(key, default)
    if value is None:
        raise ExpectationsError(f"{where}: missing required key {key!r}")
    if not isinstance(value, str):
        raise ExpectationsError(f"{where}: {key!r} must be a string")
    return value


def _signature(entry: Mapping[str, object], here: str) -> Signature:
    raw = entry.get("signature")
    hint = "add signature = { code | assertion | evidence = ... } or { crash = true }"
    if raw is None:
        raise ExpectationsError(f"{here}: missing signature; {hint}")
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise ExpectationsError(f"{here}: signature needs exactly one key; {hint}")
    ((kind, value),) = raw.items()
    if kind not in _SIGNATURE_KINDS:
        raise ExpectationsError(f"{here}: unknown signature kind {kind!r}; {hint}")
    if kind == "crash":
        if value is not True:
            raise ExpectationsError(f"{here}: a crash signature is {{ crash = true }}")
        return Signature("crash")
    if not isinstance(value, str) or not value:
        raise ExpectationsError(f"{here}: signature {kind} must be a non-empty string")
    if kind == "code":
        if value not in _GRPC_CODES:
            raise ExpectationsError(f"{here}: {value!r} is not a gRPC code name")
        return Signature("code", value)
    try:
        re.compile(value)
    except re.error as exc:
        raise ExpectationsError(f"{here}: signature {kind} regex: {exc}") from exc
    return Signature(kind, value)


def parse_expectations(
    data: Mapping[str, object],
    *,
    known_ids: Collection[str] | None = None,
    source: Path | None = None,
) -> Expectations:
    """Build :class:`Expectations` from decoded TOML.

    Args:
        data: the decoded document.
        known_ids: when given, every ``behavior`` must be one of these catalog IDs.
        source: the file the data came from (for messages).

    Raises:
        ExpectationsError: a missing or unknown key, a wrong type, an unknown ID.
    """
    where = str(source) if source else "expectations"
    header_table = data.get("expectations", {})
    if not isinstance(header_table, Mapping):
        raise ExpectationsError(f"{where}: [expectations] must be a table")
    header = {**{k: v for k, v in data.items() if k in _HEADER_KEYS}, **header_table}
    unknown = set(data) - _HEADER_KEYS - {"expectations", "deviation"}
    unknown |= set(header) - _HEADER_KEYS
    if unknown:
        raise ExpectationsError(f"{where}: unknown keys {sorted(unknown)}")
    target = _text(header, "target", where)
    profile = header.get("profile")
    if profile is not None and not isinstance(profile, str):
        raise ExpectationsError(f"{where}: 'profile' must be a string")
    raw = data.get("deviation", [])
    if not isinstance(raw, list):
        raise ExpectationsError(f"{where}: 'deviation' must be an array of tables")
    deviations = []
    for index, entry in enumerate(raw, start=1):
        here = f"{where}: deviation #{index}"
        if not isinstance(entry, Mapping):
            raise ExpectationsError(f"{here}: must be a table")
        extra = set(entry) - _DEVIATION_KEYS
        if extra:
            raise ExpectationsError(f"{here}: unknown keys {sorted(extra)}")
        behavior = _text(entry, "behavior", here)
        if known_ids is not None and behavior not in known_ids:
            raise ExpectationsError(f"{here}: unknown behaviour ID {behavior!r}")
        test = _text(entry, "test", here, default="*")
        here = f"{here} ({behavior} {test})"
        deviations.append(
            Deviation(
                behavior=behavior,
                reason=_text(entry, "reason", here),
                signature=_signature(entry, here),
                test=test,
                upstream=_text(entry, "upstream", here, default=""),
            )
        )
    return Expectations(
        target=target,
        profile=profile,
        description=_text(header, "description", where, default=""),
        deviations=tuple(deviations),
        source=source,
    )


def load_expectations(
    path: Path | str, *, known_ids: Collection[str] | None = None
) -> Expectations:
    """Read and validate an expectations TOML file.

    Args:
        path: the file.
        known_ids: when given, every ``behavior`` must be one of these catalog IDs.

    Raises:
        ExpectationsError: the file is unreadable, not TOML, or not of this format.
    """
    source = Path(path)
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ExpectationsError(f"{source}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ExpectationsError(f"{source}: invalid TOML: {exc}") from exc
    return parse_expectations(data, known_ids=known_ids, source=source)
