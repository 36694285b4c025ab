"""A hostile client cannot exhaust the simulator (issue 12, finding 8).

Upload bodies over 1 MiB go to an unlinked file in the server's own spool directory,
never into memory; a request head must be complete within ``head_timeout`` of its
first byte; at most ``max_connections`` connections get a thread.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator

import httpx
import pytest

from registry_sim.app import RegistryApp
from registry_sim.server import RegistryServer
from registry_sim.storage import Storage

_MIB = 1024 * 1024


@pytest.fixture
def storage() -> Iterator[Storage]:
    with Storage() as store:
        yield store


_BLOCK = os.urandom(_MIB)


def _chunked(total: int, piece: int = _MIB) -> Iterator[bytes]:
    block = _BLOCK[:piece]
    sent = 0
    while sent < total:
        yield block[: min(piece, total - sent)]
        sent += piece


def test_a_large_chunked_upload_is_spooled_to_disk_not_memory(
    storage: Storage,
) -> None:
    """64 MiB in one chunked PATCH: the server's traced peak stays under 8 MiB."""
    total = 64 * _MIB
    expected = hashlib.sha256()
    for piece in _chunked(total):
        expected.update(piece)
    with RegistryServer(RegistryApp(storage).handle) as server:
        base = server.url
        with httpx.Client(timeout=60) as client:
            start = client.post(f"{base}/v2/big/blobs/uploads/")
            assert start.status_code == 202
            location = start.headers["Location"]
            url = location if location.startswith("http") else base + location
            tracemalloc.start()
            try:
                # Generated on the fly: httpx sends it chunked, with no Content-Length.
                patched = client.patch(url, content=_chunked(total))
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert patched.status_code == 202, patched.text
            location = patched.headers["Location"]
            url = location if location.startswith("http") else base + location
            sep = "&" if "?" in url else "?"
            digest = f"sha256:{expected.hexdigest()}"
            done = client.put(f"{url}{sep}digest={digest}")
            assert done.status_code == 201, done.text
        spool = server.spool_dir()
        assert list(spool.iterdir()) == []  # nothing named, nothing left
    assert not spool.exists()  # close() removed the server's own directory
    assert storage.blob_size(digest) == total
    # The generator's blocks (1 MiB each) and the copy buffer, not the body.
    assert peak < 8 * _MIB, f"traced peak {peak / _MIB:.1f} MiB"


def test_a_request_head_trickled_line_by_line_is_cut_at_the_head_timeout(
    storage: Storage,
) -> None:
    """A header line every 0.3 s keeps no connection past head_timeout (1 s)."""
    with RegistryServer(RegistryApp(storage).handle, head_timeout=1.0) as server:
        sock = socket.create_connection((server.host, server.port))
        sock.settimeout(10)
        started = time.monotonic()
        closed_after = None
        try:
            sock.sendall(b"GET /v2/ HTTP/1.1\r\n")
            for n in range(30):
                time.sleep(0.3)
                try:
                    sock.sendall(b"X-Slow-%d: 1\r\n" % n)
                except OSError:
                    closed_after = time.monotonic() - started
                    break
                if sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                    closed_after = time.monotonic() - started
                    break
        except BlockingIOError:
            pass
        finally:
            sock.close()
    assert closed_after is not None, "the trickled head held the connection for 9 s"
    assert closed_after < 3.0


def _peek_closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _ended(server: RegistryServer) -> int:
    return server.refused_connections + server.evicted_connections


def test_idle_kept_alive_connections_make_room_for_a_new_client(
    storage: Storage,
) -> None:
    """Clients that keep connections alive (as Go's transport does) never lock out a
    new client at the cap: the longest-idle connection is ended instead."""
    with RegistryServer(RegistryApp(storage).handle, max_connections=2) as server:
        keepers = [httpx.Client(timeout=5) for _ in range(2)]
        try:
            for client in keepers:
                assert client.get(f"{server.url}/v2/").status_code == 200
            with httpx.Client(timeout=5) as newcomer:
                assert newcomer.get(f"{server.url}/v2/").status_code == 200
            assert server.evicted_connections == 1
            assert server.refused_connections == 0
        finally:
            for client in keepers:
                client.close()


def test_connections_over_the_limit_are_closed_and_get_no_thread(
    storage: Storage,
) -> None:
    """100 silent connections against max_connections=10: 10 threads, 90 closed.

    A silent connection is idle, so at the cap each newcomer ends the longest-idle
    one (evicted) or is closed itself (refused): either way 90 end, threads stay
    bounded.
    """
    with RegistryServer(RegistryApp(storage).handle, max_connections=10) as server:
        before = threading.active_count()
        idle = [
            socket.create_connection((server.host, server.port)) for _ in range(100)
        ]
        try:
            deadline = time.monotonic() + 5
            while _ended(server) < 90 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _ended(server) == 90
            time.sleep(0.2)
            assert threading.active_count() - before <= 10
            assert sum(_peek_closed(s) for s in idle) == 90
        finally:
            for sock in idle:
                sock.close()
        # Once the idle connections are gone, requests are served again.
        deadline = time.monotonic() + 5
        while True:
            try:
                answer = httpx.get(f"{server.url}/v2/", timeout=5)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert answer.status_code == 200
