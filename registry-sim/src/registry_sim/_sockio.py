"""Socket reading and body writing for ``server.py``: buffering and transport faults.

:class:`LineReader` reads request heads and bodies with its own buffer (so a CONNECT
tunnel can check that nothing is left over before switching to TLS).
:class:`BodyWriter` writes a response body while playing a :class:`Delivery`:
throttling (drip), a single pause (stall) and a cut point (truncate or reset).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
import threading
import time
from collections.abc import Iterable
from typing import BinaryIO

from registry_sim._http1 import MAX_LINE, MessageError, parse_chunk_size
from registry_sim.wire import Delivery

__all__ = ["BodyWriter", "LineReader", "abort", "wait_unsent"]

_RECV_SIZE = 256 * 1024
# Large reads on TLS: each SSL_write of up to 16 KiB records costs the same syscall
# overhead as a small one, so bigger buffers mean fewer Python-level iterations.
_FILE_BLOCK = 1024 * 1024
_SIOCOUTQ = 0x5411  # Linux: bytes not yet acknowledged by the peer (TIOCOUTQ)


class LineReader:
    """A small receive buffer over a (possibly TLS) socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()
        #: when set (``time.monotonic()``), reads past it raise TimeoutError: a
        #: request head that trickles in line by line cannot outlive it.
        self.deadline: float | None = None

    def buffered(self) -> int:
        """Bytes received but not consumed yet."""
        return len(self._buf)

    def wait_for_data(self) -> bool:
        """Block (socket timeout) until something is buffered; False at end of stream."""
        return bool(self._buf) or self._fill()

    def _fill(self) -> bool:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("request head not received in time")
            idle = self.sock.gettimeout()
            self.sock.settimeout(left if idle is None else min(idle, left))
            try:
                data = self.sock.recv(_RECV_SIZE)
            finally:
                self.sock.settimeout(idle)
        else:
            data = self.sock.recv(_RECV_SIZE)
        if not data:
            return False
        self._buf += data
        return True

    def readline(self) -> bytes:
        """Returns one line with its LF, or ``b""`` at a clean end of stream.

        Raises:
            MessageError: a line longer than the limit, or EOF inside a line.
        """
        start = 0
        while True:
            idx = self._buf.find(b"\n", start)
            if idx >= 0:
                line = bytes(self._buf[: idx + 1])
                del self._buf[: idx + 1]
                return line
            if len(self._buf) > MAX_LINE:
                raise MessageError("line too long", 431)
            start = len(self._buf)
            if not self._fill():
                if self._buf:
                    raise MessageError("connection closed inside a line")
                return b""

    def read_exact(self, count: int) -> bytes:
        """Returns exactly ``count`` bytes.

        Raises:
            MessageError: the peer closed the stream first.
        """
        if len(self._buf) >= count:
            data = bytes(self._buf[:count])
            del self._buf[:count]
            return data
        out = bytearray(count)
        view = memoryview(out)
        have = len(self._buf)
        view[:have] = self._buf
        self._buf.clear()
        while have < count:
            got = self.sock.recv_into(view[have:], min(count - have, 4 * _RECV_SIZE))
            if not got:
                raise MessageError(f"body ended after {have} of {count} bytes")
            have += got
        return bytes(out)

    def read_chunked(self, limit: int) -> bytes:
        """Reads a chunked body (RFC 9112 7.1) and its trailer section.

        Raises:
            MessageError: malformed framing or a body over ``limit`` bytes.
        """
        parts: list[bytes] = []
        total = 0
        while True:
            size = parse_chunk_size(self.readline())
            if size == 0:
                break
            total += size
            if total > limit:
                raise MessageError("chunked body too large", 413)
            parts.append(self.read_exact(size))
            if self.readline() not in (b"\r\n", b"\n"):
                raise MessageError("chunk data not followed by CRLF")
        # Trailer fields are read and dropped; the empty line ends the message.
        while self.readline() not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(parts)


def wait_unsent(sock: socket.socket, timeout: float) -> None:
    """Waits until the kernel has no unacknowledged bytes for ``sock`` (or timeout).

    An abortive close discards unsent data, so a "reset after N bytes" fault must
    let those N bytes reach the peer first.
    """
    deadline = time.monotonic() + timeout
    buf = bytearray(4)
    while time.monotonic() < deadline:
        try:
            fcntl.ioctl(sock.fileno(), _SIOCOUTQ, buf)
        except OSError:
            return
        if struct.unpack("i", bytes(buf))[0] == 0:
            return
        time.sleep(0.002)


