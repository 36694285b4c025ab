"""hosts.toml mode (registry.config_path): directories, order, capabilities, TLS, fallback.

Expected endpoints are data (``fixtures/vectors/hosts-toml.json``), read from containerd's
``remotes/docker/config/hosts.go`` per generation; the generation switches are the
profile fields that implement HOST-012 and HOST-013.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from refpull.errors import ConfigError
from refpull.profiles import CONTAINERD_16, PROFILES, SEED, Profile
from refpull.settings.config import parse_config
from refpull.settings.explain import explain
from refpull.settings.hosts import registry_hosts
from refpull.settings.hoststoml import configure_hosts, host_directory, ssl_context_for

VECTORS = Path(__file__).parents[2] / "fixtures" / "vectors" / "hosts-toml.json"
DATA: dict[str, Any] = json.loads(VECTORS.read_text())

# A generation's switches; a profile of that generation must agree with them.
GENERATIONS = {
    "1.6": CONTAINERD_16,
    "1.7": replace(
        CONTAINERD_16,
        name="gen-1.7",
        hosts_https_first_with_fallback=True,
        hosts_toml_needs_host_table=False,
    ),
    "2.x": replace(
        CONTAINERD_16,
        name="gen-2.x",
        hosts_https_first_with_fallback=True,
        hosts_order_from_table_headers=True,
        hosts_toml_needs_host_table=False,
        configs_tls_supported=False,
    ),
}
_GEN_OF_PROFILE = {
    "containerd-1.6": "1.6",
    "containerd-1.7": "1.7",
    "containerd-2.0": "2.x",
    "containerd-2.3": "2.x",
}


def _cases() -> list[Any]:
    return [
        pytest.param(vector, gen, id=f"{vector['id']}[{gen}]")
        for vector in DATA["vectors"]
        for gen in vector["generations"]
    ]


def _write(tmp_path: Path, vector: dict[str, Any]) -> str:
    roots = [tmp_path / f"root{i}" for i in range(vector["roots"])]
    for root in roots:
        root.mkdir()
    for name, text in vector["files"].items():
        parts = name.split("/")
        base = (
            roots[int(parts[0][4:])]
            if parts[0].startswith("root") and parts[0][4:].isdigit()
            else roots[0]
        )
        rel = parts[1:] if base is not roots[0] or parts[0] == "root0" else parts
        path = base.joinpath(*rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return ":".join(str(r) for r in roots)


def _abs(tmp_path: Path, name: str) -> str:
    if not name or name.startswith("/"):
        return name
    first = name.split("/")[0]
    if first.startswith("root") and first[4:].isdigit():
        return str(tmp_path / name)
    return str(tmp_path / "root0" / name)


@pytest.mark.behavior("HOST-010")
@pytest.mark.behavior("HOST-011")
@pytest.mark.behavior("HOST-012")
@pytest.mark.behavior("HOST-013")
@pytest.mark.behavior("HOST-014")
@pytest.mark.parametrize(("vector", "gen"), _cases())
def test_hosts_toml_vectors(tmp_path: Path, vector: dict[str, Any], gen: str) -> None:
    config_path = _write(tmp_path, vector)
    plan = configure_hosts(vector["registry"], config_path, GENERATIONS[gen])
    expected_dir = vector["host_dir"]
    assert plan.host_dir == (_abs(tmp_path, expected_dir) if expected_dir else None)
    assert bool(plan.notes) == vector["decode_error"]
    got = [
        {
            "scheme": e.scheme,
            "host": e.host,
            "path": e.path,
            "capabilities": sorted(e.capabilities - {"referrers"}),
            "ca": list(e.ca_files),
            "client": [list(p) for p in e.client_pairs],
            "skip_verify": e.skip_verify,
            "headers": [list(h) for h in e.headers],
            "http_fallback": e.http_fallback,
            "key": e.key,
            "default_skip_verify": e.default_skip_verify,
        }
        for e in plan.entries
    ]
    want = [
        dict(
            e,
            ca=[_abs(tmp_path, c) for c in e["ca"]],
            client=[[_abs(tmp_path, c) for c in pair] for pair in e["client"]],
        )
        for e in vector["endpoints"]
    ]
    assert got == want


@pytest.mark.behavior("HOST-013")
@pytest.mark.parametrize("name", sorted(_GEN_OF_PROFILE))
def test_profiles_agree_with_their_generation(name: str) -> None:
    profile = PROFILES.get(name)
    if profile is None:
        pytest.skip(f"no profile {name} yet")
    gen = GENERATIONS[_GEN_OF_PROFILE[name]]
    for field in (
        "config_path_supported",
        "configs_tls_supported",
        "hosts_https_first_with_fallback",
        "hosts_order_from_table_headers",
        "hosts_toml_needs_host_table",
    ):
        assert getattr(profile, field) == getattr(gen, field), field


@pytest.mark.behavior("HOST-010")
@pytest.mark.parametrize(
    ("host", "directory"),
    [
        ("r.test:5000", "r.test_5000_"),
        ("r.test", "r.test"),
        ("[::1]:5000", "[::1]_5000_"),
    ],
)
def test_a_port_becomes_underscores_in_the_directory_name(
    host: str, directory: str
) -> None:
    assert host_directory(host) == directory


def _v2(config_path: str) -> str:
    return f'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\nconfig_path = "{config_path}"\n'


@pytest.mark.behavior("CFG-006")
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            '[plugins."io.containerd.grpc.v1.cri".registry.mirrors."r.test"]\nendpoint = ["https://m"]\n',
            "`mirrors` cannot be set when `config_path` is provided",
        ),
        (
            '[plugins."io.containerd.grpc.v1.cri".registry.configs."r.test".tls]\ninsecure_skip_verify = true\n',
            "`configs.tls` cannot be set when `config_path` is provided",
        ),
    ],
)
def test_config_path_excludes_mirrors_and_configs_tls(extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(_v2("/etc/containerd/certs.d") + extra, CONTAINERD_16)


@pytest.mark.behavior("CFG-007")
def test_configs_tls_is_ignored_where_the_runtime_has_no_such_key() -> None:
    text = (
        'version = 3\n[plugins."io.containerd.cri.v1.images".registry.configs."r.test".tls]\n'
        "insecure_skip_verify = true\n"
    )
    config = parse_config(text, GENERATIONS["2.x"])
    assert config.configs["r.test"].tls is None
    assert config.ignored == (
        'plugins."io.containerd.cri.v1.images".registry.configs."r.test".tls',
    )


@pytest.mark.behavior("CFG-004")
def test_the_seed_ignores_config_path(tmp_path: Path) -> None:
    (tmp_path / "r.test").mkdir()
    (tmp_path / "r.test" / "hosts.toml").write_text('server = "https://m.test"\n')
    config = parse_config(_v2(str(tmp_path)), SEED)
    assert config.config_path == ""
    hosts = registry_hosts("r.test", config, None, SEED)
    assert [h.host for h in hosts] == ["r.test"]
    note = explain("r.test/a:1", config, None, SEED).notes
    assert any("config_path is not read" in n for n in note)


@pytest.mark.behavior("CFG-001")
def test_version_3_reads_the_images_plugin_registry(tmp_path: Path) -> None:
    (tmp_path / "r.test").mkdir()
    (tmp_path / "r.test" / "hosts.toml").write_text(
        '[host."https://m.test"]\n  capabilities = ["pull"]\n'
    )
    text = (
        'version = 3\n[plugins."io.containerd.cri.v1.images"]\nmax_concurrent_downloads = 5\n'
        f'[plugins."io.containerd.cri.v1.images".registry]\nconfig_path = "{tmp_path}"\n'
    )
    config = parse_config(text, GENERATIONS["2.x"])
    assert config.max_concurrent_downloads == 5
    hosts = registry_hosts("r.test", config, None, GENERATIONS["2.x"])
    assert [(h.host, sorted(h.capabilities)) for h in hosts] == [
        ("m.test", ["pull"]),
        ("r.test", ["pull", "push", "resolve"]),
    ]


@pytest.mark.behavior("HOST-014")
def test_a_ca_file_without_a_certificate_fails_the_hosts(tmp_path: Path) -> None:
    (tmp_path / "r.test").mkdir()
    (tmp_path / "r.test" / "empty.pem").write_text("not a certificate\n")
    (tmp_path / "r.test" / "hosts.toml").write_text('ca = "empty.pem"\n')
    # (1.6 never reads that ca: a file without [host] does not decode there.)
    plan = configure_hosts("r.test", str(tmp_path), GENERATIONS["1.7"])
    with pytest.raises(ConfigError, match=r'unable to load CA cert ".*empty\.pem"'):
        ssl_context_for(plan.entries[-1])


@pytest.mark.behavior("HOST-012")
def test_the_reference_keeps_verifying_a_loopback_default_host(tmp_path: Path) -> None:
    profile: Profile = GENERATIONS["1.7"]
    config = parse_config(_v2(str(tmp_path)), profile)
    (host,) = registry_hosts("127.0.0.1:5000", config, None, profile)
    assert host.runtime_skips_verify
    assert not host.skip_verify
    assert host.ssl_context is not None
    assert host.ssl_context.check_hostname


@pytest.mark.behavior("HOST-010")
def test_explain_names_the_file_and_key_of_each_endpoint(tmp_path: Path) -> None:
    (tmp_path / "r.test").mkdir()
    hosts_toml = tmp_path / "r.test" / "hosts.toml"
    hosts_toml.write_text('server = "https://up.test"\n[host."https://m.test"]\n')
    config = parse_config(_v2(str(tmp_path)), CONTAINERD_16)
    result = explain("r.test/a:1", config, None, CONTAINERD_16)
    assert result.error is None
    assert result.host_dir == str(tmp_path / "r.test")
    assert [e.sources[0] for e in result.endpoints] == [
        ("endpoint", f'{hosts_toml}: host."https://m.test"'),
        ("endpoint", f"{hosts_toml}: server"),
    ]
