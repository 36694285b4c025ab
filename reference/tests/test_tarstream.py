"""TarStream parses like tarfile's stream mode ``r|`` (the layer reader of PULL-005).

Each archive is listed through ``tarfile.open(mode="r|")`` and through
``TarFile(fileobj=TarStream(...))``; members, contents and errors must be identical.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refpull.unpack._tarstream import TarStream


def _archive(fmt: int, files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _listing(tar: tarfile.TarFile) -> list[tuple[str, str, int, bytes]]:
    out = []
    for member in tar:
        src = tar.extractfile(member)
        data = src.read() if src is not None else b""
        out.append((member.name, member.type.decode(), member.size, data))
    return out


def _via_stdlib(blob: bytes) -> object:
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r|") as tar:
            return _listing(tar)
    except tarfile.TarError as exc:
        return type(exc).__name__, str(exc)


def _via_tarstream(blob: bytes, chunk: int) -> object:
    try:
        source = TarStream(io.BytesIO(blob), chunk=chunk)
        with tarfile.TarFile(fileobj=source, mode="r") as tar:
            return _listing(tar)
    except tarfile.TarError as exc:
        return type(exc).__name__, str(exc)


_BIG = os.urandom(3 * 512 + 17)
_LONG = "d/" + "x" * 150 + "/file"
_CASES = [
    pytest.param(_archive(tarfile.PAX_FORMAT, {"a": b"1", "b": _BIG}), id="pax"),
    pytest.param(_archive(tarfile.GNU_FORMAT, {_LONG: b"long"}), id="gnu-longname"),
    pytest.param(_archive(tarfile.PAX_FORMAT, {_LONG: _BIG}), id="pax-longname"),
    pytest.param(_archive(tarfile.USTAR_FORMAT, {"e": b""}), id="empty-file"),
    pytest.param(b"", id="empty-stream"),
    pytest.param(b"not a tar at all" * 40, id="garbage"),
    pytest.param(_archive(tarfile.PAX_FORMAT, {"b": _BIG})[:1000], id="cut-in-data"),
    pytest.param(_archive(tarfile.PAX_FORMAT, {"a": b"1"})[:700], id="cut-header"),
    pytest.param(bytes(10240), id="only-zero-blocks"),
]


@pytest.mark.behavior("PULL-005")
@pytest.mark.parametrize("blob", _CASES)
@pytest.mark.parametrize("chunk", [1, 700, 1 << 20], ids=lambda c: f"chunk-{c}")
def test_tarstream_lists_like_stream_mode(blob: bytes, chunk: int) -> None:
    assert _via_tarstream(blob, chunk) == _via_stdlib(blob)


@pytest.mark.behavior("PULL-005")
@given(
    files=st.dictionaries(
        st.text("abc/", min_size=1, max_size=8).filter(
            lambda n: not n.startswith("/") and "//" not in n and not n.endswith("/")
        ),
        st.binary(max_size=2000),
        max_size=5,
    ),
    cut=st.integers(0, 3000),
    chunk=st.sampled_from([3, 512, 4096]),
)
def test_tarstream_matches_stream_mode_on_cut_archives(
    files: dict[str, bytes], cut: int, chunk: int
) -> None:
    blob = _archive(tarfile.PAX_FORMAT, files)
    blob = blob[: len(blob) - cut] if cut < len(blob) else blob
    assert _via_tarstream(blob, chunk) == _via_stdlib(blob)


def test_seeking_backwards_is_refused_like_stream_mode() -> None:
    stream = TarStream(io.BytesIO(b"x" * 100), chunk=16)
    assert stream.read(40) == b"x" * 40
    assert stream.seek(90) == 90
    with pytest.raises(tarfile.StreamError, match="seeking backwards is not allowed"):
        stream.seek(10)
    assert stream.seek(500) == 100  # past the end: stops at the end, like _Stream


def test_copy_to_writes_exactly_the_member_bytes(tmp_path: Path) -> None:
    data = os.urandom(5000)
    stream = TarStream(io.BytesIO(b"head" + data + b"tail"), chunk=1000)
    assert stream.read(4) == b"head"
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        assert stream.copy_to(fd, len(data)) == len(data)
    finally:
        os.close(fd)
    assert (tmp_path / "out").read_bytes() == data
    assert stream.read(10) == b"tail"
    assert stream.tell() == 4 + len(data) + 4
