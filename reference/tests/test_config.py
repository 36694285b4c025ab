"""refpull.settings.config: the registry section of containerd's config.toml (CFG-001..CFG-005)."""

from __future__ import annotations

from pathlib import Path

import pytest

from refpull.errors import ConfigError
from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.settings.config import (
    HostConfig,
    RegistryConfig,
    TLSConfig,
    default_config,
    load_config,
    parse_config,
)
from refpull.settings.credentials import AuthConfig

CONFIGS = Path(__file__).resolve().parents[2] / "fixtures" / "configs"
BOTH = pytest.mark.parametrize(
    "profile", [SEED, CONTAINERD_16], ids=["seed", "containerd-1.6"]
)
V2 = 'plugins."io.containerd.grpc.v1.cri"'


@pytest.mark.behavior("CFG-001", "HOST-004")
@BOTH
def test_v1_table_names_are_read(profile: Profile) -> None:
    config = load_config(CONFIGS / "v1-seed.toml", profile)
    assert config.mirrors["registry.test:5000"] == (
        "https://mirror.test:8443",
        "http://127.0.0.1:5001",
    )
    assert config.configs["mirror.test:8443"] == HostConfig(
        tls=TLSConfig(ca_file="/etc/containerd/certs/mirror-ca.pem")
    )
    auth = config.configs["127.0.0.1:5001"].auth
    assert auth == AuthConfig(username="mirror-user", password="mirror-password")
    assert config.max_concurrent_downloads == 5
    assert config.plugin_table == "plugins.cri"


@pytest.mark.behavior("CFG-001", "HOST-008")
@BOTH
def test_v2_table_names_are_read(profile: Profile) -> None:
    config = load_config(CONFIGS / "v2-containerd-1.6.toml", profile)
    assert config.mirrors["docker.io"] == ("https://mirror.test",)
    # `identitytoken` (no underscore) maps to the CRI identity_token field.
    assert config.configs["mirror.test"].auth == AuthConfig(auth="dXNlcjpwYXNz")
    assert config.configs["mirror.test"].tls is None
    assert dict(config.headers) == {"X-Test": ("1",), "X-Multi": ("a", "b")}
    assert config.max_concurrent_downloads == 2
    assert config.plugin_table == V2


@pytest.mark.behavior("CFG-001")
def test_identitytoken_key_has_no_underscore() -> None:
    text = f'version = 2\n[{V2}.registry.configs."h".auth]\nidentitytoken = "t"\n'
    assert parse_config(text, SEED).configs["h"].auth == AuthConfig(identity_token="t")
    wrong = text.replace("identitytoken", "identity_token")
    with pytest.raises(ConfigError) as info:
        parse_config(wrong, SEED)
    assert info.value.key == f'{V2}.registry.configs."h".auth.identity_token'


@pytest.mark.behavior("CFG-002", "EP-003")
def test_seed_default_has_docker_io_mirror() -> None:
    config = default_config(SEED)
    assert dict(config.mirrors) == {"docker.io": ("https://registry-1.docker.io",)}
    assert config.max_concurrent_downloads == 3


@pytest.mark.behavior("CFG-002")
def test_containerd_16_default_has_no_mirrors() -> None:
    config = default_config(CONTAINERD_16)
    assert dict(config.mirrors) == {}
    assert config.max_concurrent_downloads == 3
    assert config.config_path == ""


@pytest.mark.behavior("CFG-002")
@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        pytest.param(
            SEED,
            {"docker.io": ("https://registry-1.docker.io",), "*": ("https://m.test",)},
            id="seed-default-mirror-survives",
        ),
        pytest.param(CONTAINERD_16, {"*": ("https://m.test",)}, id="containerd-1.6"),
    ],
)
def test_file_is_decoded_over_the_defaults(
    profile: Profile, expected: dict[str, tuple[str, ...]]
) -> None:
    # F-20: with the seed default, docker.io keeps its own key and ignores "*".
    text = f'version = 2\n[{V2}.registry.mirrors."*"]\nendpoint = ["https://m.test"]\n'
    assert dict(parse_config(text, profile).mirrors) == expected


