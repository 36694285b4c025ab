"""The registry section of a containerd ``config.toml`` (CFG-001..CFG-005).

Only what a pull needs is read: ``registry.mirrors``, ``registry.configs``, the deprecated
``registry.auths``, ``registry.headers`` and ``registry.config_path`` (1.6), and
``max_concurrent_downloads``. Both table layouts are understood:

* version 1 (the seed's era): ``[plugins.cri]`` / ``[plugins.cri.registry]``;
* version 2 (containerd 1.6, 1.7; 2.x migrates it): ``[plugins."io.containerd.grpc.v1.cri"]``;
* version 3 (containerd 2.x): ``[plugins."io.containerd.cri.v1.images"]`` and its ``registry``.

``config_path`` (hosts.toml directories, :mod:`refpull.settings.hoststoml`) excludes ``mirrors``
and, where it exists, ``configs.*.tls``: containerd 1.6+ refuses to start its CRI plugin
with both (CFG-006). The seed has no ``config_path``: there the key is ignored (CFG-004).

Like containerd, the file is decoded *over* the profile's default configuration: a mirror key
in the file replaces that key's default entry, the other default entries stay (so the seed's
built-in ``docker.io`` mirror survives a file that only configures ``"*"``, F-20).

Unknown-key policy: keys outside the CRI plugin table, and keys of the CRI table that do not
concern pulls (``sandbox_image``, ``cni`` ...), are ignored. Inside ``registry`` every key is
checked, because a typo there silently changes where credentials go; an unknown or mistyped
key raises :class:`~refpull.errors.ConfigError` naming the full TOML key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from refpull.errors import ConfigError
from refpull.gocompat.gourl import URLError, go_quote
from refpull.gocompat.gourl import parse as parse_go_url
from refpull.profiles import Profile
from refpull.settings.credentials import AuthConfig

__all__ = [
    "PLUGIN_TABLE_V1",
    "PLUGIN_TABLE_V2",
    "PLUGIN_TABLE_V3",
    "HostConfig",
    "RegistryConfig",
    "TLSConfig",
    "default_config",
    "load_config",
    "parse_config",
]

#: The CRI plugin table of a version 1 config (CFG-001; cri@ab6701bd era).
PLUGIN_TABLE_V1 = "plugins.cri"
#: The CRI plugin table of a version 2 config (CFG-001; containerd 1.6).
PLUGIN_TABLE_V2 = 'plugins."io.containerd.grpc.v1.cri"'
#: The CRI image plugin table of a version 3 config (CFG-001; containerd 2.x).
PLUGIN_TABLE_V3 = 'plugins."io.containerd.cri.v1.images"'
_PLUGIN_IDS = {
    1: "cri",
    2: "io.containerd.grpc.v1.cri",
    3: "io.containerd.cri.v1.images",
}
_PLUGIN_TABLES = {1: PLUGIN_TABLE_V1, 2: PLUGIN_TABLE_V2, 3: PLUGIN_TABLE_V3}

_REGISTRY_KEYS = frozenset({"mirrors", "configs", "auths", "headers", "config_path"})
_TLS_KEYS = ("ca_file", "cert_file", "key_file", "insecure_skip_verify")
# behaviors.md CFG-001: `identitytoken` is spelled without an underscore in the TOML.
_AUTH_KEYS = ("username", "password", "auth", "identitytoken")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, kw_only=True)
class TLSConfig:
    """``registry.configs."<endpoint host>".tls`` (TLS-001..TLS-004)."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure_skip_verify: bool = False


@dataclass(frozen=True, kw_only=True)
class HostConfig:
    """``registry.configs."<endpoint host>"``; a present-but-empty table is not ``None``."""

    tls: TLSConfig | None = None
    auth: AuthConfig | None = None
    #: the TOML key ``auth`` came from (``configs."h".auth`` or ``auths."…"``).
    auth_key: str = field(default="", compare=False)


