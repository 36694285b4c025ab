"""A faithful subset of Go's ``net/url.Parse``, because the seed decides with it.

The seed feeds operator and client strings to ``url.Parse`` and acts on the result:
``ParseAuth`` compares ``url.Parse(server_address).Host`` with the challenging host
(behaviors.md AUTH-002), ``registryEndpoints``/``registryHosts`` split mirror
endpoints into scheme, host and path (EP-006, HOST-001), and containerd's resolver
splits a reference with ``url.Parse("dummy://" + ref)`` (REF-013). Python's
``urllib.parse`` disagrees with Go on exactly the inputs the catalog cares about
(``localhost:5000`` is a *scheme* for Go, ``10.0.0.1:5000`` is an *error*), so
this module re-implements Go's rules (Go 1.19 ``net/url``; the same for these
inputs since the Go 1.12.8 port check):

* ``scheme:`` is split off when the text starts with a letter followed by
  letters, digits, ``+``, ``-`` or ``.`` and then ``:``; the scheme is lower-cased.
* with a scheme and no leading ``/`` the rest is *opaque* (``localhost:5000`` →
  scheme ``localhost``, opaque ``5000``, host ``""``);
* without a scheme, a colon in the first path segment is an error
  (``first path segment in URL cannot contain colon``);
* ``//authority`` sets user info and ``host[:port]``; the port must be digits,
  ``[v6]`` literals keep their brackets, ASCII ``%``-escapes are refused in hosts.

Errors are :class:`URLError` (a ``ValueError``) carrying Go's reason text. Its
``str()`` is Go >= 1.14's ``parse "<url>": <reason>``; :meth:`URLError.message`
renders the unquoted form older Go printed (behaviors.md ERR-003, EP-006).

Strings are Python ``str``. Go works on bytes; ``%``-escapes that decode to bytes
which are not UTF-8 are kept as surrogate escapes (``errors="surrogateescape"``),
so ``.encode("utf-8", "surrogateescape")`` gives back Go's bytes.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

__all__ = ["GoURL", "URLError", "Userinfo", "go_quote", "parse"]


class URLError(ValueError):
    """``url.Parse`` failed; mirrors Go's ``*url.Error`` with ``Op == "parse"``.

    Attributes:
        url: the text that was being parsed (Go reports the part before ``#``
            unless the fragment itself is malformed).
        reason: Go's error text, e.g. ``first path segment in URL cannot contain
            colon``.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(self.message())

    def message(self, *, quoted: bool = True, url: str | None = None) -> str:
        """Render the error as Go prints it.

        Args:
            quoted: ``True`` for Go >= 1.14 (``parse "<url>": …``), ``False`` for
                older Go (``parse <url>: …``) as used by seed-era builds.
            url: text to show instead of :attr:`url` (callers pass a redacted form).

        Returns:
            The message text.
        """
        shown = self.url if url is None else url
        rendered = go_quote(shown) if quoted else shown
        return f"parse {rendered}: {self.reason}"


@dataclass(frozen=True, repr=False)
class Userinfo:
    """The ``user[:password]`` part of an authority, already unescaped."""

    username: str
    password: str | None = None

    def __repr__(self) -> str:
        # The password is a secret: show only whether one was given.
        shown = "None" if self.password is None else "'xxxxx'"
        return f"Userinfo(username={self.username!r}, password={shown})"


@dataclass(frozen=True)
class GoURL:
    """The fields of Go's ``url.URL`` that callers in this project read.

    ``path`` and ``fragment`` are unescaped as Go does; ``raw_query`` is kept raw.
    """

    scheme: str = ""
    opaque: str = ""
    user: Userinfo | None = None
    host: str = ""
    path: str = ""
    raw_query: str = ""
    fragment: str = ""
    force_query: bool = False


class _Mode(enum.Enum):
    """Go's ``encoding`` modes that ``unescape`` distinguishes."""

    PATH = enum.auto()
    HOST = enum.auto()
    ZONE = enum.auto()
    USER_PASSWORD = enum.auto()
    FRAGMENT = enum.auto()


_HEX = frozenset("0123456789abcdefABCDEF")
_SCHEME_LATER = frozenset("0123456789+-.")
_HOST_SUB_DELIMS = frozenset("!$&'()*+,;=:[]<>\"")
_UNRESERVED_MARKS = frozenset("-_.~")
_RESERVED = frozenset("$&+,/:;=?@")
_USERINFO_EXTRA = frozenset("-._:~!$&'()*+,;=%@")