@pytest.mark.behavior("CFG-002")
def test_file_key_replaces_default_entry() -> None:
    text = '[plugins.cri.registry.mirrors."docker.io"]\nendpoint = ["https://m.test"]\n'
    assert dict(parse_config(text, SEED).mirrors) == {"docker.io": ("https://m.test",)}


@pytest.mark.behavior("CFG-003")
@pytest.mark.parametrize(
    ("profile", "keys"),
    [
        # Seed: the URL key is kept verbatim and can never match an endpoint host.
        pytest.param(SEED, {"https://registry-a.test", "registry-b.test"}, id="seed"),
        # 1.6: a key with a scheme is reduced to its host.
        pytest.param(CONTAINERD_16, {"registry-a.test", "registry-b.test"}, id="1.6"),
    ],
)
def test_deprecated_auths_conversion(profile: Profile, keys: set[str]) -> None:
    config = load_config(CONFIGS / "deprecated-auths.toml", profile)
    assert set(config.configs) == keys
    users = {k: c.auth.username for k, c in config.configs.items() if c.auth}
    # Deviation from the seed (shared range variable): each key keeps its own
    # credential in every profile, so one registry never gets another's password.
    assert sorted(users.values()) == ["user-a", "user-b"]
    assert users[min(keys)] == "user-a"


@pytest.mark.behavior("CFG-003")
def test_auths_override_configs_auth_and_keep_tls() -> None:
    text = (
        f'version = 2\n[{V2}.registry.configs."r.test".tls]\nca_file = "/ca"\n'
        f'[{V2}.registry.configs."r.test".auth]\nusername = "old"\n'
        f'[{V2}.registry.auths."https://r.test"]\nusername = "new"\n'
    )
    config = parse_config(text, CONTAINERD_16)
    assert config.configs["r.test"] == HostConfig(
        tls=TLSConfig(ca_file="/ca"), auth=AuthConfig(username="new")
    )


@pytest.mark.behavior("CFG-003")
def test_unparseable_auths_key_is_an_error_in_16() -> None:
    text = f'version = 2\n[{V2}.registry.auths."10.0.0.1:5000"]\nusername = "u"\n'
    with pytest.raises(ConfigError) as info:
        parse_config(text, CONTAINERD_16)
    assert str(info.value) == (
        'failed to parse registry url "10.0.0.1:5000" from `registry.auths`: '
        'parse "10.0.0.1:5000": first path segment in URL cannot contain colon'
    )
    assert info.value.key == f'{V2}.registry.auths."10.0.0.1:5000"'
    # The seed never parses the key: kept verbatim.
    assert "10.0.0.1:5000" in parse_config(text, SEED).configs


@pytest.mark.behavior("CFG-004")
@BOTH
def test_config_path_is_read_where_the_runtime_has_it(profile: Profile) -> None:
    config = load_config(CONFIGS / "config-path.toml", profile)
    # The seed has no config_path (ignored); 1.6 builds hosts from its directories.
    expected = "/etc/containerd/certs.d" if profile.config_path_supported else ""
    assert config.config_path == expected
    assert bool(config.ignored) != profile.config_path_supported


@pytest.mark.behavior("CFG-005")
def test_config_is_a_snapshot_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[plugins.cri.registry.mirrors."a"]\nendpoint = ["https://m1"]\n')
    config = load_config(path, CONTAINERD_16)
    path.write_text('[plugins.cri.registry.mirrors."a"]\nendpoint = ["https://m2"]\n')
    # Read once, like containerd at startup: later edits do not leak into it.
    assert config.mirrors["a"] == ("https://m1",)
    with pytest.raises(TypeError):
        config.mirrors["a"] = ("x",)  # type: ignore[index]


