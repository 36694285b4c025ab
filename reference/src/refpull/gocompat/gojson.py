"""Go ``encoding/json`` semantics, as far as the puller's byte-exact outputs need them.

Decoding lives here, encoding in :mod:`refpull.gocompat.goencode`. Two halves:

* **decoding into Go structs** (:func:`decode_tree` + :func:`decode_struct`): keys match
  exactly first, then case-insensitively (ASCII folding plus the Kelvin sign and long s, as
  Go's ``equalFoldRight``); the last duplicate wins; nested structs and maps merge on
  duplicates; ``null`` resets pointers, maps and slices and leaves strings, bools, numbers
  and structs untouched; type mismatches are remembered and reported after the whole value
  was decoded (``json: cannot unmarshal <kind> into Go struct field <S>.<path> of type <T>``).
* **encoding** (:func:`marshal_indent`): Go's ``MarshalIndent`` layout, with Go's escaping
  (``<``, ``>``, ``&``, U+2028 and U+2029 escaped; control characters other than
  ``\\n \\r \\t`` as ``\\u00XX`` — go1.19.8, the Go that built Debian's containerd 1.6.20,
  predates the short ``\\b``/``\\f`` escapes).

Values passed to the encoder are plain Python values; a ``dict`` is emitted in its own order
(struct field order), so callers sort map keys themselves with :func:`sorted_map`.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from refpull.gocompat._gotime import LAYOUT, GoTime, GoTimeError, parse_time

__all__ = [
    "Field",
    "GoJSONError",
    "GoNumber",
    "GoObject",
    "GoTime",
    "Kind",
    "decode_tree",
    "decode_value",
    "fold_key",
    "parse_time",
    "zero_value",
]

_MAX_DEPTH: Final = 10000  # Go's scanner maxNestingDepth


class GoJSONError(ValueError):
    """A decoding error, worded like Go's ``encoding/json`` where practical."""


@dataclass(frozen=True)
class GoNumber:
    """A JSON number kept as its literal text (Go decodes numbers per target type)."""

    text: str


@dataclass(frozen=True)
class GoObject:
    """A JSON object as its ordered ``(key, value)`` pairs (duplicates kept)."""

    pairs: tuple[tuple[str, Any], ...]


_SURROGATES = re.compile("[\ud800-\udfff]")


def _fix_string(s: str) -> str:
    # Go's unquote turns a lone UTF-16 surrogate escape into U+FFFD (valid pairs were
    # already combined by Python's scanner).
    return _SURROGATES.sub("\ufffd", s) if _SURROGATES.search(s) else s


def _go_replace(err: UnicodeError) -> tuple[str, int]:
    # Go replaces every byte of an invalid UTF-8 sequence by one U+FFFD.
    if not isinstance(err, UnicodeDecodeError):  # pragma: no cover - decode only
        raise err
    return "\ufffd" * (err.end - err.start), err.end


codecs.register_error("refpull-go-replace", _go_replace)


def _reject_constant(name: str) -> Any:
    raise GoJSONError(f"invalid character '{name[0]}' looking for beginning of value")


def _pairs(pairs: list[tuple[str, Any]]) -> GoObject:
    return GoObject(tuple((_fix_string(k), v) for k, v in pairs))


def _walk_strings(value: Any) -> Any:
    if isinstance(value, str):
        return _fix_string(value)
    if isinstance(value, list):
        return [_walk_strings(v) for v in value]
    if isinstance(value, GoObject):
        return GoObject(tuple((k, _walk_strings(v)) for k, v in value.pairs))
    return value


def decode_tree(data: bytes) -> Any:
    """Parse *data* as Go would accept it, keeping number literals and duplicate keys.

    Returns:
        ``GoObject`` for objects, ``list``, ``str``, ``GoNumber``, ``bool`` or ``None``.

    Raises:
        GoJSONError: for syntax errors (Go's messages are approximated).
    """
    if not data.strip():
        raise GoJSONError("unexpected end of JSON input")
    text = data.decode("utf-8", errors="refpull-go-replace")
    if text.startswith("\ufeff"):
        raise GoJSONError("invalid character 'ï' looking for beginning of value")
    try:
        tree = json.loads(
            text,
            object_pairs_hook=_pairs,
            parse_int=GoNumber,
            parse_float=GoNumber,
            parse_constant=_reject_constant,
        )
        return _walk_strings(tree)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()):
            raise GoJSONError("unexpected end of JSON input") from exc
        raise GoJSONError(
            f"invalid character {text[exc.pos]!r} at offset {exc.pos}: {exc.msg}"
        ) from exc
    except RecursionError as exc:
        # Deviation: Go allows 10000 levels; Python's recursion limit stops us earlier.
        raise GoJSONError("exceeded max depth") from exc


