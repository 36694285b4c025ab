"""Fixtures of the conformance suite: one world and one target per session, a case per test.

The world (registries, proxy, CA) and the target are session-scoped because a runtime
is configured once; each test gets a fresh repository, a reset journal and its own
images (STYLE.md point 14).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from cri_conformance.evidence import Evidence
from cri_conformance.scenario import Case, case_repo
from cri_conformance.targets.base import Target
from cri_conformance.targets.factory import make_target
from cri_conformance.world import World


def _option(config: pytest.Config, name: str, default: str | None = None) -> str | None:
    try:
        value = config.getoption(name)
    except ValueError:
        return default
    return default if value is None else str(value)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Collect the differential cases only with ``--compare-with reference``."""
    if collection_path.name == "test_differential.py":
        return _option(config, "--compare-with") is None
    return None


@pytest.fixture(scope="session")
def reference_twin(
    pytestconfig: pytest.Config,
    world: World,
    profile: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Target]:
    """The reference under the target's profile, for differential comparison."""
    other = _option(pytestconfig, "--compare-with")
    if other != "reference":
        pytest.skip(f"unsupported: --compare-with {other!r} (only 'reference')")
    twin = make_target(
        "reference",
        profile=profile,
        workdir=tmp_path_factory.mktemp("twin"),
        setup=world.setup(),
        environment=world.environment(),
    )
    yield twin
    twin.close()


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("world"))
    yield w
    w.close()


@pytest.fixture(scope="session")
def target_kind(pytestconfig: pytest.Config) -> str:
    return _option(pytestconfig, "--target", "reference") or "reference"


@pytest.fixture(scope="session")
def profile(pytestconfig: pytest.Config, target_kind: str) -> str:
    default = "containerd-1.6" if target_kind == "containerd" else "seed"
    return _option(pytestconfig, "--profile", default) or default


@pytest.fixture(scope="session")
def target(
    pytestconfig: pytest.Config,
    world: World,
    target_kind: str,
    profile: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Target]:
    t = make_target(
        target_kind,
        profile=profile,
        workdir=tmp_path_factory.mktemp("target"),
        setup=world.setup(),
        environment=world.environment(),
        cri_endpoint=_option(pytestconfig, "--cri-endpoint"),
        cri_api=_option(pytestconfig, "--cri-api", "auto") or "auto",
        containerd_bin=_option(pytestconfig, "--containerd-bin", "containerd")
        or "containerd",
        cri_config_hook=_option(pytestconfig, "--cri-config-hook"),
    )
    yield t
    t.close()


@pytest.fixture
def case(
    request: pytest.FixtureRequest,
    world: World,
    target: Target,
    profile: str,
    evidence: Evidence,
) -> Iterator[Case]:
    world.reset()
    nonce = secrets.token_hex(4)
    c = Case(
        world=world,
        target=target,
        profile=profile,
        repo=case_repo(request.node.nodeid, nonce),
        nonce=nonce,
    )
    yield c
    evidence.add("CRI calls", "\n".join(c.calls) or "(none)")
    evidence.add("registry journal", c.journal_text())
    _revive(target)
    c.cleanup()
    world.check()


def _revive(target: Target) -> None:
    """Restart a managed target that died during the case (its verdict is CRASH)."""
    alive = getattr(target, "alive", None)
    restart = getattr(target, "restart", None)
    if callable(alive) and callable(restart) and not alive():
        restart()