class _ParseError(Exception):
    """Internal: a reason text that :func:`parse` wraps into :class:`URLError`."""


def parse(raw: str) -> GoURL:
    """Parse *raw* exactly as Go's ``url.Parse`` does (for the fields of GoURL).

    Accepted forms, as Go sees them:

    * ``https://user:pw@host:5000/p?q#f`` → scheme, user, host ``host:5000``,
      path ``/p``, raw_query ``q``, fragment ``f``;
    * ``host:5000`` → scheme ``host``, opaque ``5000`` (no host!);
    * ``host`` or ``host/p`` → path only (no host!);
    * ``//host/p`` → host without scheme; ``*`` → path ``*``.

    Args:
        raw: the text to parse.

    Returns:
        The parsed URL.

    Raises:
        URLError: with Go's reason, e.g. ``first path segment in URL cannot contain
            colon`` (``10.0.0.1:5000``), ``missing protocol scheme`` (``:x``),
            ``invalid port ":x" after host``, ``missing ']' in host``,
            ``invalid URL escape "%zz"``, ``invalid character " " in host name``,
            ``net/url: invalid control character in URL``,
            ``net/url: invalid userinfo``.
    """
    # Go cuts the fragment off first and reports errors against the remainder.
    before, sep, frag = raw.partition("#")
    try:
        url = _parse_no_fragment(before)
    except _ParseError as exc:
        raise URLError(before, str(exc)) from None
    if not sep or frag == "":
        return url
    try:
        fragment = _unescape(frag, _Mode.FRAGMENT)
    except _ParseError as exc:
        raise URLError(raw, str(exc)) from None
    return dataclasses.replace(url, fragment=fragment)


def _parse_no_fragment(raw: str) -> GoURL:
    if any(ord(c) < 0x20 or c == "\x7f" for c in raw):
        raise _ParseError("net/url: invalid control character in URL")
    if raw == "*":
        return GoURL(path="*")
    scheme, rest = _split_scheme(raw)
    scheme = scheme.lower()
    force_query = False
    raw_query = ""
    if rest.endswith("?") and rest.count("?") == 1:
        force_query, rest = True, rest[:-1]
    else:
        rest, _, raw_query = rest.partition("?")
    if not rest.startswith("/"):
        if scheme:
            # RFC 3986 rootless paths are opaque: "localhost:5000" ends here.
            return GoURL(
                scheme=scheme, opaque=rest, raw_query=raw_query, force_query=force_query
            )
        # golang.org/issue/16822: "cache_object:foo/bar" is not a relative path.
        if ":" in rest.partition("/")[0]:
            raise _ParseError("first path segment in URL cannot contain colon")
    user: Userinfo | None = None
    host = ""
    if rest.startswith("//") and (scheme or not rest.startswith("///")):
        authority, slash, tail = rest[2:].partition("/")
        rest = slash + tail
        user, host = _parse_authority(authority)
    path = _unescape(rest, _Mode.PATH)
    return GoURL(
        scheme=scheme,
        user=user,
        host=host,
        path=path,
        raw_query=raw_query,
        force_query=force_query,
    )


def _split_scheme(raw: str) -> tuple[str, str]:
    """Go's ``getScheme``: ``("", raw)`` unless *raw* starts with ``scheme:``."""
    for i, c in enumerate(raw):
        if c.isascii() and c.isalpha():
            continue
        if c in _SCHEME_LATER:
            if i == 0:
                return "", raw
            continue
        if c == ":":
            if i == 0:
                raise _ParseError("missing protocol scheme")
            return raw[:i], raw[i + 1 :]
        return "", raw
    return "", raw


def _parse_authority(authority: str) -> tuple[Userinfo | None, str]:
    at = authority.rfind("@")
    host = _parse_host(authority[at + 1 :])
    if at < 0:
        return None, host
    userinfo = authority[:at]
    if not all(_is_userinfo_char(c) for c in userinfo):
        raise _ParseError("net/url: invalid userinfo")
    if ":" not in userinfo:
        return Userinfo(_unescape(userinfo, _Mode.USER_PASSWORD)), host
    name, _, password = userinfo.partition(":")
    return Userinfo(
        _unescape(name, _Mode.USER_PASSWORD),
        _unescape(password, _Mode.USER_PASSWORD),
    ), host


