"""Fixtures of the conformance suite: one world and one target per session, a case per test.

The world (registries, proxy, CA) and the target are session-scoped because a runtime
is configured once; each test gets a fresh repository, a reset journal and its own
images (STYLE.md point 14). Cases that need registry settings the session must not
have (a ``*`` mirror reroutes every other case) use ``configured_case``: a second
target of the same kind with the session's setup plus the module's ``extra_setup``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cri_conformance.catalog import family_of
from cri_conformance.evidence import Evidence
from cri_conformance.options import SuiteOptions
from cri_conformance.scenario import Case, case_repo
from cri_conformance.targets.base import RegistrySetup, Target
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


def _make_session_kind(
    suite_options: SuiteOptions, world: World, workdir: Path, setup: RegistrySetup
) -> Target:
    """A target of the kind the session grades (``--target`` and its options)."""
    return make_target(
        suite_options.target,
        profile=suite_options.profile,
        workdir=workdir,
        setup=setup,
        environment=world.environment(),
        cri_endpoint=suite_options.cri_endpoint,
        cri_api=suite_options.cri_api,
        containerd_bin=suite_options.containerd_bin or "containerd",
        crio_bin=suite_options.crio_bin,
        cri_config_hook=suite_options.cri_config_hook,
        containerd_generation=suite_options.containerd_generation,
        registry_config_style=suite_options.registry_config_style,
    )


@pytest.fixture(scope="session")
def target(
    suite_options: SuiteOptions,
    world: World,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Target]:
    t = _make_session_kind(
        suite_options, world, tmp_path_factory.mktemp("target"), world.setup()
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
    yield from _case_on(request, world, target, profile, evidence)


# -- cases on a target with extra registry settings ----------------------------------
@pytest.fixture
def extra_setup() -> RegistrySetup:
    """The registry settings ``configured_case`` adds to the world's: none here.

    Override it in a test module or class (any scope; it may use ``world``) with the
    ``RegistrySetup`` its cases need, e.g.::

        @pytest.fixture
        def extra_setup(world: World) -> RegistrySetup:
            return RegistrySetup(mirrors={"*": ["https://mirror-a.test"]})

    and take ``configured_case`` instead of ``case``.
    """
    return RegistrySetup()


@pytest.fixture
def base_setup(world: World) -> RegistrySetup:
    """What ``extra_setup`` is added to: the session's own setup (``world.setup()``).

    Override it only where an entry of the session's setup is itself in the way
    (a case about docker.io without the session's docker.io mirror); the named
    registries stay reachable either way.
    """
    return world.setup()


class _ConfiguredTargets:
    """At most one extra target alive, of the session's kind, keyed by its setup.

    Cases of one module (or class) share one ``extra_setup``, so they run on one
    target started for the first of them; the next group with different settings
    stops it and starts its own. The session's ``target`` is never touched.
    """

    def __init__(
        self, options: SuiteOptions, world: World, factory: pytest.TempPathFactory
    ) -> None:
        self._options, self._world, self._factory = options, world, factory
        self._key = ""
        self._target: Target | None = None

    def get(self, setup: RegistrySetup) -> Target:
        if self._options.target == "cri":
            pytest.skip(
                "unsupported: a case needing extra registry settings; the suite "
                "cannot start a second, differently configured runtime behind an "
                "unmanaged --target cri endpoint"
            )
        key = repr(setup)
        if self._target is None or key != self._key:
            self.close()
            workdir = self._factory.mktemp("configured-target")
            self._target = _make_session_kind(
                self._options, self._world, workdir, setup
            )
            self._key = key
        return self._target

    def close(self) -> None:
        if self._target is not None:
            target, self._target = self._target, None
            target.close()


@pytest.fixture(scope="session")
def _configured_targets(
    suite_options: SuiteOptions,
    world: World,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[_ConfiguredTargets]:
    pool = _ConfiguredTargets(suite_options, world, tmp_path_factory)
    yield pool
    pool.close()


@pytest.fixture
def configured_target(
    _configured_targets: _ConfiguredTargets,
    base_setup: RegistrySetup,
    extra_setup: RegistrySetup,
) -> Target:
    """A target of the session's kind configured with ``world.setup().merged(extra_setup)``.

    Same kind and options as ``target`` (the reference under the session's profile, a
    managed containerd of the session's generation and config style, CRI-O, the
    reference over gRPC); started once per distinct ``extra_setup`` and stopped when
    the next group of cases needs other settings or the session ends. For an
    unmanaged ``--target cri`` endpoint the case is UNSUPPORTED (skip reason
    ``unsupported: …``): the suite cannot configure a runtime it did not start.
    A host both setups configure differently is a ``ValueError`` (``merged``);
    ``base_setup`` (the world's, by default) is what ``extra_setup`` adds to.
    """
    return _configured_targets.get(base_setup.merged(extra_setup))


@pytest.fixture
def start_configured(
    _configured_targets: _ConfiguredTargets, base_setup: RegistrySetup
) -> Callable[[RegistrySetup], Target]:
    """``configured_target`` for a setup the test passes in, started when it asks.

    For cases where starting is the behaviour (CFG-006): a runtime that refuses its
    configuration raises ``TargetRefused`` in the test itself, where
    ``configured_target`` would report an ERROR of its fixture.
    """
    return lambda setup: _configured_targets.get(base_setup.merged(setup))


@pytest.fixture
def configured_case(
    request: pytest.FixtureRequest,
    world: World,
    configured_target: Target,
    profile: str,
    evidence: Evidence,
) -> Iterator[Case]:
    """``case`` on ``configured_target``: same isolation, evidence and teardown."""
    yield from _case_on(request, world, configured_target, profile, evidence)


def _case_on(
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
