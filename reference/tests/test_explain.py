"""refpull.settings.explain and ``refpull explain`` (EP-*, HOST-*, AUTH-007/008, TLS-003)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import trustme

from refpull.__main__ import main
from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.settings.config import RegistryConfig, load_config
from refpull.settings.credentials import AuthConfig
from refpull.settings.explain import explain

CONFIGS = Path(__file__).resolve().parents[2] / "fixtures" / "configs"
SECRETS = ("upstream-password", "kubelet-password", "mirror-password")


@pytest.fixture
def wildcard_config(tmp_path: Path) -> Path:
    """wildcard-mirror.toml with real trustme files in place of the placeholders."""
    ca = trustme.CA()
    leaf = ca.issue_cert("client.test")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "client.crt"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    text = (CONFIGS / "wildcard-mirror.toml").read_text()
    for placeholder, name in (
        ("CA_FILE", "ca.pem"),
        ("CERT_FILE", "client.crt"),
        ("KEY_FILE", "client.key"),
    ):
        text = text.replace(placeholder, str(tmp_path / name))
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


@pytest.mark.behavior("EP-001", "HOST-004", "HOST-007", "AUTH-009")
@pytest.mark.parametrize(
    ("profile", "query"),
    [
        pytest.param(SEED, "", id="seed"),
        pytest.param(CONTAINERD_16, "ns=registry.test", id="1.6"),
    ],
)
def test_wildcard_mirror_tls_and_configured_auth(
    wildcard_config: Path, profile: Profile, query: str
) -> None:
    config = load_config(wildcard_config, profile)
    result = explain("registry.test/app:1", config, None, profile)
    assert result.error is None
    assert result.reference == "registry.test/app:1"
    mirror, upstream = result.endpoints
    assert (mirror.endpoint, mirror.is_mirror, mirror.query) == (
        "https://mirror.test:8443",
        True,
        query,
    )
    assert mirror.url == "https://mirror.test:8443/v2/app/manifests/1" + (
        f"?{query}" if query else ""
    )
    assert mirror.ca_file.endswith("ca.pem")
    assert mirror.cert_file.endswith("client.crt")
    assert (mirror.credentials, mirror.credentials_source) == ("anonymous", "none")
    # The upstream's configured credential is bound to the upstream only (AUTH-009).
    assert upstream.url == "https://registry.test/v2/app/manifests/1"
    assert (upstream.credentials, upstream.credential_kind) == (
        "offered",
        "username/password",
    )
    assert upstream.credentials_source == "registry-config"


@pytest.mark.behavior("CFG-002", "EP-003", "EP-001")
def test_seed_default_docker_io_mirror_shadows_wildcard(wildcard_config: Path) -> None:
    result = explain("busybox", load_config(wildcard_config, SEED), None, SEED)
    assert result.reference == "docker.io/library/busybox:latest"
    assert [e.endpoint for e in result.endpoints] == [
        "https://registry-1.docker.io"
    ] * 2
    assert any("EP-003" in note for note in result.notes)
    result = explain(
        "busybox", load_config(wildcard_config, CONTAINERD_16), None, CONTAINERD_16
    )
    assert [e.endpoint for e in result.endpoints] == [
        "https://mirror.test:8443",
        "https://registry-1.docker.io",
    ]
    assert result.endpoints[0].query == "ns=docker.io"


@pytest.mark.behavior("AUTH-007", "AUTH-008")
@pytest.mark.parametrize(
    "profile", [SEED, CONTAINERD_16], ids=["seed", "containerd-1.6"]
)
def test_cri_credentials_are_offered_to_the_registry_but_not_its_mirrors(
    wildcard_config: Path, profile: Profile
) -> None:
    auth = AuthConfig(username="kubelet", password="kubelet-password")
    result = explain(
        "registry.test/app:1", load_config(wildcard_config, profile), auth, profile
    )
    assert [(e.credentials, e.credentials_source) for e in result.endpoints] == [
        ("anonymous", "none"),
        ("offered", "cri-request"),
    ]
    assert any("AUTH-008" in note for note in result.notes)
    assert not any(s in json.dumps(result.to_dict()) for s in SECRETS)


@pytest.mark.behavior("AUTH-006", "AUTH-002")
def test_unusable_or_unmatched_credentials_are_explained() -> None:
    config = RegistryConfig()
    bad = explain("r.test/a", config, AuthConfig(auth="bm9jb2xvbg=="), CONTAINERD_16)
    assert bad.error is None  # only a 401 would make the pull fail (AUTH-006)
    assert bad.endpoints[0].credentials == "unusable"
    other = AuthConfig(username="u", password="p", server_address="https://other.test")
    unmatched = explain("r.test/a", config, other, CONTAINERD_16)
    assert unmatched.endpoints[0].credentials == "not offered"


def test_invalid_reference_is_reported_not_raised() -> None:
    result = explain("Busybox", RegistryConfig(), None, SEED)
    assert result.error == (
        'failed to parse image reference "Busybox": '
        "invalid reference format: repository name must be lowercase"
    )
    assert result.endpoints == ()


@pytest.mark.behavior("EP-007", "HOST-005")
def test_pre_io_errors_use_the_runtime_composition(tmp_path: Path) -> None:
    text = (
        '[plugins.cri.registry.mirrors."127.0.0.1:5000"]\n'
        'endpoint = ["http://127.0.0.1:5001"]\n'
        '[plugins.cri.registry.configs."127.0.0.1:5001".tls]\n'
        f'ca_file = "{tmp_path / "missing.pem"}"\n'
    )
    (tmp_path / "c.toml").write_text(text)
    seed = explain(
        "127.0.0.1:5000/a", load_config(tmp_path / "c.toml", SEED), None, SEED
    )
    ref = '"127.0.0.1:5000/a:latest"'
    assert seed.error == (
        f"failed to pull and unpack image {ref}: failed to resolve reference {ref}: "
        'tls provided for http endpoint "http://127.0.0.1:5001"'
    )
    assert seed.error_key == 'plugins.cri.registry.configs."127.0.0.1:5001".tls'
    c16 = explain(
        "127.0.0.1:5000/a",
        load_config(tmp_path / "c.toml", CONTAINERD_16),
        None,
        CONTAINERD_16,
    )
    assert c16.error is not None
    assert c16.error.endswith(
        f"failed to load CA file: open {tmp_path / 'missing.pem'}: no such file or directory"
    )


@pytest.mark.behavior("TLS-003")
def test_junk_ca_file_gets_a_warning(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("junk\n")
    text = (
        'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry.configs."r.test".tls]\n'
        f'ca_file = "{junk}"\n'
    )
    config = load_config(_write(tmp_path, text), CONTAINERD_16)
    (endpoint,) = explain("r.test/a", config, None, CONTAINERD_16).endpoints
    assert any("TLS-003" in note for note in endpoint.notes)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


@pytest.mark.behavior("HOST-008")
def test_headers_are_named_not_shown() -> None:
    config = load_config(CONFIGS / "v2-containerd-1.6.toml", CONTAINERD_16)
    (mirror, _) = explain("busybox", config, None, CONTAINERD_16).endpoints
    assert mirror.header_names == ("X-Test", "X-Multi")
    seed = explain(
        "busybox", load_config(CONFIGS / "v2-containerd-1.6.toml", SEED), None, SEED
    )
    assert any("HOST-008" in note for note in seed.notes)


# The CLI, through the dispatcher.


@pytest.mark.behavior("EP-001", "HOST-004")
def test_cli_table(wildcard_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "explain",
            "registry.test/app:1",
            "--config",
            str(wildcard_config),
            "--profile",
            "seed",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "1. https://mirror.test:8443   [mirror]" in out
    assert "2. https://registry.test   [registry]" in out
    assert "credentials: offered (username/password)   source: registry-config" in out
    assert "upstream-password" not in out


def test_cli_json_with_auth_from_stdin(
    wildcard_config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    auth = {"username": "kubelet", "password": "kubelet-password"}
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(auth)))
    argv = [
        "explain",
        "registry.test/app:1",
        "--config",
        str(wildcard_config),
        "--auth-json",
        "-",
        "--json",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["profile"] == "containerd-1.6"
    assert [e["credentials_source"] for e in data["endpoints"]] == [
        "none",
        "cri-request",
    ]
    assert "kubelet-password" not in out


def test_cli_predicted_failure_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "Busybox"]) == 1
    assert "repository name must be lowercase" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("files", "args", "message"),
    [
        pytest.param(
            {},
            ["--config", "{tmp}/missing.toml"],
            "failed to read config",
            id="no-config",
        ),
        pytest.param(
            {"c.toml": "[plugins.cri.registry]\nmirors = {}\n"},
            ["--config", "{tmp}/c.toml"],
            "unknown registry setting plugins.cri.registry.mirors",
            id="bad-config",
        ),
        pytest.param(
            {},
            ["--auth-json", "{tmp}/missing.json"],
            "cannot read auth JSON",
            id="no-auth",
        ),
        pytest.param(
            {"a.json": '{"password": "s3cr3t-value" '},
            ["--auth-json", "{tmp}/a.json"],
            "is not valid JSON",
            id="bad-json",
        ),
        pytest.param(
            {"a.json": '["s3cr3t-value"]'},
            ["--auth-json", "{tmp}/a.json"],
            "must be an object",
            id="list",
        ),
        pytest.param(
            {"a.json": '{"pasword": "s3cr3t-value"}'},
            ["--auth-json", "{tmp}/a.json"],
            "unknown AuthConfig key",
            id="unknown-key",
        ),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str],
    args: list[str],
    message: str,
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    argv = ["explain", "busybox", *(a.format(tmp=tmp_path) for a in args)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("refpull explain: error: ")
    assert message in captured.err
    assert captured.err.count("\n") == 1
    assert "s3cr3t" not in captured.err
    assert "Traceback" not in captured.err


@pytest.mark.behavior("CFG-004")
def test_config_path_without_a_host_directory_means_the_default_host() -> None:
    config = load_config(CONFIGS / "config-path.toml", CONTAINERD_16)
    result = explain("busybox", config, None, CONTAINERD_16)
    assert result.error is None
    assert result.host_dir is None
    assert [e.url for e in result.endpoints] == [
        "https://registry-1.docker.io/v2/library/busybox/manifests/latest"
    ]
