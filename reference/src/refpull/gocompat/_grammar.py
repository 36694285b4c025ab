"""The docker image reference grammar, quoted, with the regex fragment under each line.

The grammar lines are the package documentation of docker/distribution@0d3efadf
``reference/reference.go``; containerd 1.6.20 ``reference/docker`` carries the same
grammar (behaviors.md §1). The fragments follow ``reference/regexp.go``. Parsers call
``re.fullmatch`` (Go anchors with ``^…$``, which never matches before a trailing
newline, unlike Python's ``$``). Property tests draw valid strings from
:data:`REFERENCE` with ``hypothesis.strategies.from_regex(…, fullmatch=True)``.

Two fragments are written differently from upstream but match the same language:
upstream's ``separator`` may be empty and its ``domain-component`` nests a ``*``
before a final character. Go's RE2 runs those in linear time; Python's backtracking
engine would take exponential time on inputs such as ``"a" * 40 + "!"``, so the
versions below have exactly one way to match any string.

Character classes are spelled out: Go's ``\\w`` and ``[[:xdigit:]]`` are ASCII-only,
Python's ``\\w`` is not.
"""

from __future__ import annotations

__all__ = [
    "ALPHA_NUMERIC",
    "ANCHORED_NAME",
    "DIGEST",
    "DOMAIN",
    "DOMAIN_COMPONENT",
    "GO_DIGEST",
    "IDENTIFIER",
    "NAME",
    "NAME_TOTAL_LENGTH_MAX",
    "PATH_COMPONENT",
    "PORT_NUMBER",
    "REFERENCE",
    "SEPARATOR",
    "SHORT_IDENTIFIER",
    "TAG",
]

# alpha-numeric := /[a-z0-9]+/
ALPHA_NUMERIC = r"[a-z0-9]+"

# separator := /[_.]|__|[-]*/
# An empty separator only joins two alpha-numeric runs, which ALPHA_NUMERIC already
# matches, so "[-]*" becomes "-+" without changing the language (see module doc).
SEPARATOR = r"(?:[._]|__|-+)"

# path-component := alpha-numeric [separator alpha-numeric]*
PATH_COMPONENT = rf"{ALPHA_NUMERIC}(?:{SEPARATOR}{ALPHA_NUMERIC})*"

# domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
# Same language: letters/digits, inner hyphens only, written unambiguously.
DOMAIN_COMPONENT = r"[a-zA-Z0-9]+(?:-+[a-zA-Z0-9]+)*"

# port-number := /[0-9]+/
PORT_NUMBER = r"[0-9]+"

# domain := domain-component ['.' domain-component]* [':' port-number]
DOMAIN = rf"{DOMAIN_COMPONENT}(?:\.{DOMAIN_COMPONENT})*(?::{PORT_NUMBER})?"

# name := [domain '/'] path-component ['/' path-component]*
NAME = rf"(?:{DOMAIN}/)?{PATH_COMPONENT}(?:/{PATH_COMPONENT})*"

# The same with two groups, as regexp.go's anchoredNameRegexp: (1) domain, (2) path.
ANCHORED_NAME = rf"(?:({DOMAIN})/)?({PATH_COMPONENT}(?:/{PATH_COMPONENT})*)"

# tag := /[\w][\w.-]{0,127}/
TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"

# digest := digest-algorithm ":" digest-hex
# digest-algorithm := digest-algorithm-component
#                     [ digest-algorithm-separator digest-algorithm-component ]*
# digest-algorithm-separator := /[+.-_]/
# digest-algorithm-component := /[A-Za-z][A-Za-z0-9]*/
# digest-hex := /[0-9a-fA-F]{32,}/ ; At least 128 bit digest value
# (regexp.go implements the separator as the class [-_+.].)
DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

# reference := name [ ":" tag ] [ "@" digest ]
# Groups, as regexp.go's ReferenceRegexp: (1) name, (2) tag, (3) digest.
REFERENCE = rf"({NAME})(?::({TAG}))?(?:@({DIGEST}))?"

# identifier := /[a-f0-9]{64}/
IDENTIFIER = r"[a-f0-9]{64}"

# short-identifier := /[a-f0-9]{6,64}/
SHORT_IDENTIFIER = r"[a-f0-9]{6,64}"

# NameTotalLengthMax: "maximum total number of characters in a repository name".
NAME_TOTAL_LENGTH_MAX = 255

# go-digest (digest.go) DigestRegexp, checked only for algorithms it does not know:
# /[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+/
GO_DIGEST = r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+"
