"""Go ``encoding/json`` encoding: ``MarshalIndent`` layout and escaping.

Go escapes ``<``, ``>``, ``&``, U+2028 and U+2029 and writes control characters other than
``\\n \\r \\t`` as ``\\u00XX``. Backspace and form feed depend on the Go that built the
runtime: go1.19.8 (Debian's containerd 1.6.20) writes ``\\u0008``/``\\u000c``, Go 1.22 and
later ``\\b``/``\\f`` (both checked against those binaries). A ``dict`` is emitted in
its own order (struct field order); :func:`encode_value` sorts map keys like Go.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from refpull.gocompat.gojson import GoTime, Kind, zero_value

__all__ = ["encode_value", "marshal_indent", "sorted_map"]


# Go's encodeState.string with escapeHTML=true (json.Marshal's default).
_NEEDS_ESCAPE = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029]')
_SHORT: Final = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# https://go.dev/doc/go1.22#encoding/json: "Marshaling and encoding functionality now
# escapes '\b' and '\f' characters as \b and \f instead of \u0008 and \u000c."
_SHORT_GO122: Final = {**_SHORT, "\b": "\\b", "\f": "\\f"}


def _quote(s: str, short: Mapping[str, str]) -> str:
    def escape(match: re.Match[str]) -> str:
        ch = match.group(0)
        return short.get(ch) or f"\\u{ord(ch):04x}"

    return '"' + _NEEDS_ESCAPE.sub(escape, s) + '"'


def sorted_map(mapping: dict[str, Any]) -> dict[str, Any]:
    """Return *mapping* with keys in Go's map order (byte-wise, i.e. code point order)."""
    return {k: mapping[k] for k in sorted(mapping)}


def _encode(
    value: Any, indent: str, level: int, short: Mapping[str, str]
) -> Iterator[str]:
    if value is None:
        yield "null"
    elif value is True:
        yield "true"
    elif value is False:
        yield "false"
    elif isinstance(value, int):
        yield str(value)
    elif isinstance(value, str):
        yield _quote(value, short)
    elif isinstance(value, bytes):
        yield _quote(base64.b64encode(value).decode("ascii"), short)
    elif isinstance(value, GoTime):
        yield _quote(value.format(), short)
    elif isinstance(value, list | tuple):
        if not value:
            yield "[]"
            return
        inner = "\n" + indent * (level + 1)
        yield "["
        for i, item in enumerate(value):
            yield ("," if i else "") + inner
            yield from _encode(item, indent, level + 1, short)
        yield "\n" + indent * level + "]"
    elif isinstance(value, dict):
        if not value:
            yield "{}"
            return
        inner = "\n" + indent * (level + 1)
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            yield ("," if i else "") + inner + _quote(key, short) + ": "
            yield from _encode(item, indent, level + 1, short)
        yield "\n" + indent * level + "}"
    else:
        raise TypeError(f"cannot encode {type(value).__name__}")


def _is_empty(kind: Kind, value: Any) -> bool:
    # Go's isEmptyValue; structs are never empty.
    if kind.tag == "struct" or kind.tag == "time":
        return False
    return (
        value is None
        or value in ("", 0, False)
        or (isinstance(value, list | dict | bytes) and len(value) == 0)
    )


def encode_value(kind: Kind, value: Any) -> Any:
    """Turn a decoded Go value of type *kind* into encoder input (field order, zeroes).

    Args:
        kind: the Go type.
        value: what :func:`decode_value` returned (or an equivalent hand-built value).

    Returns:
        A value for :func:`marshal_indent`: structs as ``dict`` in field order with
        ``omitempty`` applied, maps with sorted keys, nil slices/maps/pointers as ``None``.
    """
    if kind.tag == "struct":
        src = value or {}
        out: dict[str, Any] = {}
        for f in kind.fields:
            item = src.get(f.name)
            if item is None and f.kind.tag not in ("ptr", "slice", "map", "bytes"):
                item = zero_value(f.kind)
            if f.omitempty and _is_empty(f.kind, item):
                continue
            out[f.name] = encode_value(f.kind, item)
        return out
    if value is None:
        return None
    if kind.tag == "ptr":
        assert kind.elem is not None
        return encode_value(kind.elem, value)
    if kind.tag == "slice":
        assert kind.elem is not None
        return [encode_value(kind.elem, v) for v in value]
    if kind.tag == "map":
        assert kind.elem is not None
        return sorted_map({k: encode_value(kind.elem, v) for k, v in value.items()})
    if kind.tag == "emptystruct":
        return {}
    return value


def marshal_indent(
    value: Any, indent: str = "   ", *, short_control_escapes: bool = False
) -> bytes:
    """Encode *value* like Go's ``json.MarshalIndent(value, "", indent)``.

    Args:
        value: encoder input (see :func:`encode_value`).
        indent: one level of indentation.
        short_control_escapes: write backspace and form feed as ``\\b``/``\\f`` (Go 1.22
            and later) instead of ``\\u0008``/``\\u000c`` (the profile's
            ``json_short_control_escapes``, S1-008).

    Returns:
        UTF-8 bytes without a trailing newline.
    """
    short = _SHORT_GO122 if short_control_escapes else _SHORT
    return "".join(_encode(value, indent, 0, short)).encode("utf-8")
