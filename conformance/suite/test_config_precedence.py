"""``registry.config_path`` set beside the deprecated registry tables (CFG-006, CFG-007).

What each containerd does with a config that has both, read from its source and
measured on the binaries:

* 1.6.20 and 1.7.34: ``mirrors`` or any ``configs."<host>".tls`` next to
  ``config_path`` fail the CRI plugin's config check (1.7.34
  ``pkg/cri/config/config.go`` ``ValidatePluginConfig``: "`mirrors` cannot be set
  when `config_path` is provided", the same for ``configs.tls``). containerd keeps
  running; its CRI service is never registered.
* 2.0.11 and 2.3.4: ``mirrors`` fail the images plugin's check (``internal/cri/config``
  ``ValidateImageConfig``), and every CRI plugin depending on it fails with it. Their
  ``configs`` have no ``tls`` key (CFG-007): it is ignored with a warning, the plugin
  starts and hosts come from the hosts.toml files alone.
* The seed has no ``config_path``: the key is ignored (its TOML decoding skips unknown
  keys), the CRI plugin starts and its ``mirrors`` table applies (measured on the seed
  build; cri@ab6701bd ``pkg/config/config.go`` ``Registry`` has no such field).

Neither style is ever preferred silently: a refused configuration is a runtime that
does not serve CRI (``TargetRefused``), which is what the cases assert; the runtime's
own reason is evidence, never asserted (STYLE 13).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from cri_conformance.scenario import CONTAINERD_LINE, Case, case_repo
from cri_conformance.targets.base import (
    HostSettings,
    RegistrySetup,
    Target,
    TargetRefused,
)
from cri_conformance.targets.containerd_config import UnsupportedSetup
from cri_conformance.world import World

#: Named only in the configuration: its hosts.toml sends every request to the mirror.
_REGISTRY = "precedence.test"
_MIRROR = "mirror-a.test"
#: The mirror the deprecated ``mirrors`` table names for the registry.
_TABLE_MIRROR = "mirror-b.test"
#: The first profile whose ``configs`` have no ``tls`` key (CFG-007).
_TLS_DROPPED = "containerd-2.0"


@pytest.fixture
def base_setup() -> RegistrySetup:
    # The world's own registry tables would be set beside config_path as well.
    return RegistrySetup()


def _both(
    *,
    mirrors: Mapping[str, Sequence[str]] | None = None,
    configs: Mapping[str, HostSettings] | None = None,
) -> RegistrySetup:
    """*mirrors* and *configs* as tables, beside a hosts.toml for the registry."""
    return RegistrySetup(
        mirrors=mirrors or {},
        configs=configs or {},
        hosts_toml={_REGISTRY: f'server = "https://{_MIRROR}"\n'},
        tables_beside_config_path=True,
    )


def _missing_ca(directory: Path) -> RegistrySetup:
    """A ``configs.tls`` for the mirror whose CA file does not exist."""
    settings = HostSettings(ca_file=str(directory / "missing-ca.pem"))
    return _both(configs={_MIRROR: settings})


def _tls_read(profile: str) -> bool:
    return CONTAINERD_LINE.index(profile) < CONTAINERD_LINE.index(_TLS_DROPPED)


def _start(
    start_configured: Callable[[RegistrySetup], Target], setup: RegistrySetup
) -> Target:
    # A refusal where the runtime should serve is a CRASH verdict (TargetRefused),
    # not an ERROR of a fixture.
    try:
        return start_configured(setup)
    except UnsupportedSetup as exc:
        pytest.skip(f"unsupported: {exc}")


def _containerd(profile: str) -> None:
    if profile not in CONTAINERD_LINE:
        pytest.skip(f"not applicable: {profile} has no containerd registry tables")


def _not_the_seed(profile: str) -> None:
    if profile == "seed":
        pytest.skip("not applicable: the seed has no config_path; its tls tables apply")


@pytest.fixture
def hosts_asked(
    start_configured: Callable[[RegistrySetup], Target],
    world: World,
    profile: str,
    request: pytest.FixtureRequest,
) -> Callable[[RegistrySetup, str], list[str]]:
    """Start a target with a setup; pull the registry's image, stored on one host only.

    Returns the hosts the pull asked, sorted.
    """

    def pull(setup: RegistrySetup, on: str) -> list[str]:
        target = _start(start_configured, setup)
        world.reset()
        nonce = secrets.token_hex(4)
        repo = case_repo(request.node.nodeid, nonce)
        case = Case(world=world, target=target, profile=profile, repo=repo, nonce=nonce)
        try:
            image = case.image()
            case.push(image, "1", host=on)
            assert case.pull(case.ref("1", host=_REGISTRY)) == image.config_digest
            return sorted({ex.host for ex in case.exchanges()})
        finally:
            case.cleanup()

    return pull


@pytest.mark.behavior("CFG-006")
def test_mirrors_beside_config_path_keep_cri_from_starting(
    start_configured: Callable[[RegistrySetup], Target], profile: str
) -> None:
    _containerd(profile)
    if profile == "seed":
        pytest.skip("not applicable: the seed has no config_path (its own case)")
    setup = _both(mirrors={_REGISTRY: [f"https://{_TABLE_MIRROR}"]})
    with pytest.raises(TargetRefused):
        _start(start_configured, setup)


@pytest.mark.behavior("CFG-006", "CFG-004")
def test_the_seed_ignores_config_path_beside_its_mirrors(
    hosts_asked: Callable[[RegistrySetup, str], list[str]], profile: str
) -> None:
    """The seed starts; its mirror table applies, the hosts.toml is never read."""
    _containerd(profile)
    if profile != "seed":
        pytest.skip(f"not applicable: {profile} reads config_path")
    setup = _both(mirrors={_REGISTRY: [f"https://{_TABLE_MIRROR}"]})
    assert hosts_asked(setup, _TABLE_MIRROR) == [_TABLE_MIRROR]


@pytest.mark.behavior("CFG-006")
def test_configs_tls_beside_config_path_keeps_cri_from_starting_in_1x(
    start_configured: Callable[[RegistrySetup], Target],
    profile: str,
    tmp_path: Path,
) -> None:
    _containerd(profile)
    _not_the_seed(profile)
    if not _tls_read(profile):
        pytest.skip(f"not applicable: {profile} has no configs.tls key (CFG-007)")
    with pytest.raises(TargetRefused):
        _start(start_configured, _missing_ca(tmp_path))


@pytest.mark.behavior("CFG-006", "CFG-007")
def test_configs_tls_beside_config_path_is_ignored_in_2x(
    hosts_asked: Callable[[RegistrySetup, str], list[str]],
    profile: str,
    tmp_path: Path,
) -> None:
    """2.x starts, its tls table unread: the hosts.toml server is the one endpoint."""
    _containerd(profile)
    _not_the_seed(profile)
    if _tls_read(profile):
        pytest.skip(f"not applicable: {profile} reads configs.tls (refused here)")
    # A missing CA file, were it read, fails every request to the mirror (TLS-003).
    assert hosts_asked(_missing_ca(tmp_path), _MIRROR) == [_MIRROR]