# --------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class Field:
    """One Go struct field: JSON name, type, and whether it is tagged ``omitempty``."""

    name: str
    kind: Kind
    omitempty: bool = False


@dataclass(frozen=True)
class Kind:
    """A Go type for decoding: ``tag`` selects the rule, ``go`` is its printed name."""

    # string | bool | int | time | ptr | slice | map | emptystruct | struct | raw | bytes
    tag: str
    go: str
    elem: Kind | None = None
    fields: tuple[Field, ...] = ()
    struct_name: str = ""


class _Ctx:
    def __init__(self) -> None:
        self.saved: GoJSONError | None = None
        self.struct = ""
        self.path: list[str] = []

    def type_error(self, value: Any, kind: Kind, *, literal: bool = False) -> None:
        if self.saved is not None:
            return
        what = _kind_of(value)
        if literal and isinstance(value, GoNumber):
            what = "number " + value.text
        if self.path:
            where = f"Go struct field {self.struct}.{'.'.join(self.path)}"
        else:
            where = "Go value"
        self.saved = GoJSONError(
            f"json: cannot unmarshal {what} into {where} of type {kind.go}"
        )


def _kind_of(value: Any) -> str:
    if isinstance(value, GoObject):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number"


def fold_key(s: str) -> str | None:
    # Go's equalFoldRight: ASCII letters fold, plus KELVIN SIGN ~ k and LONG S ~ s.
    out = []
    for ch in s:
        if ch == "\u212a":
            out.append("k")
        elif ch == "\u017f":
            out.append("s")
        elif ch.isascii():
            out.append(ch.lower())
        else:
            return None
    return "".join(out)


def _find_field(fields: tuple[Field, ...], key: str) -> Field | None:
    for f in fields:
        if f.name == key:
            return f
    folded = fold_key(key)
    if folded is None:
        return None
    for f in fields:
        if f.name.lower() == folded:
            return f
    return None


def decode_value(kind: Kind, value: Any, current: Any = None) -> Any:
    """Decode a :func:`decode_tree` value into the Go type *kind*.

    Structs become ``dict`` keyed by JSON field name (absent = zero value), maps ``dict``,
    slices ``list`` (``None`` for nil), pointers ``None`` or the pointee.

    Raises:
        GoJSONError: the first type error, or a time parsing error.
    """
    ctx = _Ctx()
    ctx.struct = kind.struct_name
    try:
        result = _decode(ctx, kind, value, current)
    except RecursionError as exc:  # pragma: no cover - decode_tree refuses deeper input
        raise GoJSONError("exceeded max depth") from exc
    if ctx.saved is not None:
        raise ctx.saved
    return result


def zero_value(kind: Kind) -> Any:
    """Go's zero value of *kind* (``None`` for nil pointers, maps, slices)."""
    if kind.tag == "string":
        return ""
    if kind.tag == "bool":
        return False
    if kind.tag == "int":
        return 0
    if kind.tag == "time":
        return GoTime.zero()
    if kind.tag in ("struct", "emptystruct"):
        return {}
    return None  # ptr, slice, map, raw, emptystruct handled by callers


def _decode(ctx: _Ctx, kind: Kind, value: Any, current: Any) -> Any:
    if value is None:
        # null: reset pointers, maps, slices, raw messages' contents are "null".
        if kind.tag == "raw":
            return "null"
        if kind.tag in ("ptr", "map", "slice"):
            return None
        return current if current is not None else zero_value(kind)
    handler = _HANDLERS[kind.tag]
    return handler(ctx, kind, value, current)


