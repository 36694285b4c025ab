"""CRI ``AuthConfig`` and the seed's ``ParseAuth``: which credentials a host gets.

``parse_auth`` answers, for the host that sent a 401 challenge, the
``(username, secret)`` pair the seed's ``ParseAuth`` returns (behaviors.md §5,
AUTH-001..AUTH-005; identical in containerd 1.6.20):

1. no AuthConfig → anonymous;
2. ``server_address`` set: Go ``url.Parse`` it; a parse error fails, a host other
   than the challenging one (exact, case- and port-sensitive) → anonymous;
3. ``username`` → ``(username, password)``, even with an empty password;
4. ``identity_token`` → ``("", token)`` (an OAuth refresh token, AUTH-005);
5. ``auth`` → base64 ``user:pass`` with Go's ``base64.StdEncoding`` quirks;
6. otherwise anonymous; ``registry_token`` is never used (seed TODO).

Nothing here decides *where* credentials may go; endpoint scoping and redirect
rules live with the authorizer, which is safe in every profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from refpull.errors import InvalidAuth
from refpull.gocompat import gourl
from refpull.profiles import SEED, Profile

__all__ = ["AuthConfig", "Credentials", "parse_auth"]

# CRI AuthConfig field → accepted keys: proto field names and their JSON (camelCase)
# names, as crictl and protobuf's JSON mapping write them.
_KEYS: dict[str, str] = {
    "username": "username",
    "password": "password",
    "auth": "auth",
    "server_address": "server_address",
    "serverAddress": "server_address",
    "identity_token": "identity_token",
    "identityToken": "identity_token",
    "registry_token": "registry_token",
    "registryToken": "registry_token",
}
_SECRET_FIELDS = ("password", "auth", "identity_token", "registry_token")


def _shown(value: str) -> str:
    # Say whether a secret is present, never what it is.
    return "'xxxxx'" if value else "''"


@dataclass(frozen=True, kw_only=True, repr=False)
class AuthConfig:
    """CRI ``runtime.AuthConfig`` (v1 and v1alpha2 have the same fields).

    ``repr()`` shows ``username`` and ``server_address`` and masks every secret.
    """

    username: str = ""
    password: str = ""
    auth: str = ""
    server_address: str = ""
    identity_token: str = ""
    registry_token: str = ""

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> AuthConfig:
        """Build an AuthConfig from CRI JSON.

        Accepted keys: ``username``, ``password``, ``auth``, and both spellings of
        ``server_address``/``serverAddress``, ``identity_token``/``identityToken``,
        ``registry_token``/``registryToken``. ``None`` means unset (``""``).

        Args:
            data: the decoded JSON object.

        Returns:
            The AuthConfig.

        Raises:
            ValueError: an unknown key, or one field given twice with different
                values. The message names keys only, never values.
            TypeError: a value that is neither a string nor ``None``.
        """
        fields: dict[str, str] = {}
        for key, value in data.items():
            field = _KEYS.get(key)
            if field is None:
                raise ValueError(f"unknown AuthConfig key {key!r}")
            if value is None:
                value = ""
            if not isinstance(value, str):
                raise TypeError(f"AuthConfig key {key!r} must be a string")
            if fields.get(field, value) != value:
                raise ValueError(f"AuthConfig field {field!r} is given twice")
            fields[field] = value
        return cls(**fields)

    def __repr__(self) -> str:
        parts = [f"username={self.username!r}"]
        parts += [f"{name}={_shown(getattr(self, name))}" for name in _SECRET_FIELDS]
        parts.append(f"server_address={self.server_address!r}")
        return f"AuthConfig({', '.join(parts)})"


@dataclass(frozen=True, repr=False)
class Credentials:
    """What ``ParseAuth`` returns: a username and a password or token.

    Falsy when both are empty (anonymous). ``("", secret)`` is an identity/refresh
    token (AUTH-005); ``(user, "")`` satisfies neither Basic nor the token flow
    (AUTH-004). Strings decoded from ``auth`` may hold raw bytes as surrogate
    escapes; ``.encode("utf-8", "surrogateescape")`` restores them.
    """

    username: str = ""
    secret: str = ""

    def __bool__(self) -> bool:
        return bool(self.username or self.secret)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, secret={_shown(self.secret)})"


_ANONYMOUS = Credentials()


def parse_auth(
    auth: AuthConfig | None, host: str, *, profile: Profile = SEED
) -> Credentials:
    """Return the credentials the seed's ``ParseAuth`` offers to *host*.

    Args:
        auth: the CRI AuthConfig, or ``None`` when the request carried none.
        host: ``host[:port]`` of the request that was challenged, as written in
            the endpoint URL (``registry-1.docker.io``, ``127.0.0.1:5000``).
        profile: chooses only how Go prints a URL in a parse error
            (``Profile.quoted_urls_in_errors``, behaviors.md ERR-003).

    Returns:
        The credentials; ``Credentials()`` (falsy) for anonymous.

    Raises:
        InvalidAuth: ``server_address`` is not a Go URL (``parse server address:
            …``, e.g. for ``10.0.0.1:5000``), ``auth`` is not padded standard
            base64 (``illegal base64 data at input byte N``), or it decodes to a
            value without ``:`` (``invalid decoded auth: …``). No message holds a
            password, token or decoded value.
    """
    if auth is None:
        return _ANONYMOUS
    if auth.server_address and not _server_matches(auth.server_address, host, profile):
        return _ANONYMOUS
    # behaviors.md AUTH-001: username, then identity_token, then auth.
    if auth.username:
        return Credentials(auth.username, auth.password)
    if auth.identity_token:
        return Credentials("", auth.identity_token)
    if auth.auth:
        return _decode_auth(auth.auth)
    # cri@ab6701bd ParseAuth: "TODO(random-liu): Support RegistryToken." (AUTH-001)
    return _ANONYMOUS


def _server_matches(server_address: str, host: str, profile: Profile) -> bool:
    # behaviors.md AUTH-002; cri@ab6701bd ParseAuth: host != url.Parse(addr).Host.
    try:
        url = gourl.parse(server_address)
    except gourl.URLError as exc:
        # Deviation: Go echoes the raw address, userinfo password included; the
        # reference masks it as Go's URL.Redacted() would ("never log a password").
        shown = _redact_userinfo(exc.url)
        message = exc.message(quoted=profile.quoted_urls_in_errors, url=shown)
        raise InvalidAuth(f"parse server address: {message}") from None
    return url.host == host


def _redact_userinfo(raw: str) -> str:
    start = raw.find("://") + 3 if "://" in raw else 0
    end = raw.find("/", start)
    end = len(raw) if end < 0 else end
    at = raw.rfind("@", start, end)
    colon = raw.find(":", start, at) if at >= 0 else -1
    if colon < 0:
        return raw
    return f"{raw[: colon + 1]}xxxxx{raw[at:]}"


def _decode_auth(blob: str) -> Credentials:
    # behaviors.md AUTH-003; cri@ab6701bd ParseAuth: decode into a buffer of
    # DecodedLen bytes, ignore the decoded length, split at the first ":", and
    # strings.Trim the password of NULs (the buffer's slack, and real NULs too).
    data = blob.encode("utf-8", "surrogateescape")
    buffer = bytearray(len(data) // 4 * 3)
    decoded = _go_std_b64decode(data)
    buffer[: len(decoded)] = decoded
    user, colon, password = bytes(buffer).partition(b":")
    if not colon:
        # Deviation: the seed formats the decoded value with %q, echoing the
        # secret into the CRI error and containerd's log (upstream-issues.md F-09).
        raise InvalidAuth(
            'invalid decoded auth: no ":" between user and password'
            " (decoded value withheld)"
        )
    return Credentials(_text(user), _text(password.strip(b"\x00")))


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUES = {byte: value for value, byte in enumerate(_B64_ALPHABET)}
_NEWLINES = b"\r\n"
_PAD = ord("=")


def _go_std_b64decode(src: bytes) -> bytes:
    """Go ``base64.StdEncoding.Decode``: padding required, CR/LF skipped anywhere.

    Raises:
        InvalidAuth: ``illegal base64 data at input byte N`` with Go's N.
    """
    out = bytearray()
    pos = 0
    while pos < len(src):
        pos, chunk = _decode_quantum(src, pos)
        out += chunk
    return bytes(out)


def _corrupt(offset: int) -> InvalidAuth:
    return InvalidAuth(f"illegal base64 data at input byte {offset}")


def _decode_quantum(src: bytes, pos: int) -> tuple[int, bytes]:
    """One 4-symbol group, following Go's ``decodeQuantum`` step by step."""
    values: list[int] = []
    while len(values) < 4:
        if pos == len(src):
            if not values:
                return pos, b""
            # StdEncoding pads, so a short final group is always corrupt.
            raise _corrupt(pos - len(values))
        byte = src[pos]
        pos += 1
        if byte in _B64_VALUES:
            values.append(_B64_VALUES[byte])
            continue
        if byte in _NEWLINES:
            continue
        if byte != _PAD or len(values) < 2:
            raise _corrupt(pos - 1)
        pos = _consume_padding(src, pos, len(values))
        break
    bits = 0
    for value in values + [0] * (4 - len(values)):
        bits = bits << 6 | value
    # Non-strict: leftover low bits of a padded group are ignored, as in Go.
    return pos, bits.to_bytes(3, "big")[: len(values) - 1]


def _consume_padding(src: bytes, pos: int, have: int) -> int:
    """After the first ``=``: require ``==`` for 2 symbols, then only CR/LF."""
    if have == 2:
        pos = _skip_newlines(src, pos)
        if pos == len(src):
            raise _corrupt(len(src))
        if src[pos] != _PAD:
            raise _corrupt(pos - 1)
        pos += 1
    pos = _skip_newlines(src, pos)
    if pos < len(src):
        raise _corrupt(pos)  # data after the padding
    return pos


def _skip_newlines(src: bytes, pos: int) -> int:
    while pos < len(src) and src[pos] in _NEWLINES:
        pos += 1
    return pos
