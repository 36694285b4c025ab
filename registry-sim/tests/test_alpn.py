"""The ALPN option: what a TLS registry offers, and what the journal says was agreed."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from registry_sim.sim import RegistrySim


@pytest.fixture(scope="module")
def h2_sim() -> Iterator[RegistrySim]:
    with RegistrySim(tls=True, alpn=("h2", "http/1.1")) as sim:
        yield sim


def _ping(sim: RegistrySim, offered: list[str] | None) -> None:
    """One HTTP/1.1 ``GET /v2/`` over TLS, offering *offered* in ALPN (None: no ALPN)."""
    assert sim.ca is not None
    context = sim.ca.client_context()
    if offered is not None:
        context.set_alpn_protocols(offered)
    host, port = sim.host_port.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port))) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while tls.recv(4096):
            pass


@pytest.mark.parametrize(
    ("offered", "agreed"),
    [
        pytest.param(["http/1.1", "h2"], "h2", id="server-prefers-h2"),
        pytest.param(["http/1.1"], "http/1.1", id="http1-only"),
        pytest.param(None, None, id="no-alpn"),
    ],
)
def test_the_journal_records_the_negotiated_protocol(
    h2_sim: RegistrySim, offered: list[str] | None, agreed: str | None
) -> None:
    h2_sim.reset()
    _ping(h2_sim, offered)
    [exchange] = h2_sim.journal.exchanges
    assert exchange.scheme == "https"
    assert exchange.alpn == agreed


def test_without_the_option_nothing_is_negotiated() -> None:
    with RegistrySim(tls=True) as sim:
        _ping(sim, ["h2", "http/1.1"])
        [exchange] = sim.journal.exchanges
    assert exchange.alpn is None
