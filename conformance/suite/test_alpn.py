"""What the TLS handshake offers: HTTP/1.1 only, never h2 (XPORT-003).

``h2.test`` is mirrored to ``world.h2``, an https registry with a certificate from the
run's CA that offers ``h2`` first in ALPN (``World.setup``). The simulator speaks
HTTP/1.1 only, and its journal records the protocol each connection negotiated. A
runtime whose transport offers ``h2`` (Go's ``http.Transport`` with
``ForceAttemptHTTP2``, httpx with ``http2=True``) would negotiate it here.
"""

from __future__ import annotations

import pytest

from cri_conformance.scenario import Case


@pytest.mark.behavior("XPORT-003")
def test_the_handshake_negotiates_no_h2(case: Case) -> None:
    """Pulling from a registry that prefers h2 negotiates HTTP/1.1 or no protocol."""
    sim = case.world.h2
    image = case.image()
    sim.push(image, f"{case.repo}:1")
    assert case.pull(case.ref("1", host="h2.test")) == image.config_digest
    seen = [ex for ex in sim.journal.exchanges if ex.scheme == "https"]
    assert seen, [ex.line() for ex in sim.journal.exchanges]
    # Go offers no ALPN at all unless HTTP/2 is enabled (None); httpcore and other
    # HTTP/1.1 clients offer "http/1.1". Either way, never "h2".
    assert {ex.alpn for ex in seen} <= {None, "http/1.1"}, [
        (ex.line(), ex.alpn) for ex in seen
    ]
