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

from cri_conformance.catalog import family_of
from cri_conformance.evidence import Evidence
from cri_conformance.options import SuiteOptions
from cri_conformance.scenario import Case, case_repo
from cri_conformance.targets.base import Target
from cri_conformance.targets.factory import make_target
from cri_conformance.world import World


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Collect the differential cases only with ``--compare-with reference``."""
    if collection_path.name == "test_differential.py":
        return config.getoption("compare_with") is None
    return None


@pytest.fixture(scope="session")
def reference_twin(
    suite_options: SuiteOptions,
    world: World,
    profile: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Target]:
    """The reference under the target's profile, for differential comparison."""
    other = suite_options.compare_with
    if other != "reference":
        pytest.skip(f"unsupported: --compare-with {other!r} (only 'reference')")
    if family_of(profile) != "containerd":
        pytest.skip(
            f"unsupported: the reference models the containerd family only, not "
            f"{profile} (its request shapes differ by design)"
        )
    twin = make_target(
        "reference",
        profile=profile,
        workdir=tmp_path_factory.mktemp("twin"),
        setup=world.setup(),
        environment=world.environment(),
        registry_config_style=suite_options.registry_config_style,
    )
    yield twin
    twin.close()


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("world"))
    yield w
    w.close()


@pytest.fixture(scope="session")
def profile(suite_options: SuiteOptions) -> str:
    """The behaviour profile the target is graded against (``--profile``)."""
    return suite_options.profile


@pytest.fixture(scope="session")
def target(
    suite_options: SuiteOptions,
    world: World,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Target]:
    t = make_target(
        suite_options.target,
        profile=suite_options.profile,
        workdir=tmp_path_factory.mktemp("target"),
        setup=world.setup(),
        environment=world.environment(),
        cri_endpoint=suite_options.cri_endpoint,
        cri_api=suite_options.cri_api,
        containerd_bin=suite_options.containerd_bin or "containerd",
        crio_bin=suite_options.crio_bin,
        cri_config_hook=suite_options.cri_config_hook,
        containerd_generation=suite_options.containerd_generation,
        registry_config_style=suite_options.registry_config_style,
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