def _is_userinfo_char(c: str) -> bool:
    return (c.isascii() and c.isalnum()) or c in _USERINFO_EXTRA


def _parse_host(host: str) -> str:
    if host.startswith("["):
        # RFC 3986 IP-literal, RFC 6874 zone ("[fe80::1%25en0]:80").
        close = host.rfind("]")
        if close < 0:
            raise _ParseError("missing ']' in host")
        _check_port(host[close + 1 :])
        zone = host.find("%25", 0, close)
        if zone >= 0:
            return (
                _unescape(host[:zone], _Mode.HOST)
                + _unescape(host[zone:close], _Mode.ZONE)
                + _unescape(host[close:], _Mode.HOST)
            )
    elif (colon := host.rfind(":")) >= 0:
        _check_port(host[colon:])
    return _unescape(host, _Mode.HOST)


def _check_port(colon_port: str) -> None:
    # Go's validOptionalPort: "" or ":" followed by ASCII digits only (no range check).
    if colon_port and (colon_port[0] != ":" or not _all_digits(colon_port[1:])):
        raise _ParseError(f"invalid port {go_quote(colon_port)} after host")


def _all_digits(text: str) -> bool:
    return all("0" <= c <= "9" for c in text)


def _should_escape(c: str, mode: _Mode) -> bool:
    """Go's ``shouldEscape`` for one ASCII character, for the modes used here."""
    if c.isascii() and c.isalnum():
        return False
    if mode in (_Mode.HOST, _Mode.ZONE) and c in _HOST_SUB_DELIMS:
        return False
    if c in _UNRESERVED_MARKS:
        return False
    if c in _RESERVED:
        if mode is _Mode.PATH:
            return c == "?"
        if mode is _Mode.USER_PASSWORD:
            return c in "@/?:"
        if mode is _Mode.FRAGMENT:
            return False
    return not (mode is _Mode.FRAGMENT and c in "!()*")


def _unescape(text: str, mode: _Mode) -> str:
    """Go's ``unescape``: validate ``%XX`` escapes and host characters, then decode."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "%":
            _check_escape(text, i, mode)
            out.append(int(text[i + 1 : i + 3], 16))
            i += 3
            continue
        if mode in (_Mode.HOST, _Mode.ZONE) and c.isascii() and _should_escape(c, mode):
            raise _ParseError(f"invalid character {go_quote(c)} in host name")
        out += c.encode("utf-8", "surrogateescape")
        i += 1
    return out.decode("utf-8", "surrogateescape")


def _check_escape(text: str, i: int, mode: _Mode) -> None:
    escape = text[i : i + 3]
    if len(escape) < 3 or escape[1] not in _HEX or escape[2] not in _HEX:
        raise _ParseError(f"invalid URL escape {go_quote(escape)}")
    value = int(escape[1:], 16)
    # RFC 3986: hosts may %-encode only non-ASCII bytes; RFC 6874 adds "%25".
    if mode is _Mode.HOST and value < 0x80 and escape != "%25":
        raise _ParseError(f"invalid URL escape {go_quote(escape)}")
    # Zones may escape only what could be written directly (plus space).
    if (
        mode is _Mode.ZONE
        and escape != "%25"
        and value != 0x20
        and _should_escape(chr(value), _Mode.HOST)
    ):
        raise _ParseError(f"invalid URL escape {go_quote(escape)}")


def go_quote(text: str) -> str:
    """Quote *text* like Go's ``strconv.Quote`` (``%q``), for error messages.

    Args:
        text: the string to quote; surrogate escapes stand for raw bytes.

    Returns:
        The double-quoted form with Go's escapes (``\\n``, ``\\x00``, ``\\u00ad`` …).
    """
    parts = ['"']
    for c in text:
        parts.append(_quote_char(c))
    parts.append('"')
    return "".join(parts)


_SIMPLE_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _quote_char(c: str) -> str:
    code = ord(c)
    if c in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[c]
    if 0xDC80 <= code <= 0xDCFF:
        # A surrogate escape stands for one raw byte that was not UTF-8.
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if c.isprintable():
        return c
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
