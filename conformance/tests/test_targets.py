"""Target plumbing: the rendered containerd config, the config hook, setup merging."""

from __future__ import annotations

import json
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
from cri_conformance.targets.containerd import binary_generation, render_config
from cri_conformance.targets.containerd_config import (
    GENERATIONS,
    Rendered,
    UnsupportedSetup,
    detect_generation,
    render,
)
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


# -- per generation -----------------------------------------------------------------

GOLDEN = Path(__file__).parent / "golden"
#: A small setup touching every rendering path: a mirror with TLS, a credential, a
#: header, a download limit and one raw hosts.toml.
GEN_SETUP = RegistrySetup(
    mirrors={"docker.io": ["https://mirror.test"]},
    configs={
        "mirror.test": HostSettings(ca_file="/ca.pem"),
        "cfg.test": HostSettings(auth=AuthSpec(username="u", password="p")),
    },
    max_concurrent_downloads=5,
    headers={"X-A": ["1"]},
    hosts_toml={"raw.test": 'server = "https://raw.test"\n'},
)
CASES = [
    ("seed", "tables"),
    ("1.6", "tables"),
    ("1.7", "tables"),
    ("1.7", "hosts"),
    ("2.0", "hosts"),
    ("2.3", "hosts"),
    ("2.3", "tables"),
]


def _golden_text(rendered: Rendered) -> str:
    parts = [rendered.config]
    for namespace in sorted(rendered.hosts):
        parts.append(
            f"# --- certs.d/{namespace}/hosts.toml\n{rendered.hosts[namespace]}"
        )
    for host in sorted(rendered.unsupported):
        parts.append(f"# --- unsupported {host}: {rendered.unsupported[host]}\n")
    return "".join(parts)


@pytest.mark.parametrize(("name", "style"), CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_config_of_each_generation_matches_its_golden_file(
    name: str, style: str
) -> None:
    rendered = render(Path("/w"), GEN_SETUP, GENERATIONS[name], style=style)
    for text in (rendered.config, *rendered.hosts.values()):
        tomllib.loads(text)  # every file is valid TOML
    golden = GOLDEN / f"containerd-{name}-{style}.toml"
    assert _golden_text(rendered) == golden.read_text()


def test_version_3_splits_image_and_runtime_tables_and_sets_unpack_platforms() -> None:
    doc = tomllib.loads(
        render(Path("/w"), GEN_SETUP, GENERATIONS["2.3"], style="hosts").config
    )
    assert doc["version"] == 3
    images = doc["plugins"]["io.containerd.cri.v1.images"]
    runtime = doc["plugins"]["io.containerd.cri.v1.runtime"]
    assert images["snapshotter"] == "native"
    assert images["registry"]["config_path"] == "/w/certs.d"
    # 2.3 answers "no unpack platforms defined" unless the transfer service may unpack
    # into the snapshotter the CRI plugin uses.
    transfer = doc["plugins"]["io.containerd.transfer.v1.local"]
    assert transfer["unpack_config"] == [
        {"platform": "linux/amd64", "snapshotter": "native", "differ": "walking"}
    ]
    # Anything that would switch 2.3 off the transfer service stays out of the CRI table.
    assert "max_concurrent_downloads" not in images
    assert transfer["max_concurrent_downloads"] == 5
    assert set(images["registry"]) == {"config_path", "headers"}
    assert "disable_cgroup" not in runtime  # an unknown key in 2.x


def test_hosts_style_keeps_credentials_in_configs_tables_up_to_2_0() -> None:
    rendered = render(Path("/w"), GEN_SETUP, GENERATIONS["2.0"])
    doc = tomllib.loads(rendered.config)
    registry = doc["plugins"]["io.containerd.cri.v1.images"]["registry"]
    assert registry["configs"] == {
        "cfg.test": {"auth": {"username": "u", "password": "p"}}
    }
    assert "mirrors" not in registry  # an error next to config_path
    hosts = tomllib.loads(rendered.hosts["docker.io"])
    assert hosts["host"]["https://mirror.test"]["ca"] == "/ca.pem"
    assert rendered.hosts["raw.test"] == 'server = "https://raw.test"\n'
    assert rendered.unsupported == {}


def test_hosts_the_seed_cannot_configure_are_named_not_dropped() -> None:
    rendered = render(Path("/w"), GEN_SETUP, GENERATIONS["seed"])
    assert set(rendered.unsupported) == {"raw.test"}
    with pytest.raises(UnsupportedSetup, match="hosts"):
        render(Path("/w"), GEN_SETUP, GENERATIONS["seed"], style="hosts")


@pytest.mark.parametrize(
    ("output", "generation"),
    [
        ("containerd github.com/containerd/containerd 1.3.0+unknown \n", "seed"),
        (
            "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1\n",
            "1.6",
        ),
        ("containerd github.com/containerd/containerd v1.7.34 fb9028b9\n", "1.7"),
        ("containerd github.com/containerd/containerd/v2 v2.0.11 ea0b4955\n", "2.0"),
        ("containerd github.com/containerd/containerd/v2 v2.3.4 db880954\n", "2.3"),
    ],
)
def test_generation_is_read_from_containerd_version(
    output: str, generation: str
) -> None:
    warning = 'time="…" level=warning msg="This customized containerd is only for CI"\n'
    assert detect_generation(warning + output).name == generation


def test_unknown_version_output_names_the_flag_to_use() -> None:
    with pytest.raises(UnsupportedSetup, match="--containerd-generation"):
        detect_generation("containerd: command not found")


def test_binary_generation_asks_the_binary_its_version(tmp_path: Path) -> None:
    fake = tmp_path / "containerd"
    fake.write_text(
        "#!/bin/sh\necho 'containerd github.com/containerd/containerd v2.3.4 db88095'\n"
    )
    fake.chmod(0o755)
    generation = binary_generation(str(fake))
    assert (generation.name, generation.config_version) == ("2.3", 3)
    assert generation.profile == "containerd-2.3"


def test_registry_style_of_a_generation_that_cannot_read_it_is_refused() -> None:
    with pytest.raises(UnsupportedSetup, match="cannot read registry configuration"):
        render(Path("/w"), RegistrySetup(), GENERATIONS["seed"], style="hosts")


def test_config_hook_gets_hosts_files_and_the_neutral_setup(tmp_path: Path) -> None:
    out = tmp_path / "seen"
    script = (
        "import os, pathlib;"
        f"pathlib.Path({str(out)!r}).write_text('\\n'.join(["
        "os.environ['CRI_CONFORMANCE_HOSTS_DIR'], os.environ['CRI_CONFORMANCE_SETUP_JSON']]))"
    )
    setup = RegistrySetup(
        mirrors={"docker.io": ["https://mirror.test"]},
        hosts_toml={"raw.test": 'server = "https://raw.test"\n'},
    )
    run_config_hook(
        f"{sys.executable} -c {script!r}", tmp_path, setup, TargetEnvironment()
    )
    hosts_dir, setup_json = out.read_text().splitlines()
    hosts = tomllib.loads((Path(hosts_dir) / "docker.io" / "hosts.toml").read_text())
    assert list(hosts["host"]) == ["https://mirror.test"]
    assert (Path(hosts_dir) / "raw.test" / "hosts.toml").read_text() == (
        'server = "https://raw.test"\n'
    )
    neutral = json.loads(Path(setup_json).read_text())
    assert neutral["mirrors"] == {"docker.io": ["https://mirror.test"]}
    assert neutral["hosts_toml"] == {"raw.test": 'server = "https://raw.test"\n'}
