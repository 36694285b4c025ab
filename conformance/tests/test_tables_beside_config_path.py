"""Rendering ``config_path`` beside the deprecated tables, and reading a CRI refusal (CFG-006)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from cri_conformance.targets.base import HostSettings, RegistrySetup
from cri_conformance.targets.containerd import plugin_failure
from cri_conformance.targets.containerd_config import GENERATIONS, render

BOTH = RegistrySetup(
    mirrors={"r.test": ["https://m.test"]},
    configs={"m.test": HostSettings(insecure_skip_verify=True)},
    hosts_toml={"r.test": 'server = "https://m.test"\n'},
    tables_beside_config_path=True,
)


@pytest.mark.parametrize(
    ("generation", "table"),
    [
        ("1.7", ("plugins", "io.containerd.grpc.v1.cri", "registry")),
        ("2.3", ("plugins", "io.containerd.cri.v1.images", "registry")),
    ],
)
def test_both_styles_are_rendered_whatever_the_style(
    tmp_path: Path, generation: str, table: tuple[str, ...]
) -> None:
    rendered = render(tmp_path, BOTH, GENERATIONS[generation], style="hosts")
    registry = tomllib.loads(rendered.config)
    for key in table:
        registry = registry[key]
    assert registry["config_path"] == str(tmp_path / "certs.d")
    assert registry["mirrors"] == {"r.test": {"endpoint": ["https://m.test"]}}
    assert registry["configs"] == {"m.test": {"tls": {"insecure_skip_verify": True}}}
    assert rendered.hosts == {"r.test": 'server = "https://m.test"\n'}
    assert rendered.unsupported == {}
    assert rendered.style == "tables+config_path"


def test_the_seed_gets_the_config_path_key_it_does_not_know(tmp_path: Path) -> None:
    rendered = render(tmp_path, BOTH, GENERATIONS["seed"])
    registry = tomllib.loads(rendered.config)["plugins"]["cri"]["registry"]
    assert registry["config_path"] == str(tmp_path / "certs.d")
    assert registry["mirrors"] == {"r.test": {"endpoint": ["https://m.test"]}}
    assert rendered.style == "tables+config_path"


def test_merging_keeps_tables_beside_config_path() -> None:
    assert RegistrySetup().merged(BOTH).tables_beside_config_path
    assert BOTH.merged(RegistrySetup()).tables_beside_config_path


_V16 = (
    'time="t" level=warning msg="failed to load plugin io.containerd.snapshotter.v1.'
    'devmapper" error="devmapper not configured"\n'
    'time="t" level=warning msg="failed to load plugin io.containerd.grpc.v1.cri" '
    'error="invalid plugin config: `mirrors` cannot be set when `config_path` is '
    'provided"\n'
)
_V2 = (
    'time="t" level=warning msg="failed to load plugin" error="invalid cri image '
    'config: \\"x\\"" id=io.containerd.cri.v1.images type=io.containerd.cri.v1\n'
    'time="t" level=warning msg="failed to load plugin" error="unable to load CRI '
    'image service plugin dependency" id=io.containerd.grpc.v1.cri type=io.containerd.grpc.v1\n'
)


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        (
            _V16,
            "plugin io.containerd.grpc.v1.cri failed to load: invalid plugin config: "
            "`mirrors` cannot be set when `config_path` is provided",
        ),
        (
            _V2,
            'plugin io.containerd.cri.v1.images failed to load: invalid cri image config: "x"',
        ),
        (_V16.splitlines()[0], None),
        ('time="t" level=info msg="loading plugin io.containerd.grpc.v1.cri"', None),
    ],
)
def test_the_first_cri_plugin_failure_is_read_from_the_log(
    log: str, expected: str | None
) -> None:
    assert plugin_failure(log) == expected
