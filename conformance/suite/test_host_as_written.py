"""An endpoint's host is used as written: port and case kept (HOST-001, XPORT-001).

Go keeps a URL's host verbatim: an endpoint written with https's default port
(``mirror-a.test:443``, the default endpoint of an image named with it) is asked for as
``Host: mirror-a.test:443``, and only the exact name ``localhost`` skips the proxy, so
``LOCALHOST:5000`` goes through it. A client that normalizes the host (drops the
default port, lowercases the name) sends another Host header, or dials directly.
"""

from __future__ import annotations

import contextlib

import pytest

from cri_conformance.scenario import Case
from cri_conformance.targets.base import Capability, TargetError

HOST = "mirror-a.test"


@pytest.mark.behavior("HOST-001")
def test_an_explicit_default_port_stays_in_the_host_header(case: Case) -> None:
    """Every request of a pull of ``mirror-a.test:443/<repo>:1`` says
    ``Host: mirror-a.test:443``."""
    image = case.image()
    case.push(image, "1", host=HOST)
    assert case.pull(f"{HOST}:443/{case.repo}:1") == image.config_digest
    # The journal's host is the tunnel's; the header is what the runtime wrote.
    seen = sorted(
        {
            value
            for ex in case.exchanges(host=HOST)
            for name, value in ex.headers
            if name.lower() == "host"
        }
    )
    assert seen == [f"{HOST}:443"], case.journal_text()


@pytest.mark.behavior("XPORT-001")
def test_upper_case_localhost_goes_through_the_proxy(case: Case) -> None:
    """``LOCALHOST:5000`` is not the exact ``localhost``: it is asked for through the
    proxy (a CONNECT to it), never dialled directly. The proxy serves no such name,
    so the pull fails; the CONNECT is what counts."""
    case.require(Capability.PROXY_ENVIRONMENT)
    with contextlib.suppress(TargetError):
        case.pull(f"LOCALHOST:5000/{case.repo}:1")
    connects = [
        ex.host.lower() for ex in case.world.journal.exchanges if ex.method == "CONNECT"
    ]
    assert connects, case.journal_text()
    assert set(connects) == {"localhost:5000"}, case.journal_text()