def abort(sock: socket.socket) -> None:
    """Closes ``sock`` with a TCP RST (SO_LINGER on, timeout 0)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # socket.socket.close skips an SSLSocket's close_notify: the peer sees only RST.
    socket.socket.close(sock)


class BodyWriter:
    """Writes body bytes, honouring drip, stall and a cut point.

    ``cut`` is where the body stops (the announced length or the fault's
    truncate/reset offset, whichever is smaller); ``sent`` counts body bytes written.
    """

    def __init__(
        self,
        sock: socket.socket,
        delivery: Delivery,
        *,
        cut: int | None,
        stop: threading.Event,
        zero_copy: bool,
    ) -> None:
        self.sock = sock
        self.delivery = delivery
        self.cut = cut
        self.sent = 0
        self._stop = stop
        self._zero_copy = zero_copy
        self._stalled = delivery.stall_after is None or delivery.stall_s <= 0

    @property
    def done(self) -> bool:
        """Whether the cut point was reached."""
        return self.cut is not None and self.sent >= self.cut

    def _room(self, want: int) -> int:
        """How many of ``want`` bytes may go out before the next event."""
        if self.cut is not None:
            want = min(want, self.cut - self.sent)
        if not self._stalled and self.delivery.stall_after is not None:
            want = min(want, max(self.delivery.stall_after - self.sent, 0))
        return want

    def _after_write(self) -> None:
        after = self.delivery.stall_after
        if not self._stalled and after is not None and self.sent >= after:
            self._stalled = True
            self._stop.wait(self.delivery.stall_s)

    def _send(self, data: memoryview) -> None:
        rate = self.delivery.drip_bytes_per_s
        if not rate:
            self.sock.sendall(data)
            self.sent += len(data)
            return
        # Drip: slices of ~1/20 s each, paced against a monotonic clock.
        step = max(1, rate // 20)
        for start in range(0, len(data), step):
            if self._stop.is_set():
                raise ConnectionAbortedError("server closing")
            piece = data[start : start + step]
            began = time.monotonic()
            self.sock.sendall(piece)
            self.sent += len(piece)
            self._stop.wait(max(0.0, len(piece) / rate - (time.monotonic() - began)))

    def write(self, data: bytes | memoryview) -> None:
        """Writes as much of ``data`` as the cut point allows."""
        view = memoryview(data)
        while view and not self.done:
            room = self._room(len(view))
            if room <= 0:
                self._after_write()
                continue
            self._send(view[:room])
            view = view[room:]
            self._after_write()

    def write_iter(self, chunks: Iterable[bytes]) -> None:
        """Writes every chunk of an iterable body, stopping at the cut point."""
        for chunk in chunks:
            if self.done:
                return
            self.write(chunk)

    def _sendfile(self, fileobj: BinaryIO, offset: int, count: int) -> int:
        # A blocking socket lets one sendfile(2) call move the whole region; with a
        # timeout, Python polls before every send-buffer-sized piece. close() still
        # interrupts it: shutdown() wakes a blocked sender with EPIPE.
        timeout = self.sock.gettimeout()
        self.sock.settimeout(None)
        try:
            sent = os.sendfile(self.sock.fileno(), fileobj.fileno(), offset, count)
        finally:
            self.sock.settimeout(timeout)
        if sent == 0:
            raise ConnectionAbortedError("sendfile wrote nothing (file shorter?)")
        return sent

    def write_file(self, fileobj: BinaryIO, offset: int, count: int) -> None:
        """Writes ``count`` bytes of ``fileobj`` from ``offset``.

        Plain TCP without drip uses ``sendfile`` (zero-copy); TLS and dripping read
        large blocks instead.
        """
        end = offset + count
        pos = offset
        while pos < end and not self.done:
            room = self._room(end - pos)
            if room <= 0:
                self._after_write()
                continue
            if self._zero_copy and not self.delivery.drip_bytes_per_s:
                sent = self._sendfile(fileobj, pos, room)
                self.sent += sent
                pos += sent
            else:
                block = os.pread(fileobj.fileno(), min(room, _FILE_BLOCK), pos)
                if not block:
                    return  # the file is shorter than the region: stop early
                self._send(memoryview(block))
                pos += len(block)
            self._after_write()
