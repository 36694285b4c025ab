"""pytest fixtures for a session-wide simulator, reset for every test.

Not registered automatically; use it from a conftest or test module::

    pytest_plugins = ["registry_sim.pytest_fixtures"]

    def test_pull(registry_sim):
        registry_sim.push(image, "t/case:1")

The server (its port and CA) lives for the whole session, because a runtime is
configured once (STYLE point 14); each test gets empty storage, no faults and an
empty journal, and simulator bugs seen during the test fail it at teardown.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from registry_sim.sim import RegistrySim

__all__ = [
    "registry_sim",
    "registry_sim_session",
    "registry_sim_tls",
    "registry_sim_tls_session",
]


@pytest.fixture(scope="session")
def registry_sim_session() -> Iterator[RegistrySim]:
    """One plain-HTTP simulator on 127.0.0.1 for the whole session."""
    with RegistrySim() as sim:
        yield sim


@pytest.fixture
def registry_sim(registry_sim_session: RegistrySim) -> Iterator[RegistrySim]:
    """The session simulator, reset before the test and checked after it."""
    registry_sim_session.reset()
    yield registry_sim_session
    registry_sim_session.check()


@pytest.fixture(scope="session")
def registry_sim_tls_session() -> Iterator[RegistrySim]:
    """One HTTPS simulator (fresh CA, ``ca_path`` for clients) for the session."""
    with RegistrySim(tls=True) as sim:
        yield sim


@pytest.fixture
def registry_sim_tls(registry_sim_tls_session: RegistrySim) -> Iterator[RegistrySim]:
    """The session HTTPS simulator, reset before the test and checked after it."""
    registry_sim_tls_session.reset()
    yield registry_sim_tls_session
    registry_sim_tls_session.check()
