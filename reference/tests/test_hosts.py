"""refpull.settings.hosts: endpoint lists and per-endpoint hosts (EP-*, HOST-*, AUTH-006..010)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trustme
from hypothesis import given
from hypothesis import strategies as st

from refpull.errors import ConfigError, InvalidAuth
from refpull.gocompat.gonet import split_host_port
from refpull.profiles import CONTAINERD_16, PROFILES, SEED, Profile
from refpull.settings.config import HostConfig, RegistryConfig, TLSConfig
from refpull.settings.credentials import AuthConfig, Credentials
from refpull.settings.hosts import (
    CredentialsSource,
    RegistryHost,
    credentials_for,
    default_host,
    default_scheme,
    registry_endpoints,
    registry_hosts,
)

VECTORS = Path(__file__).resolve().parents[2] / "fixtures" / "vectors"
BOTH = pytest.mark.parametrize(
    "profile", [SEED, CONTAINERD_16], ids=["seed", "containerd-1.6"]
)


def _vector_params() -> list[Any]:
    params = []
    for vector in json.loads((VECTORS / "endpoints.json").read_text()):
        for name in vector["profiles"]:
            marks = pytest.mark.behavior(vector["behavior"])
            params.append(
                pytest.param(
                    vector, PROFILES[name], id=f"{vector['id']}-{name}", marks=marks
                )
            )
    return params


@pytest.mark.parametrize(("vector", "profile"), _vector_params())
def test_endpoint_vectors(vector: dict[str, Any], profile: Profile) -> None:
    config = RegistryConfig(mirrors=vector["mirrors"])
    expect = vector["expect"]
    if "error" in expect:
        with pytest.raises(ConfigError) as info:
            registry_endpoints(vector["host"], config, profile)
        assert str(info.value) == expect["error"]
        assert info.value.key is not None
        assert info.value.key.endswith(".endpoint")
    else:
        assert (
            registry_endpoints(vector["host"], config, profile) == expect["endpoints"]
        )


@pytest.mark.behavior("EP-004")
@pytest.mark.parametrize(
    ("host", "seed", "c16"),
    [
        pytest.param("localhost", "http", "http", id="localhost"),
        pytest.param("localhost:5000", "http", "http", id="localhost-port"),
        pytest.param("localhost:", "http", "http", id="empty-port"),
        pytest.param("127.0.0.1", "http", "http", id="v4-loopback"),
        pytest.param("127.0.0.2:5000", "https", "http", id="other-127"),
        pytest.param("127.255.255.254", "https", "http", id="top-of-127"),
        pytest.param("[::1]:5000", "http", "http", id="v6-port"),
        pytest.param("::1", "http", "http", id="v6-bare"),
        pytest.param("[::1]", "https", "https", id="v6-brackets-no-port"),
        pytest.param("127.000.000.001", "https", "https", id="leading-zeros"),
        pytest.param("fe80::1%lo", "https", "https", id="zone"),
        pytest.param("128.0.0.1", "https", "https", id="not-loopback"),
        pytest.param("registry.test:443", "https", "https", id="name"),
    ],
)
def test_default_scheme(host: str, seed: str, c16: str) -> None:
    assert default_scheme(host, SEED) == seed
    assert default_scheme(host, CONTAINERD_16) == c16


@pytest.mark.behavior("EP-005")
@pytest.mark.parametrize(
    ("host", "expected"),
    [
        pytest.param("docker.io", "registry-1.docker.io", id="docker-hub"),
        pytest.param("index.docker.io", "index.docker.io", id="legacy-name"),
        pytest.param("Docker.io", "Docker.io", id="case"),
        pytest.param("docker.io:443", "docker.io:443", id="port"),
    ],
)
def test_default_host(host: str, expected: str) -> None:
    assert default_host(host) == expected


@pytest.mark.parametrize(
    ("hostport", "result"),
    [
        pytest.param("h:80", ("h", "80"), id="simple"),
        pytest.param("[::1]:80", ("::1", "80"), id="v6"),
        pytest.param("h:", ("h", ""), id="empty-port"),
        pytest.param("h", "missing port in address", id="no-colon"),
        pytest.param("::1", "too many colons in address", id="bare-v6"),
        pytest.param("[::1]", "missing port in address", id="brackets-only"),
        pytest.param("[::1]x:80", "missing port in address", id="junk-after-bracket"),
        pytest.param(
            "[::1]:1:2", "too many colons in address", id="colon-after-bracket"
        ),
        pytest.param("[::1", "missing ']' in address", id="open-bracket"),
        pytest.param("a]:80", "unexpected ']' in address", id="stray-close"),
        pytest.param("a[:80", "unexpected '[' in address", id="stray-open"),
    ],
)
def test_split_host_port_is_go(hostport: str, result: tuple[str, str] | str) -> None:
    if isinstance(result, tuple):
        assert split_host_port(hostport) == result
    else:
        with pytest.raises(ValueError, match=result.replace("[", r"\[")):
            split_host_port(hostport)


def _cfg(
    mirrors: dict[str, list[str]] | None = None,
    configs: dict[str, HostConfig] | None = None,
    headers: dict[str, list[str]] | None = None,
) -> RegistryConfig:
    return RegistryConfig(
        mirrors={k: tuple(v) for k, v in (mirrors or {}).items()},
        configs=configs or {},
        headers={k: tuple(v) for k, v in (headers or {}).items()},
    )


@pytest.mark.behavior("HOST-001")
@BOTH
def test_endpoint_url_parts(profile: Profile) -> None:
    cfg = _cfg({"r.test": ["https://user:pw@m.test:5000/x?y=1#f", "HTTPS://Host:443"]})
    first, second, default = registry_hosts("r.test", cfg, None, profile)
    assert (first.scheme, first.host, first.path) == ("https", "m.test:5000", "/x")
    # User info is dropped: the password never survives into the host.
    assert "pw" not in repr(first)
    assert first.endpoint == "https://user:xxxxx@m.test:5000/x?y=1#f"
    assert first.auth is None
    assert (second.scheme, second.host, second.path) == ("https", "Host:443", "/v2")
    assert (default.scheme, default.host, default.path) == ("https", "r.test", "/v2")
    assert first.request_url("a/b", "manifests", "latest").startswith(
        "https://m.test:5000/x/a/b/manifests/latest"
    )


@pytest.mark.behavior("HOST-002")
@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        pytest.param(
            "http://m.test", "http://m.test/v2/a/manifests/latest", id="empty"
        ),
        pytest.param("http://m.test/", "http://m.test/a/manifests/latest", id="slash"),
        pytest.param(
            "http://m.test/proxy", "http://m.test/proxy/a/manifests/latest", id="proxy"
        ),
        pytest.param(
            "http://m.test/v2/", "http://m.test/v2/a/manifests/latest", id="v2-slash"
        ),
        pytest.param(
            "http://m.test//v2", "http://m.test/v2/a/manifests/latest", id="double"
        ),
    ],
)
def test_v2_is_added_only_to_an_empty_path(endpoint: str, url: str) -> None:
    (host,) = registry_hosts("m.test", _cfg({"m.test": [endpoint]}), None, SEED)
    assert host.request_url("a", "manifests", "latest") == url


@pytest.mark.behavior("HOST-003")
@BOTH
def test_every_endpoint_may_resolve_and_pull(profile: Profile) -> None:
    cfg = _cfg({"*": ["https://wild.test"]})
    hosts = registry_hosts("r.test", cfg, None, profile)
    assert [h.host for h in hosts] == ["wild.test", "r.test"]
    assert all(h.capabilities == frozenset({"resolve", "pull"}) for h in hosts)


@pytest.mark.behavior("HOST-004", "AUTH-007")
@BOTH
def test_configs_are_keyed_by_endpoint_host(profile: Profile) -> None:
    upstream = AuthConfig(username="up", password="up-pw")
    mirror = AuthConfig(username="mi", password="mi-pw")
    cfg = _cfg(
        {"registry.test": ["http://127.0.0.1:5001"]},
        {
            "registry.test": HostConfig(auth=upstream),
            "127.0.0.1:5001": HostConfig(auth=mirror),
        },
    )
    m, up = registry_hosts("registry.test", cfg, None, profile)
    assert (m.auth, m.credentials_source) == (mirror, CredentialsSource.REGISTRY_CONFIG)
    assert (up.auth, up.credentials_source) == (
        upstream,
        CredentialsSource.REGISTRY_CONFIG,
    )
    # Port matters: m.test and m.test:443 are different keys.
    cfg = _cfg({"r.test": ["https://m.test:443"]}, {"m.test": HostConfig(auth=mirror)})
    assert registry_hosts("r.test", cfg, None, profile)[0].auth is None


@pytest.mark.behavior("HOST-004", "EP-005")
@BOTH
def test_docker_io_config_does_not_apply_to_docker_hub_endpoint(
    profile: Profile,
) -> None:
    cfg = _cfg(configs={"docker.io": HostConfig(auth=AuthConfig(username="u"))})
    (hub,) = registry_hosts("docker.io", cfg, None, profile)
    assert hub.host == "registry-1.docker.io"
    assert hub.credentials_source is CredentialsSource.NONE


@pytest.mark.behavior("HOST-005", "EP-007")
@pytest.mark.parametrize(
    ("profile", "error"),
    [
        pytest.param(
            SEED, 'tls provided for http endpoint "http://127.0.0.1:5000"', id="seed"
        ),
        pytest.param(CONTAINERD_16, None, id="containerd-1.6"),
    ],
)
def test_tls_on_http_endpoint(profile: Profile, error: str | None) -> None:
    cfg = _cfg(configs={"127.0.0.1:5000": HostConfig(tls=TLSConfig())})
    if error is None:
        (host,) = registry_hosts("127.0.0.1:5000", cfg, None, profile)
        assert host.scheme == "http"
        assert host.tls == TLSConfig()
    else:
        with pytest.raises(ConfigError) as info:
            registry_hosts("127.0.0.1:5000", cfg, None, profile)
        assert str(info.value) == error
        assert (
            info.value.key
            == 'plugins."io.containerd.grpc.v1.cri".registry.configs."127.0.0.1:5000".tls'
        )


@pytest.mark.behavior("EP-007", "TLS-003")
@BOTH
def test_a_broken_later_endpoint_fails_before_any_request(
    profile: Profile, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.pem"
    cfg = _cfg(
        {"r.test": ["https://good.test", "https://bad.test"]},
        {"bad.test": HostConfig(tls=TLSConfig(ca_file=str(missing)))},
    )
    with pytest.raises(ConfigError) as info:
        registry_hosts("r.test", cfg, None, profile)
    assert str(info.value) == (
        f'get TLSConfig for registry "https://bad.test": '
        f"failed to load CA file: open {missing}: no such file or directory"
    )


@pytest.mark.behavior("EP-006", "EP-007")
@pytest.mark.parametrize(
    ("profile", "message"),
    [
        pytest.param(
            SEED,
            "get registry endpoints: parse endpoint url: parse 10.0.0.1:5000: "
            "first path segment in URL cannot contain colon",
            id="seed",
        ),
        pytest.param(CONTAINERD_16, None, id="containerd-1.6"),
    ],
)
def test_seed_parse_error_composition(profile: Profile, message: str | None) -> None:
    cfg = _cfg({"r.test": ["https://m.test", "10.0.0.1:5000"]})
    if message is None:
        hosts = registry_hosts("r.test", cfg, None, profile)
        assert [h.endpoint for h in hosts][1] == "https://10.0.0.1:5000"
        return
    with pytest.raises(ConfigError) as info:
        registry_hosts("r.test", cfg, None, profile)
    assert str(info.value) == message


@pytest.mark.behavior("EP-002", "EP-007")
def test_endpoint_after_registry_match_fails_in_host_construction() -> None:
    # registryEndpoints stops parsing at the match; registryHosts parses the rest.
    cfg = _cfg({"r.test": ["https://r.test", "10.0.0.1:5000"]})
    assert registry_endpoints("r.test", cfg, SEED) == [
        "https://r.test",
        "10.0.0.1:5000",
    ]
    with pytest.raises(ConfigError) as info:
        registry_hosts("r.test", cfg, None, SEED)
    assert str(info.value) == (
        'parse registry endpoint "10.0.0.1:5000" from mirrors: '
        "parse 10.0.0.1:5000: first path segment in URL cannot contain colon"
    )


@pytest.mark.behavior("EP-006")
def test_seed_schemeless_endpoint_cannot_be_spoken() -> None:
    cfg = _cfg({"r.test": ["mirror.local:5000"]})
    odd, default = registry_hosts("r.test", cfg, None, SEED)
    assert (odd.scheme, odd.host, odd.path) == ("mirror.local", "", "/v2")
    assert odd.scheme_error == 'unsupported protocol scheme "mirror.local"'
    assert default.scheme_error is None


@pytest.mark.behavior("HOST-007")
@pytest.mark.parametrize(
    ("ref_host", "endpoint", "query"),
    [
        pytest.param(
            "registry.test:5000",
            "http://127.0.0.1:5111",
            "ns=registry.test%3A5000",
            id="mirror",
        ),
        pytest.param(
            "docker.io", "https://mirror.test", "ns=docker.io", id="docker-io-mirror"
        ),
        pytest.param(
            "docker.io", "https://registry-1.docker.io", "", id="docker-hub-api"
        ),
        pytest.param("r.test", "https://r.test/other", "", id="same-host"),
    ],
)
def test_ns_query_for_mirrors(ref_host: str, endpoint: str, query: str) -> None:
    cfg = _cfg({ref_host: [endpoint]})
    host = registry_hosts(ref_host, cfg, None, CONTAINERD_16)[0]
    assert host.is_mirror == bool(query)
    assert host.query == query
    url = host.request_url("test/a", "manifests", "v1")
    assert url.endswith("/test/a/manifests/v1" + (f"?{query}" if query else ""))
    # The seed never adds it.
    seed_host = registry_hosts(ref_host, cfg, None, SEED)[0]
    assert seed_host.ns is None
    assert "?" not in seed_host.request_url("test/a", "manifests", "v1")


@pytest.mark.behavior("HOST-008")
@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        pytest.param(SEED, (), id="seed"),
        pytest.param(
            CONTAINERD_16,
            (("X-Test", "1"), ("user-agent", "a"), ("user-agent", "b")),
            id="containerd-1.6",
        ),
    ],
)
def test_registry_headers(
    profile: Profile, expected: tuple[tuple[str, str], ...]
) -> None:
    cfg = _cfg(headers={"X-Test": ["1"], "user-agent": ["a", "b"]})
    (host,) = registry_hosts("r.test", cfg, None, profile)
    assert host.headers == expected


@pytest.mark.behavior("HOST-009", "TLS-006")
@pytest.mark.parametrize(
    ("ref_host", "endpoint", "profile", "runtime_skips"),
    [
        pytest.param(
            "127.0.0.2:5000",
            "http://127.0.0.2:5000",
            CONTAINERD_16,
            True,
            id="1.6-loopback-http",
        ),
        pytest.param("127.0.0.1:5000", "http://127.0.0.1:5000", SEED, False, id="seed"),
        pytest.param(
            "127.0.0.1:5000",
            "https://127.0.0.1:5000",
            CONTAINERD_16,
            False,
            id="1.6-https",
        ),
        pytest.param(
            "r.test", "http://127.0.0.1:5000", CONTAINERD_16, False, id="1.6-remote-ref"
        ),
    ],
)
def test_loopback_http_skip_verify_is_recorded_not_applied(
    ref_host: str, endpoint: str, profile: Profile, runtime_skips: bool
) -> None:
    host = registry_hosts(ref_host, _cfg({ref_host: [endpoint]}), None, profile)[0]
    assert host.runtime_skips_verify is runtime_skips
    # SECURITY: the reference itself never turns verification off here.
    assert host.skip_verify is False


@pytest.mark.behavior("AUTH-007")
@BOTH
def test_cri_auth_overrides_configured_auth_of_the_registry(profile: Profile) -> None:
    configured = HostConfig(auth=AuthConfig(username="cfg", password="cfg-pw"))
    cfg = _cfg(
        {"r.test": ["https://m.test"]}, {"m.test": configured, "r.test": configured}
    )
    empty = AuthConfig()
    mirror, upstream = registry_hosts("r.test", cfg, empty, profile)
    # A non-nil but empty AuthConfig disables the registry's configured credentials;
    # the mirror keeps its own (AUTH-008: request credentials stay off mirrors).
    assert upstream.credentials_source == CredentialsSource.CRI_REQUEST
    assert not credentials_for(upstream, "r.test")
    assert mirror.credentials_source == CredentialsSource.REGISTRY_CONFIG
    assert credentials_for(mirror, "m.test") == Credentials("cfg", "cfg-pw")


@pytest.mark.behavior("AUTH-008")
@BOTH
def test_cri_auth_without_server_address_never_reaches_a_mirror(
    profile: Profile,
) -> None:
    auth = AuthConfig(username="kubelet", password="pw")
    hosts = registry_hosts(
        "r.test", _cfg({"*": ["https://m1.test", "https://m2.test"]}), auth, profile
    )
    assert [credentials_for(h, h.host) for h in hosts] == [
        Credentials("", ""),
        Credentials("", ""),
        Credentials("kubelet", "pw"),
    ]


@pytest.mark.behavior("AUTH-008", "AUTH-002")
@BOTH
def test_cri_auth_with_server_address_is_filtered_per_challenge_host(
    profile: Profile,
) -> None:
    auth = AuthConfig(username="u", password="p", server_address="https://r.test")
    mirror, upstream = registry_hosts(
        "r.test", _cfg({"*": ["https://m.test"]}), auth, profile
    )
    assert not credentials_for(mirror, "m.test")
    assert credentials_for(upstream, "r.test") == Credentials("u", "p")


@pytest.mark.behavior("AUTH-009")
@BOTH
def test_configured_credential_stays_with_its_endpoint(profile: Profile) -> None:
    # Seed (AUTH-009): M1's credential A went to M1, M2 and the upstream; D was unused.
    # The reference binds each credential to its endpoint in every profile.
    a = AuthConfig(username="a", password="a-pw")
    d = AuthConfig(username="d", password="d-pw")
    cfg = _cfg(
        {"127.0.0.1:5000": ["http://127.0.0.1:6001", "http://127.0.0.1:6002"]},
        {"127.0.0.1:6001": HostConfig(auth=a), "127.0.0.1:5000": HostConfig(auth=d)},
    )
    for _ in range(2):  # the resolver builds the hosts again for the fetch phase
        m1, m2, upstream = registry_hosts("127.0.0.1:5000", cfg, None, profile)
        assert credentials_for(m1, m1.host) == Credentials("a", "a-pw")
        assert not credentials_for(m2, m2.host)
        assert m2.credentials_source is CredentialsSource.NONE
        assert credentials_for(upstream, upstream.host) == Credentials("d", "d-pw")


@pytest.mark.behavior("AUTH-006")
@BOTH
def test_bad_credentials_fail_only_when_used(profile: Profile) -> None:
    auth = AuthConfig(auth="czNjcjN0dmFsdWU=")  # base64("s3cr3tvalue"): no colon
    # Building the hosts never decodes the credential...
    (host,) = registry_hosts("r.test", _cfg(), auth, profile)
    assert host.auth == auth
    # ...only answering a challenge does, and the error does not echo the secret.
    with pytest.raises(InvalidAuth) as info:
        credentials_for(host, "r.test")
    assert "s3cr3t" not in str(info.value)


@pytest.mark.behavior("AUTH-010")
def test_credentials_are_chosen_for_the_challenging_host_not_the_realm() -> None:
    auth = AuthConfig(username="u", password="p", server_address="https://r.test")
    (host,) = registry_hosts("r.test", _cfg(), auth, SEED)
    # The challenge came from r.test; the token realm's host plays no part here.
    assert credentials_for(host, host.host) == Credentials("u", "p")
    assert not credentials_for(host, "auth.elsewhere.test")


@pytest.mark.behavior("HOST-006")
@BOTH
def test_each_call_builds_new_hosts_and_rereads_tls(
    profile: Profile, tmp_path: Path
) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cfg = _cfg(configs={"r.test": HostConfig(tls=TLSConfig(ca_file=str(ca_file)))})
    first = registry_hosts("r.test", cfg, None, profile)[0]
    second = registry_hosts("r.test", cfg, None, profile)[0]
    assert first == second
    assert first.ssl_context is not second.ssl_context
    ca_file.unlink()  # TLS-005: the next build reads the file again and fails
    with pytest.raises(ConfigError, match="failed to load CA file"):
        registry_hosts("r.test", cfg, None, profile)


def test_registry_host_is_hashable() -> None:
    host = RegistryHost(
        endpoint="https://r.test", scheme="https", host="r.test", path="/v2"
    )
    assert {host: 1}[host] == 1


# Hypothesis properties over mirror lists of plain host names.
_names = st.from_regex(r"[a-z][a-z0-9]{0,6}\.test(:[1-9][0-9]{0,3})?", fullmatch=True)
_endpoints = st.lists(
    st.builds(lambda s, h: f"{s}://{h}", st.sampled_from(["http", "https"]), _names),
    max_size=5,
)


@pytest.mark.behavior("EP-001", "EP-002")
@given(
    host=_names, endpoints=_endpoints, profile=st.sampled_from([SEED, CONTAINERD_16])
)
def test_property_mirrors_kept_in_order_default_at_most_once_last(
    host: str, endpoints: list[str], profile: Profile
) -> None:
    result = registry_endpoints(host, _cfg({host: endpoints}), profile)
    assert result[: len(endpoints)] == endpoints
    has_registry_host = any(e.split("://", 1)[1] == host for e in endpoints)
    if has_registry_host:
        assert result == endpoints
    else:
        assert result == [*endpoints, f"https://{host}"]


@pytest.mark.behavior("EP-001")
@given(host=_names, wildcard=_endpoints, other=_endpoints)
def test_property_exact_key_hides_wildcard(
    host: str, wildcard: list[str], other: list[str]
) -> None:
    with_key = registry_endpoints(
        host, _cfg({host: other, "*": wildcard}), CONTAINERD_16
    )
    assert with_key[: len(other)] == other
    without = registry_endpoints(host, _cfg({"*": wildcard}), CONTAINERD_16)
    assert without[: len(wildcard)] == wildcard


@pytest.mark.behavior("HOST-001", "EP-007")
@pytest.mark.parametrize(
    ("profile", "mirrors", "configs", "shown"),
    [
        pytest.param(
            SEED,
            ["http://u:hunter2@127.0.0.1:5000"],
            {"127.0.0.1:5000": HostConfig(tls=TLSConfig())},
            'tls provided for http endpoint "http://u:xxxxx@127.0.0.1:5000"',
            id="host-005",
        ),
        pytest.param(
            SEED,
            ["https://u:hunter2@r.test", "https://u:hunter2@bad host"],
            {},
            'parse registry endpoint "https://u:xxxxx@bad host" from mirrors: '
            'parse https://u:xxxxx@bad host: invalid character " " in host name',
            id="parse",
        ),
        pytest.param(
            CONTAINERD_16,
            ["https://u:hunter2@m.test"],
            {"m.test": HostConfig(tls=TLSConfig(cert_file="/c"))},
            'get TLSConfig for registry "https://u:xxxxx@m.test": cert file "/c" was '
            "specified, but no corresponding key file was specified",
            id="tls",
        ),
    ],
)
def test_endpoint_passwords_never_reach_errors(
    profile: Profile, mirrors: list[str], configs: dict[str, HostConfig], shown: str
) -> None:
    with pytest.raises(ConfigError) as info:
        registry_hosts("r.test", _cfg({"r.test": mirrors}, configs), None, profile)
    assert str(info.value) == shown
    assert "hunter2" not in str(info.value)
