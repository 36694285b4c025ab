"""Target plumbing: the rendered containerd config, the config hook, setup merging."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from cri_conformance.targets.base import (
    AuthSpec,
    HostSettings,
    RegistrySetup,
    TargetEnvironment,
)
from cri_conformance.targets.containerd import render_config
from cri_conformance.targets.factory import run_config_hook

SETUP = RegistrySetup(
    mirrors={"docker.io": ["https://mirror.test"], "*": ["http://127.0.0.1:5000"]},
    configs={
        "mirror.test": HostSettings(
            ca_file="/ca.pem", auth=AuthSpec(username="u", password='p"w')
        )
    },
    max_concurrent_downloads=5,
    headers={"X-A": ["1", "2"]},
)


@pytest.mark.parametrize(
    ("version", "table"),
    [
        pytest.param(2, ("plugins", "io.containerd.grpc.v1.cri"), id="v2"),
        pytest.param(1, ("plugins", "cri"), id="v1"),
    ],
)
def test_rendered_config_holds_the_setup_under_the_versions_table(
    tmp_path: Path, version: int, table: tuple[str, str]
) -> None:
    doc = tomllib.loads(render_config(tmp_path, SETUP, version=version))
    assert doc["version"] == version
    assert doc["root"] == str(tmp_path / "root")
    cri = doc[table[0]][table[1]]
    registry = cri["registry"]
    assert registry["mirrors"]["*"]["endpoint"] == ["http://127.0.0.1:5000"]
    assert registry["configs"]["mirror.test"]["auth"]["password"] == 'p"w'
    assert registry["configs"]["mirror.test"]["tls"]["ca_file"] == "/ca.pem"
    assert registry["headers"] == {"X-A": ["1", "2"]}
    assert cri["max_concurrent_downloads"] == 5
    # The seed compiles in only overlayfs; 1.6 uses native (no mounts needed).
    assert cri["containerd"]["snapshotter"] == (
        "overlayfs" if version == 1 else "native"
    )


def test_conflicting_setups_do_not_merge() -> None:
    other = RegistrySetup(mirrors={"docker.io": ["https://elsewhere.test"]})
    with pytest.raises(ValueError, match=r"docker\.io"):
        SETUP.merged(other)


def test_config_hook_gets_the_config_proxy_and_ca(tmp_path: Path) -> None:
    out = tmp_path / "seen"
    script = (
        "import os, pathlib;"
        f"pathlib.Path({str(out)!r}).write_text('\\n'.join(["
        "os.environ['CRI_CONFORMANCE_CONFIG'], os.environ['CRI_CONFORMANCE_PROXY'],"
        "os.environ['CRI_CONFORMANCE_CA_FILE']]))"
    )
    command = f"{sys.executable} -c {script!r}"
    env = TargetEnvironment(http_proxy="http://127.0.0.1:9", ca_bundle="/ca.pem")
    run_config_hook(command, tmp_path, SETUP, env)
    config, proxy, ca = out.read_text().splitlines()
    assert tomllib.loads(Path(config).read_text())["version"] == 2
    assert (proxy, ca) == ("http://127.0.0.1:9", "/ca.pem")


def test_failing_config_hook_is_an_error_with_its_output(tmp_path: Path) -> None:
    command = f"{sys.executable} -c \"import sys; sys.exit('hook says no')\""
    with pytest.raises(RuntimeError, match="hook says no"):
        run_config_hook(command, tmp_path, SETUP, TargetEnvironment())