def _dec_string(ctx: _Ctx, kind: Kind, value: Any, current: Any) -> Any:
    if isinstance(value, str):
        return value
    ctx.type_error(value, kind)
    return current if current is not None else ""


def _dec_bool(ctx: _Ctx, kind: Kind, value: Any, current: Any) -> Any:
    if isinstance(value, bool):
        return value
    ctx.type_error(value, kind)
    return current if current is not None else False


def _dec_int(ctx: _Ctx, kind: Kind, value: Any, current: Any) -> Any:
    if isinstance(value, GoNumber):
        try:
            n = int(value.text, 10)
        except ValueError:
            n = None
        if n is not None and -(2**63) <= n < 2**63:
            return n
        ctx.type_error(value, kind, literal=True)
    else:
        ctx.type_error(value, kind)
    return current if current is not None else 0


def _dec_time(ctx: _Ctx, kind: Kind, value: Any, current: Any) -> Any:
    if not isinstance(value, str):
        raw = value.text if isinstance(value, GoNumber) else _kind_of(value)
        raise GoJSONError(f"parsing time {raw!r} as {json.dumps(LAYOUT)}: cannot parse")
    try:
        return parse_time(value)
    except GoTimeError as exc:
        raise GoJSONError(str(exc)) from exc


def _dec_ptr(ctx: _Ctx, kind: Kind, value: Any, current: Any) -> Any:
    assert kind.elem is not None
    return _decode(ctx, kind.elem, value, current)


def _dec_slice(ctx: _Ctx, kind: Kind, value: Any, current: Any) -> Any:
    assert kind.elem is not None
    if not isinstance(value, list):
        ctx.type_error(value, kind)
        return current
    old = current or []
    # Go reuses the elements of the existing slice when decoding into it again.
    return [
        _decode(ctx, kind.elem, v, old[i] if i < len(old) else None)
        for i, v in enumerate(value)
    ]


def _dec_map(ctx: _Ctx, kind: Kind, value: Any, current: Any) -> Any:
    assert kind.elem is not None
    if not isinstance(value, GoObject):
        ctx.type_error(value, kind)
        return current
    out = dict(current) if current is not None else {}
    for key, item in value.pairs:
        out[key] = _decode(ctx, kind.elem, item, None)
    return out


def _dec_emptystruct(ctx: _Ctx, kind: Kind, value: Any, current: Any) -> Any:
    if not isinstance(value, GoObject):
        ctx.type_error(value, kind)
    return {}


def _dec_bytes(ctx: _Ctx, kind: Kind, value: Any, current: Any) -> Any:
    # []byte is base64 (StdEncoding) in Go JSON.
    if not isinstance(value, str):
        ctx.type_error(value, kind)
        return current
    try:
        return base64.b64decode(
            value.replace("\r", "").replace("\n", ""), validate=True
        )
    except (binascii.Error, ValueError) as exc:
        raise GoJSONError("illegal base64 data") from exc


def _dec_raw(ctx: _Ctx, kind: Kind, value: Any, current: Any) -> Any:
    # json.RawMessage keeps the literal; only its emptiness matters to callers.
    return "<raw>"


def _dec_struct(ctx: _Ctx, kind: Kind, value: Any, current: Any) -> Any:
    if not isinstance(value, GoObject):
        ctx.type_error(value, kind)
        return current if current is not None else {}
    out: dict[str, Any] = dict(current) if current is not None else {}
    saved_struct = ctx.struct
    for key, item in value.pairs:
        field = _find_field(kind.fields, key)
        if field is None:
            continue  # unknown keys are dropped
        ctx.path.append(field.name)
        ctx.struct = kind.struct_name
        out[field.name] = _decode(ctx, field.kind, item, out.get(field.name))
        ctx.path.pop()
        ctx.struct = saved_struct
    return out


_HANDLERS: Final[dict[str, Callable[[_Ctx, Kind, Any, Any], Any]]] = {
    "string": _dec_string,
    "bool": _dec_bool,
    "int": _dec_int,
    "time": _dec_time,
    "ptr": _dec_ptr,
    "slice": _dec_slice,
    "map": _dec_map,
    "emptystruct": _dec_emptystruct,
    "struct": _dec_struct,
    "raw": _dec_raw,
    "bytes": _dec_bytes,
}