@pytest.mark.behavior("CFG-001")
@pytest.mark.parametrize(
    ("text", "key"),
    [
        pytest.param(
            f'version = 2\n[{V2}.registry.mirrors."x"]\nendpoint = "https://m"\n',
            f'{V2}.registry.mirrors."x".endpoint',
            id="endpoint-not-a-list",
        ),
        pytest.param(
            f'version = 2\n[{V2}.registry.mirrors."x"]\nendpoint = [1]\n',
            f'{V2}.registry.mirrors."x".endpoint',
            id="endpoint-not-strings",
        ),
        pytest.param(
            f'version = 2\n[{V2}.registry.mirrors."x"]\nendpoints = ["https://m"]\n',
            f'{V2}.registry.mirrors."x".endpoints',
            id="typo-endpoints",
        ),
        pytest.param(
            "[plugins.cri.registry]\nmirror = {}\n",
            "plugins.cri.registry.mirror",
            id="unknown-registry-key",
        ),
        pytest.param(
            '[plugins.cri.registry.configs."h".tls]\ninsecure_skip_verify = "yes"\n',
            'plugins.cri.registry.configs."h".tls.insecure_skip_verify',
            id="skip-verify-not-bool",
        ),
        pytest.param(
            '[plugins.cri.registry.configs."h".tls]\nca = "/x"\n',
            'plugins.cri.registry.configs."h".tls.ca',
            id="hosts-toml-spelling",
        ),
        pytest.param(
            '[plugins.cri.registry.configs."h".auth]\npassword = 1\n',
            'plugins.cri.registry.configs."h".auth.password',
            id="password-not-string",
        ),
        pytest.param(
            "[plugins.cri]\nmax_concurrent_downloads = true\n",
            "plugins.cri.max_concurrent_downloads",
            id="mcd-bool",
        ),
        pytest.param(
            "[plugins.cri]\nmax_concurrent_downloads = -1\n",
            "plugins.cri.max_concurrent_downloads",
            id="mcd-negative",
        ),
        pytest.param(
            "version = 4\n",
            "version",
            id="version-4",
        ),
        pytest.param(
            '[plugins."io.containerd.grpc.v1.cri".registry]\nconfig_path = "/x"\n',
            V2,
            id="v2-table-in-v1-config",
        ),
        pytest.param(
            'version = 2\n[plugins.cri.registry]\nconfig_path = "/x"\n',
            "plugins.cri",
            id="v1-table-in-v2-config",
        ),
        pytest.param(
            f'version = 2\n[{V2}.registry.headers]\nX = "1"\n',
            f'{V2}.registry.headers."X"',
            id="header-not-list",
        ),
        pytest.param(
            f"version = 2\n[{V2}]\nregistry = 1\n",
            f"{V2}.registry",
            id="registry-not-table",
        ),
    ],
)
def test_bad_settings_name_their_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, CONTAINERD_16)
    assert info.value.key == key
    assert key in str(info.value)


@pytest.mark.behavior("CFG-001")
def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        parse_config("[plugins.cri\n", SEED)
    with pytest.raises(ConfigError, match="failed to read config"):
        load_config(tmp_path / "missing.toml", SEED)


@pytest.mark.behavior("CFG-001")
def test_unrelated_tables_are_ignored() -> None:
    text = (
        'version = 2\n[plugins."io.containerd.runtime.v1.linux"]\nshim = "x"\n'
        f'[{V2}]\nsandbox_image = "pause"\n[{V2}.containerd]\nsnapshotter = "native"\n'
    )
    assert parse_config(text, CONTAINERD_16) == default_config(CONTAINERD_16)


@pytest.mark.behavior("EP-001")
def test_empty_mirror_table_is_an_empty_endpoint_list() -> None:
    text = '[plugins.cri.registry.mirrors."r.test"]\n'
    assert parse_config(text, CONTAINERD_16).mirrors["r.test"] == ()


def test_parse_config_accepts_a_decoded_mapping() -> None:
    doc = {
        "plugins": {
            "cri": {"registry": {"mirrors": {"a": {"endpoint": ["https://m"]}}}}
        }
    }
    config = parse_config(doc, CONTAINERD_16)
    assert config == RegistryConfig(
        mirrors={"a": ("https://m",)}, plugin_table="plugins.cri"
    )
    assert config.key("mirrors", '"a"') == 'plugins.cri.registry.mirrors."a"'
