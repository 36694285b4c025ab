"""Go ``encoding/json`` encoding: ``MarshalIndent`` layout and escaping.

Go escapes ``<``, ``>``, ``&``, U+2028 and U+2029 and writes control characters other than
``\\n \\r \\t`` as ``\\u00XX`` (go1.19.8, which built Debian's containerd 1.6.20, predates
the short ``\\b``/``\\f`` escapes; checked against that binary). A ``dict`` is emitted in
its own order (struct field order); :func:`encode_value` sorts map keys like Go.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

from refpull.gocompat.gojson import GoTime, Kind, zero_value

__all__ = ["encode_value", "marshal_indent", "sorted_map"]


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if ch == '"':
        return '\\"'
    if ch == "\\":
        return "\\\\"
    if ch == "\n":
        return "\\n"
    if ch == "\r":
        return "\\r"
    if ch == "\t":
        return "\\t"
    return f"\\u{code:04x}"


# Go's encodeState.string with escapeHTML=true (json.Marshal's default).
_NEEDS_ESCAPE = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029]')


def _quote(s: str) -> str:
    return '"' + _NEEDS_ESCAPE.sub(lambda m: _escape_char(m.group(0)), s) + '"'


def sorted_map(mapping: dict[str, Any]) -> dict[str, Any]:
    """Return *mapping* with keys in Go's map order (byte-wise, i.e. code point order)."""
    return {k: mapping[k] for k in sorted(mapping)}


def _encode(value: Any, indent: str, level: int) -> Iterator[str]:
    if value is None:
        yield "null"
    elif value is True:
        yield "true"
    elif value is False:
        yield "false"
    elif isinstance(value, int):
        yield str(value)
    elif isinstance(value, str):
        yield _quote(value)
    elif isinstance(value, bytes):
        yield _quote(base64.b64encode(value).decode("ascii"))
    elif isinstance(value, GoTime):
        yield _quote(value.format())
    elif isinstance(value, list | tuple):
        if not value:
            yield "[]"
            return
        inner = "\n" + indent * (level + 1)
        yield "["
        for i, item in enumerate(value):
            yield ("," if i else "") + inner
            yield from _encode(item, indent, level + 1)
        yield "\n" + indent * level + "]"
    elif isinstance(value, dict):
        if not value:
            yield "{}"
            return
        inner = "\n" + indent * (level + 1)
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            yield ("," if i else "") + inner + _quote(key) + ": "
            yield from _encode(item, indent, level + 1)
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


def marshal_indent(value: Any, indent: str = "   ") -> bytes:
    """Encode *value* like Go's ``json.MarshalIndent(value, "", indent)``.

    Returns:
        UTF-8 bytes without a trailing newline.
    """
    return "".join(_encode(value, indent, 0)).encode("utf-8")