def _freeze_lists(value: Mapping[str, Any]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({k: tuple(v) for k, v in value.items()})


@dataclass(frozen=True, kw_only=True)
class RegistryConfig:
    """The pull-relevant part of the CRI plugin configuration.

    Attributes:
        mirrors: registry host (or ``"*"``) → ordered endpoint URLs (EP-001).
        configs: endpoint host → TLS and auth settings (HOST-004).
        headers: header name → values added to registry requests (HOST-008, 1.6).
        max_concurrent_downloads: PULL-002; default 3 in both profiles (CFG-002).
        config_path: hosts.toml roots, ``:``-separated (CFG-004, :mod:`refpull.settings.hoststoml`).
        plugin_table: the TOML table the settings came from, used to name keys in errors.
        source: the file the settings were read from (``""``: defaults or text).
        ignored: keys the modelled runtime does not read, for ``refpull explain``.
    """

    mirrors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    configs: Mapping[str, HostConfig] = field(default_factory=dict)
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    max_concurrent_downloads: int = 3
    config_path: str = ""
    plugin_table: str = PLUGIN_TABLE_V2
    source: str = ""
    ignored: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Frozen all the way down: callers may share one config between pulls.
        object.__setattr__(self, "mirrors", _freeze_lists(self.mirrors))
        object.__setattr__(self, "headers", _freeze_lists(self.headers))
        object.__setattr__(self, "configs", MappingProxyType(dict(self.configs)))

    def key(self, *parts: str) -> str:
        """The full TOML key of a registry setting, for error messages.

        Args:
            parts: path below ``registry``; map keys (hosts, header names) are quoted.

        Returns:
            e.g. ``plugins."io.containerd.grpc.v1.cri".registry.mirrors."x".endpoint``.
        """
        return _join_key(self.plugin_table, "registry", *parts)


def _quote_key(part: str) -> str:
    escaped = part.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _join_key(*parts: str) -> str:
    return ".".join(parts)


def default_config(profile: Profile) -> RegistryConfig:
    """The registry configuration a runtime has when the file says nothing (CFG-002).

    Args:
        profile: the seed carries the ``docker.io`` mirror; containerd 1.6 has no mirrors.

    Returns:
        The default :class:`RegistryConfig`.
    """
    mirrors: dict[str, tuple[str, ...]] = {}
    if profile.default_config_has_docker_io_mirror:
        # behaviors.md CFG-002/EP-003; cri@ab6701bd config_unix.go DefaultConfig
        mirrors["docker.io"] = ("https://registry-1.docker.io",)
    return RegistryConfig(mirrors=mirrors)


def load_config(path: str | Path, profile: Profile) -> RegistryConfig:
    """Read a containerd ``config.toml`` and return its registry configuration.

    Args:
        path: the TOML file.
        profile: selects defaults and the deprecated-``auths`` conversion (CFG-003).

    Returns:
        The :class:`RegistryConfig` (defaults overlaid by the file).

    Raises:
        ConfigError: unreadable file, invalid TOML, or an invalid registry setting.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"failed to read config {str(path)!r}: {exc}") from exc
    return replace(parse_config(text, profile), source=str(path))


def parse_config(source: str | Mapping[str, Any], profile: Profile) -> RegistryConfig:
    """Parse a whole containerd config (TOML text or an already-decoded mapping).

    Args:
        source: ``config.toml`` text, or the dict :func:`tomllib.loads` would return.
        profile: selects defaults and the deprecated-``auths`` conversion (CFG-003).

    Returns:
        The :class:`RegistryConfig`, decoded over :func:`default_config` like containerd.

    Raises:
        ConfigError: invalid TOML, unsupported version, or an invalid registry setting;
            ``key`` names the offending TOML key.
    """
    if isinstance(source, str):
        try:
            doc: Mapping[str, Any] = tomllib.loads(source)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"invalid TOML: {exc}") from exc
    else:
        doc = source
    version = doc.get("version", 1)
    if type(version) is not int or version not in _PLUGIN_IDS:
        raise ConfigError(f"unsupported config version {version!r}", key="version")
    plugins = _table(doc.get("plugins", {}), "plugins")
    for other in _PLUGIN_IDS:
        if other != version:
            _reject_other_layout(plugins, version, other)
    table = _PLUGIN_TABLES[version]
    cri = _table(plugins.get(_PLUGIN_IDS[version], {}), table)
    base = replace(default_config(profile), plugin_table=table)
    return _decode_cri(cri, base, profile)


def _reject_other_layout(plugins: Mapping[str, Any], version: int, other: int) -> None:
    # containerd would silently ignore the other layout's table (no plugin has that ID,
    # or in 2.x the runtime plugin has no registry); a registry section that is never
    # applied is always a mistake, so say so.
    table = plugins.get(_PLUGIN_IDS[other])
    if table is None:
        return
    # A version 3 file may configure the 2.x CRI gRPC plugin, just not its registry.
    other_cri_is_fine = other == 2 and version == 3 and isinstance(table, Mapping)
    if other_cri_is_fine and "registry" not in table:
        return
    raise ConfigError(
        f"{_PLUGIN_TABLES[other]} is the version {other} table name but the config "
        f"is version {version} (set version = {other} or rename the table)",
        key=_PLUGIN_TABLES[other],
    )


def _decode_cri(
    cri: Mapping[str, Any], base: RegistryConfig, profile: Profile
) -> RegistryConfig:
    mcd = cri.get("max_concurrent_downloads", base.max_concurrent_downloads)
    mcd_key = _join_key(base.plugin_table, "max_concurrent_downloads")
    if type(mcd) is not int:
        raise ConfigError(f"{mcd_key} must be an integer", key=mcd_key)
    if mcd < 0:
        raise ConfigError(f"{mcd_key} must not be negative", key=mcd_key)
    registry = _table(cri.get("registry", {}), base.key())
    for name in registry:
        if name not in _REGISTRY_KEYS:
            raise ConfigError(
                f"unknown registry setting {base.key(name)}", key=base.key(name)
            )
    mirrors = dict(base.mirrors)
    mirrors.update(_decode_mirrors(registry, base))
    configs = dict(base.configs)
    configs.update(_decode_configs(registry, base))
    _convert_auths(registry, base, profile, configs)
    config_path = registry.get("config_path", "")
    if not isinstance(config_path, str):
        raise ConfigError(
            f"{base.key('config_path')} must be a string", key=base.key("config_path")
        )
    ignored: list[str] = []
    if config_path and not profile.config_path_supported:
        # cri@ab6701bd pkg/config/config.go Registry has no ConfigPath (CFG-004).
        ignored.append(base.key("config_path"))
        config_path = ""
    if not profile.configs_tls_supported:
        # containerd 2.x internal/cri/config RegistryConfig has only Auth (CFG-007).
        for host, entry in list(configs.items()):
            if entry.tls is not None:
                ignored.append(base.key("configs", _quote_key(host), "tls"))
                configs[host] = replace(entry, tls=None)
    if config_path:
        _check_config_path_exclusive(registry, configs, base)
    return replace(
        base,
        mirrors=mirrors,
        configs=configs,
        headers=_decode_headers(registry, base),
        max_concurrent_downloads=mcd,
        config_path=config_path,
        ignored=tuple(ignored),
    )


def _check_config_path_exclusive(
    registry: Mapping[str, Any], configs: Mapping[str, HostConfig], base: RegistryConfig
) -> None:
    # containerd v1.7.34 pkg/cri/config/config.go ValidatePluginConfig (the same in 1.6;
    # v2.3.4 internal/cri/config ValidateImageConfig keeps the mirrors check): the CRI
    # plugin does not start. Mirrors of the profile's defaults do not count (the seed
    # has no config_path).
    if registry.get("mirrors"):
        raise ConfigError(
            "`mirrors` cannot be set when `config_path` is provided",
            key=base.key("mirrors"),
        )
    for host, entry in configs.items():
        if entry.tls is not None:
            raise ConfigError(
                "`configs.tls` cannot be set when `config_path` is provided",
                key=base.key("configs", _quote_key(host), "tls"),
            )


def _decode_mirrors(
    registry: Mapping[str, Any], base: RegistryConfig
) -> dict[str, tuple[str, ...]]:
    mirrors: dict[str, tuple[str, ...]] = {}
    for host, entry in _table(registry.get("mirrors", {}), base.key("mirrors")).items():
        where = base.key("mirrors", _quote_key(host))
        body = _table(entry, where)
        _only_keys(body, ("endpoint",), where)
        # A key without `endpoint` still exists and suppresses "*" (behaviors.md EP-001).
        mirrors[host] = _string_list(body.get("endpoint", []), f"{where}.endpoint")
    return mirrors


def _decode_configs(
    registry: Mapping[str, Any], base: RegistryConfig
) -> dict[str, HostConfig]:
    configs: dict[str, HostConfig] = {}
    for host, entry in _table(registry.get("configs", {}), base.key("configs")).items():
        where = base.key("configs", _quote_key(host))
        body = _table(entry, where)
        _only_keys(body, ("tls", "auth"), where)
        tls = None
        if "tls" in body:
            tls = _decode_tls(_table(body["tls"], f"{where}.tls"), f"{where}.tls")
        auth = None
        if "auth" in body:
            auth = _decode_auth(_table(body["auth"], f"{where}.auth"), f"{where}.auth")
        configs[host] = HostConfig(
            tls=tls, auth=auth, auth_key=f"{where}.auth" if auth else ""
        )
    return configs


def _decode_tls(body: Mapping[str, Any], where: str) -> TLSConfig:
    _only_keys(body, _TLS_KEYS, where)
    skip = body.get("insecure_skip_verify", False)
    if not isinstance(skip, bool):
        key = f"{where}.insecure_skip_verify"
        raise ConfigError(f"{key} must be a boolean", key=key)
    return TLSConfig(
        ca_file=_string(body, "ca_file", where),
        cert_file=_string(body, "cert_file", where),
        key_file=_string(body, "key_file", where),
        insecure_skip_verify=skip,
    )


def _decode_auth(body: Mapping[str, Any], where: str) -> AuthConfig:
    _only_keys(body, _AUTH_KEYS, where)
    # cri@ab6701bd helpers.go toRuntimeAuthConfig: no server_address is carried over, so a
    # configured credential is never filtered by host (AUTH-002 does not apply to it).
    return AuthConfig(
        username=_string(body, "username", where),
        password=_string(body, "password", where),
        auth=_string(body, "auth", where),
        identity_token=_string(body, "identitytoken", where),
    )


def _convert_auths(
    registry: Mapping[str, Any],
    base: RegistryConfig,
    profile: Profile,
    configs: dict[str, HostConfig],
) -> None:
    """Fold the deprecated ``registry.auths`` into ``configs`` (CFG-003)."""
    auths = _table(registry.get("auths", {}), base.key("auths"))
    for name, entry in auths.items():
        where = base.key("auths", _quote_key(name))
        auth = _decode_auth(_table(entry, where), where)
        key = name
        if profile.auths_conversion_fixed:
            # behaviors.md CFG-003; containerd PR #4987: a URL key is reduced to its host.
            key = _auths_key_host(name, where)
        # else: the seed keeps the key verbatim (`https://gcr.io`), so it never matches an
        # endpoint host (HOST-004) -- a functional quirk we reproduce.
        # Deviation: the seed stored `&auth` of the shared range variable, so every
        # converted entry pointed at the last credential iterated (CFG-003, a credential
        # leak between registries). The reference gives each entry its own credential in
        # every profile.
        previous = configs.get(key, HostConfig())
        configs[key] = replace(previous, auth=auth, auth_key=where)


def _auths_key_host(name: str, where: str) -> str:
    try:
        url = parse_go_url(name)
    except URLError as exc:
        # containerd 1.6 pkg/cri/config/config.go ValidatePluginConfig
        raise ConfigError(
            f"failed to parse registry url {go_quote(name)} from `registry.auths`: {exc}",
            key=where,
        ) from exc
    return url.host if url.scheme else name


def _decode_headers(
    registry: Mapping[str, Any], base: RegistryConfig
) -> dict[str, tuple[str, ...]]:
    headers: dict[str, tuple[str, ...]] = {}
    for name, values in _table(
        registry.get("headers", {}), base.key("headers")
    ).items():
        headers[name] = _string_list(values, base.key("headers", _quote_key(name)))
    return headers


def _table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table", key=where)
    return value


def _only_keys(body: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for name in body:
        if name not in allowed:
            key = f"{where}.{name if _BARE_KEY.fullmatch(name) else _quote_key(name)}"
            expected = ", ".join(allowed)
            raise ConfigError(
                f"unknown key {key} (expected one of: {expected})", key=key
            )


def _string(body: Mapping[str, Any], name: str, where: str) -> str:
    value = body.get(name, "")
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{name} must be a string", key=f"{where}.{name}")
    return value


def _string_list(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where} must be a list of strings", key=where)
