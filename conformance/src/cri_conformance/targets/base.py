"""What the suite asks of a target, and what it gets back.

A target is a CRI runtime seen from outside: it can pull, show, list and remove images,
and (when the suite manages it) be given a registry configuration and an environment.
Scenarios use only this interface and the registry-sim journal (STYLE.md point 13):
never a runtime's error *text*, only gRPC codes and observable state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "AuthSpec",
    "Capability",
    "HostSettings",
    "ImageInfo",
    "RegistrySetup",
    "Target",
    "TargetCrashed",
    "TargetEnvironment",
    "TargetError",
    "TargetRefused",
]


class TargetError(Exception):
    """A CRI call failed: ``code`` is the gRPC status code name (``NOT_FOUND``, ``UNKNOWN`` …)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class TargetCrashed(Exception):
    """The target process died or its socket dropped during a case."""

    def __init__(self, message: str, *, log_tail: str = "") -> None:
        self.log_tail = log_tail
        super().__init__(message)


class TargetRefused(TargetCrashed):
    """The runtime started but would not serve CRI with the configuration it was given.

    What a client sees of a containerd whose CRI plugin failed its configuration check
    (CFG-006: the process runs, the CRI service is never registered) or of a reference
    whose configuration was refused. The message carries the runtime's own reason, as
    evidence for a reader; scenarios assert the refusal, never its text (STYLE 13).
    """


class Capability:
    """Names of optional target abilities a scenario may require."""

    CONFIGURE_REGISTRIES = "configure-registries"
    PROXY_ENVIRONMENT = "proxy-environment"
    RESTART = "restart"


@dataclass(frozen=True)
class AuthSpec:
    """A registry credential as containerd's ``configs."<host>".auth`` table holds it."""

    username: str = ""
    password: str = ""
    auth: str = ""
    identitytoken: str = ""


@dataclass(frozen=True)
class HostSettings:
    """``configs."<host>"``: TLS files and a credential for one endpoint host."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_skip_verify: bool = False
    auth: AuthSpec | None = None

    @property
    def has_tls(self) -> bool:
        return bool(
            self.ca_file or self.cert_file or self.key_file or self.insecure_skip_verify
        )


@dataclass(frozen=True)
class RegistrySetup:
    """The registry section a scenario group needs: mirrors and per-host settings."""

    mirrors: Mapping[str, Sequence[str]] = field(default_factory=dict)
    configs: Mapping[str, HostSettings] = field(default_factory=dict)
    max_concurrent_downloads: int | None = None
    #: ``registry.headers`` (containerd 1.5+; HOST-008): name -> values.
    headers: Mapping[str, Sequence[str]] = field(default_factory=dict)
    #: deprecated ``registry.auths`` (CFG-003): key as written -> credential.
    auths: Mapping[str, AuthSpec] = field(default_factory=dict)
    #: ``host:port`` of registries served over plain http (or with certificates
    #: nobody verifies): a runtime that speaks https by default must be told (CRI-O:
    #: ``insecure = true`` in registries.conf); containerd needs nothing for loopback.
    insecure_hosts: Sequence[str] = ()
    #: raw hosts.toml files: host namespace directory (``127.0.0.1:5000``,
    #: ``_default``) -> file text; written under ``config_path`` by runtimes that read it.
    hosts_toml: Mapping[str, str] = field(default_factory=dict)
    #: how to configure registries: ``tables``, ``hosts`` (hosts.toml) or None (the
    #: runtime's own default); ``--registry-config-style`` overrides it.
    config_style: str | None = None
    #: render ``mirrors`` and ``configs.*.tls`` as the deprecated tables *and* set
    #: ``config_path`` for ``hosts_toml``, whatever the style (CFG-006: what a runtime
    #: does with both); a generation without ``config_path`` cannot say it.
    tables_beside_config_path: bool = False

    def merged(self, other: RegistrySetup) -> RegistrySetup:
        """Combine two setups; a host configured differently by both is an error."""
        mirrors = dict(self.mirrors)
        for host, endpoints in other.mirrors.items():
            if host in mirrors and list(mirrors[host]) != list(endpoints):
                raise ValueError(f"conflicting mirror configuration for {host!r}")
            mirrors[host] = list(endpoints)
        configs = dict(self.configs)
        for host, settings in other.configs.items():
            if host in configs and configs[host] != settings:
                raise ValueError(f"conflicting host configuration for {host!r}")
            configs[host] = settings
        headers = {**self.headers, **other.headers}
        auths = {**self.auths, **other.auths}
        insecure = tuple(dict.fromkeys([*self.insecure_hosts, *other.insecure_hosts]))
        mcd = other.max_concurrent_downloads or self.max_concurrent_downloads
        hosts_toml = dict(self.hosts_toml)
        for namespace, text in other.hosts_toml.items():
            if hosts_toml.get(namespace, text) != text:
                raise ValueError(f"conflicting hosts.toml for {namespace!r}")
            hosts_toml[namespace] = text
        return RegistrySetup(
            mirrors=mirrors,
            configs=configs,
            max_concurrent_downloads=mcd,
            headers=headers,
            auths=auths,
            insecure_hosts=insecure,
            hosts_toml=hosts_toml,
            config_style=other.config_style or self.config_style,
            tables_beside_config_path=self.tables_beside_config_path
            or other.tables_beside_config_path,
        )


@dataclass(frozen=True)
class TargetEnvironment:
    """Process environment a managed target runs with (loopback only)."""

    http_proxy: str | None = None
    ca_bundle: str | None = None
    no_proxy: str = ""

    def as_environ(self) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.http_proxy:
            for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
                env[name] = self.http_proxy
        env["NO_PROXY"] = env["no_proxy"] = self.no_proxy
        if self.ca_bundle:
            env["SSL_CERT_FILE"] = self.ca_bundle
        return env


@dataclass(frozen=True)
class ImageInfo:
    """What ``ImageStatus``/``ListImages`` tell about one image."""

    id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    size: int
    uid: int | None = None
    username: str = ""
    info: Mapping[str, str] = field(default_factory=dict)


class Target(Protocol):
    """A CRI image service under test."""

    name: str
    profile: str
    capabilities: frozenset[str]

    def pull(
        self,
        image: str,
        auth: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> str:
        """PullImage; returns ``image_ref``. Raises TargetError or TargetCrashed.

        *timeout* is the call's deadline in seconds (None: the target's default), as
        a CRI client gives it: when it passes, the caller stops waiting and gets
        ``DEADLINE_EXCEEDED`` (or the runtime's own code, if it answers first), and
        the runtime is told the call ended (XPORT-010).
        """
        ...

    def status(self, image: str, *, verbose: bool = False) -> ImageInfo | None:
        """ImageStatus; None when the image is unknown."""
        ...

    def list(self) -> list[ImageInfo]:
        """ListImages."""
        ...

    def remove(self, image: str) -> None:
        """RemoveImage."""
        ...

    def close(self) -> None:
        """Release the target (stop a managed process)."""
        ...
