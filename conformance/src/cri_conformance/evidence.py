"""Evidence a test attaches to its case, and the redaction every rendering goes through.

Against a real runtime the CRI exchange and the registry journal are often the only
evidence (STYLE.md point 9), so tests keep them; reports must never leak what a
credential looks like (ggcr's ``redact``: "We don't want to log credentials.").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["REDACTED", "Evidence", "EvidenceItem", "redact"]

REDACTED = "[REDACTED]"

_NOT_DONE = r"(?!\[REDACTED\])"
_SECRET_KEYS = (
    r"password|passwd|refresh_token|access_token|id_token|token|identity_?token"
    r"|registry_?token|client_secret|secret|auth|x-amz-signature|x-amz-credential"
    r"|x-amz-security-token|sig|signature"
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Header lines and header dicts: keep the scheme, drop the value.
    (
        re.compile(
            r"((?:proxy-)?authorization[\"']?[ \t]*[:=][ \t]*[\"']?)"
            r"(?!(?:\w+[ \t]+)?\[REDACTED\])"
            r"(?!(?:basic|bearer|digest|negotiate)[ \t]*(?:$|\n|[\"',;]))"
            r"((?:basic|bearer|digest|negotiate)[ \t]+)?[^\s\"',;]+",
            re.IGNORECASE,
        ),
        r"\1\2" + REDACTED,
    ),
    # Bare credentials after a scheme word; short lower-case prose ("Basic auth") stays.
    (
        re.compile(
            r"\b(Basic|Bearer)\s+"
            + _NOT_DONE
            + r"(?![a-z]{1,15}\b)[A-Za-z0-9+/=._~-]{3,}"
        ),
        r"\1 " + REDACTED,
    ),
    # Quoted keys (JSON, Python dict reprs): "password": "x".
    (
        re.compile(
            r"([\"'](?:"
            + _SECRET_KEYS
            + r")[\"']\s*:\s*)([\"'])"
            + _NOT_DONE
            + r"(?:\\.|(?!\2).)*\2",
            re.IGNORECASE,
        ),
        r"\1\2" + REDACTED + r"\2",
    ),
    # key='value' (dataclass reprs) and key=value (forms, query strings).
    (
        re.compile(
            r"\b((?:"
            + _SECRET_KEYS
            + r")=)([\"'])"
            + _NOT_DONE
            + r"(?:\\.|(?!\2).)*\2",
            re.IGNORECASE,
        ),
        r"\1\2" + REDACTED + r"\2",
    ),
    (
        re.compile(
            r"\b((?:" + _SECRET_KEYS + r")=)" + _NOT_DONE + r"[^\s&\"',;)}\]]+",
            re.IGNORECASE,
        ),
        r"\1" + REDACTED,
    ),
    # URL user info: scheme://user:password@host.
    (
        re.compile(r"(://[^/\s:@]+):" + _NOT_DONE + r"[^/\s@]+@"),
        r"\1:" + REDACTED + "@",
    ),
    # The seed echoes a decoded auth blob (behaviors.md AUTH-003, F-09).
    (
        re.compile(r"(invalid decoded auth:\s*)\"(?:\\.|[^\"\\])*\"", re.IGNORECASE),
        r'\1"' + REDACTED + '"',
    ),
)


def redact(text: str) -> str:
    """Replace anything that looks like a credential in *text* with ``[REDACTED]``.

    Covers ``Authorization`` header values, ``Basic``/``Bearer`` credentials,
    password/token/secret fields in JSON, reprs, forms and query strings (signed-URL
    signatures included), URL user info and the seed's ``invalid decoded auth`` echo.
    Redacting twice gives the same text.

    Args:
        text: any text bound for a report or a log.

    Returns:
        The redacted text.
    """
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


@dataclass(frozen=True)
class EvidenceItem:
    """One piece of evidence: a kind (``journal``, ``cri``, ``failure`` …) and text."""

    kind: str
    text: str


class Evidence:
    """What one test case saw, kept for the report (the ``evidence`` fixture).

    Text is redacted as it is added, so a secret never sits in memory longer than the
    test that produced it.
    """

    def __init__(self) -> None:
        self._items: list[EvidenceItem] = []

    def add(self, kind: str, text: str | bytes | object) -> None:
        """Attach *text* under *kind*.

        Args:
            kind: a short label such as ``"journal"`` or ``"cri"``.
            text: the evidence; bytes are decoded as UTF-8 (invalid bytes replaced),
                other objects are rendered with ``str``.
        """
        if isinstance(text, bytes):
            rendered = text.decode("utf-8", errors="replace")
        else:
            rendered = str(text)
        self._items.append(EvidenceItem(kind=kind, text=redact(rendered)))

    @property
    def items(self) -> tuple[EvidenceItem, ...]:
        """The evidence attached so far, in order."""
        return tuple(self._items)

    def __iter__(self) -> Iterator[EvidenceItem]:
        return iter(tuple(self._items))

    def __len__(self) -> int:
        return len(self._items)
