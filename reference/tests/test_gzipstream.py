"""The fast gzip reader answers exactly like gzip.GzipFile (PULL-010 decompression).

Every case is read through both readers with the same read sizes; the decompressed
bytes, or the exception type and message, must be identical.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refpull.content._gzipstream import GzipReader

_MTIME = 0


def _member(data: bytes, *, flags: int = 0, extra: bytes = b"") -> bytes:
    """A gzip member with a hand-built header (FEXTRA/FNAME/FCOMMENT/FHCRC)."""
    header = b"\x1f\x8b\x08" + bytes([flags]) + struct.pack("<I", _MTIME) + b"\x00\xff"
    if flags & 4:
        header += struct.pack("<H", len(extra)) + extra
    if flags & 8:
        header += b"name.tar\x00"
    if flags & 16:
        header += b"a comment\x00"
    if flags & 2:
        header += b"\x00\x00"
    deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflate.compress(data) + deflate.flush()
    trailer = struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return header + body + trailer


def _outcome(read: Callable[[int], bytes], size: int) -> tuple[str, bytes | str]:
    out = bytearray()
    try:
        while chunk := read(size):
            out += chunk
    except (OSError, EOFError, zlib.error) as exc:
        return type(exc).__name__, str(exc)
    return "data", bytes(out)


def _both(blob: bytes, size: int) -> tuple[object, object]:
    ours = _outcome(GzipReader(io.BytesIO(blob)).read, size)
    with gzip.GzipFile(fileobj=io.BytesIO(blob), mode="rb") as reference:
        theirs = _outcome(reference.read, size)
    return ours, theirs


_DATA = bytes(range(256)) * 300
_ONE = gzip.compress(_DATA, mtime=0)
_CASES = [
    pytest.param(_ONE, id="one-member"),
    pytest.param(gzip.compress(b"", mtime=0), id="empty-member"),
    pytest.param(_ONE + gzip.compress(b"more", mtime=0), id="two-members"),
    pytest.param(_ONE + b"\x00" * 7, id="zero-padding-after"),
    pytest.param(_ONE + b"\x00" * 3 + _ONE, id="zero-padding-between"),
    pytest.param(_ONE + b"garbage", id="trailing-garbage"),
    pytest.param(_ONE + b"\x1f", id="trailing-half-magic"),
    pytest.param(_ONE[:-3], id="truncated-trailer"),
    pytest.param(_ONE[: len(_ONE) // 2], id="truncated-body"),
    pytest.param(_ONE[:5], id="truncated-header"),
    pytest.param(_ONE[:-8] + b"\x00\x00\x00\x00" + _ONE[-4:], id="bad-crc"),
    pytest.param(_ONE[:-4] + b"\x01\x00\x00\x00", id="bad-isize"),
    pytest.param(_ONE[:2] + b"\x07" + _ONE[3:], id="unknown-method"),
    pytest.param(_ONE[:20] + b"\xff" * 40 + _ONE[60:], id="corrupt-deflate"),
    pytest.param(_member(_DATA, flags=4 | 8 | 16 | 2, extra=b"xy"), id="all-flags"),
    pytest.param(_member(b"abc", flags=8)[:14], id="name-cut-short"),
    pytest.param(gzip.compress(bytes(1 << 15)), id="zeros-32kib"),
]


@pytest.mark.behavior("PULL-010")
@pytest.mark.parametrize("blob", _CASES)
@pytest.mark.parametrize("size", [1, 512, 65536, 1 << 20], ids=lambda s: f"read-{s}")
def test_gzip_reader_matches_gzipfile(blob: bytes, size: int) -> None:
    ours, theirs = _both(blob, size)
    assert ours == theirs


@pytest.mark.behavior("PULL-010")
@given(
    members=st.lists(st.binary(max_size=3000), min_size=1, max_size=4),
    padding=st.integers(0, 4),
    cut=st.integers(0, 50),
    flip=st.integers(0, 500),
    size=st.sampled_from([7, 4096, 1 << 20]),
)
def test_gzip_reader_matches_gzipfile_on_mangled_streams(
    members: list[bytes], padding: int, cut: int, flip: int, size: int
) -> None:
    blob = bytearray(b"".join(gzip.compress(m, mtime=0) for m in members))
    blob += bytes(padding)
    if flip < len(blob):
        blob[flip] ^= 0x41
    if cut:
        del blob[-cut:]
    ours, theirs = _both(bytes(blob), size)
    assert ours == theirs


def test_highly_compressible_members_are_returned_in_bounded_pieces() -> None:
    # 16 MiB of zeros compress to ~16 KiB: one input chunk must not inflate whole.
    reader = GzipReader(io.BytesIO(gzip.compress(bytes(16 << 20))))
    sizes = [len(chunk) for chunk in iter(lambda: reader.read(1 << 18), b"")]
    assert max(sizes) <= 1 << 18
    assert sum(sizes) == 16 << 20
