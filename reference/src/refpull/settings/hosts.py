"""Endpoint selection and per-endpoint host construction (EP-001..EP-007, HOST-001..HOST-009).

The reference's ``registryEndpoints``, ``defaultScheme`` and ``registryHosts``
(cri@ab6701bd ``pkg/server/image_pull.go``; containerd 1.6.20
``pkg/cri/server/image_pull.go``, legacy ``mirrors``/``configs`` mode). Everything here is
computed from strings and the configuration; the only I/O is reading the TLS files named
in the configuration, which the runtime also does every time it builds its hosts
(TLS-005, EP-007). Nothing opens a socket.

With ``registry.config_path`` set, the endpoints come from hosts.toml directories instead
(:mod:`refpull.settings.hoststoml`, HOST-010..HOST-014); credentials and headers bind the same way.

Credential binding (AUTH-006..AUTH-010) is decided here and applied lazily by
:func:`credentials_for`, which the pull pipeline calls only after a 401 challenge.
"""

from __future__ import annotations

import enum
import ssl
from dataclasses import dataclass, field
from urllib.parse import quote_plus

from refpull.errors import ConfigError
from refpull.gocompat.gonet import is_loopback_ip, parse_ip, path_join, split_host_port
from refpull.gocompat.gourl import URLError, go_quote
from refpull.gocompat.gourl import parse as parse_go_url
from refpull.profiles import SEED, Profile
from refpull.settings.config import RegistryConfig, TLSConfig
from refpull.settings.credentials import AuthConfig, Credentials, parse_auth
from refpull.settings.hoststoml import HostsEntry, configure_hosts, ssl_context_for
from refpull.settings.tlsconfig import ssl_context

__all__ = [
    "CredentialsSource",
    "RegistryHost",
    "credentials_for",
    "default_host",
    "default_scheme",
    "redact_endpoint",
    "registry_endpoints",
    "registry_hosts",
]

_DOCKER_HUB = "docker.io"
_DOCKER_HUB_API = "registry-1.docker.io"


def _strip_port(host: str) -> str:
    try:
        return split_host_port(host)[0]
    except ValueError:
        # The seed compares the raw text when SplitHostPort fails: "::1" still matches.
        return host


def _is_local_host(host: str, profile: Profile) -> bool:
    bare = _strip_port(host)
    if profile.loopback_any_ip_is_http:
        # containerd 1.6 isLocalHost / docker.IsLocalhost: `localhost` or any loopback IP.
        ip = parse_ip(bare)
        return bare == "localhost" or (ip is not None and is_loopback_ip(ip))
    # behaviors.md EP-004; cri@ab6701bd defaultScheme: three exact names only.
    return bare in ("localhost", "127.0.0.1", "::1")


def default_scheme(host: str, profile: Profile) -> str:
    """The scheme of a registry's default endpoint (EP-004).

    Args:
        host: registry ``host[:port]`` as written in the reference.
        profile: seed = exact ``localhost``/``127.0.0.1``/``::1``; 1.6 = any loopback IP.

    Returns:
        ``"http"`` for local registries, else ``"https"`` (no fallback between them).
    """
    return "http" if _is_local_host(host, profile) else "https"


def default_host(host: str) -> str:
    """``docker.DefaultHost``: Docker Hub's API host; every other host maps to itself (EP-005)."""
    return _DOCKER_HUB_API if host == _DOCKER_HUB else host


def _url_error(exc: URLError, profile: Profile) -> str:
    # behaviors.md ERR-003: Go >= 1.14 quotes the URL, the seed's toolchain did not.
    return exc.message(
        quoted=profile.quoted_urls_in_errors, url=redact_endpoint(exc.url)
    )


def redact_endpoint(endpoint: str) -> str:
    """Mask the password of ``scheme://user:password@host`` (Go's ``URL.Redacted``).

    The runtime prints endpoints verbatim in its errors; the reference does not.

    Args:
        endpoint: an endpoint string, parseable or not.

    Returns:
        The text with the password replaced by ``xxxxx``.
    """
    # Deviation: a password written into a mirror URL must never reach an error
    # message or a log, so every endpoint shown by refpull goes through here.
    start = endpoint.find("://")
    if start < 0:
        return endpoint
    start += 3
    cuts = [i for i in (endpoint.find(c, start) for c in "/?#") if i >= 0]
    end = min(cuts, default=len(endpoint))
    at = endpoint.rfind("@", start, end)
    colon = endpoint.find(":", start, at) if at >= 0 else -1
    if colon < 0:
        return endpoint
    return f"{endpoint[: colon + 1]}xxxxx{endpoint[at:]}"


def _add_default_scheme(endpoint: str, profile: Profile) -> str:
    # containerd 1.6 addDefaultScheme (behaviors.md EP-006 Δ1.6).
    if "://" in endpoint:
        return endpoint
    try:
        url = parse_go_url("dummy://" + endpoint)
    except URLError as exc:
        raise ConfigError(f"parse endpoint url: {_url_error(exc, profile)}") from exc
    return f"{default_scheme(url.host, profile)}://{endpoint}"


def registry_endpoints(
    host: str, config: RegistryConfig, profile: Profile
) -> list[str]:
    """The ordered endpoint URLs for registry *host* (EP-001..EP-003, EP-006).

    Args:
        host: the registry host of the normalized reference (case and port kept).
        config: mirrors come from here.
        profile: EP-006 (scheme-less endpoints) differs.

    Returns:
        Configured endpoints (exact key, else ``"*"``) followed by the default endpoint
        unless one configured endpoint's URL host equals *host*. Endpoints after that
        match are returned unparsed, exactly as the seed does.

    Raises:
        ConfigError: ``parse endpoint url: ...`` for an endpoint Go cannot parse.
    """
    # behaviors.md EP-001: exact key first (an empty list still counts), then "*".
    key = host if host in config.mirrors else "*"
    endpoints = list(config.mirrors.get(key, ()))
    where = config.key("mirrors", go_quote(key), "endpoint")
    if profile.schemeless_endpoint_gets_default_scheme:
        try:
            endpoints = [_add_default_scheme(e, profile) for e in endpoints]
        except ConfigError as exc:
            raise ConfigError(str(exc), key=where) from exc
    default = default_host(host)
    for endpoint in endpoints:
        try:
            url = parse_go_url(endpoint)
        except URLError as exc:
            msg = f"parse endpoint url: {_url_error(exc, profile)}"
            raise ConfigError(msg, key=where) from exc
        if url.host == host:
            # behaviors.md EP-002: compared with the *registry* host, not the default
            # host, hence the duplicated Docker Hub endpoint of EP-003.
            return endpoints
    return [*endpoints, f"{default_scheme(default, profile)}://{default}"]


class CredentialsSource(enum.StrEnum):
    """Which credential an endpoint's authorizer would use (AUTH-007, AUTH-009)."""

    CRI_REQUEST = "cri-request"
    REGISTRY_CONFIG = "registry-config"
    NONE = "none"


@dataclass(frozen=True, kw_only=True)
class RegistryHost:
    """One endpoint of a registry, as the resolver and fetcher use it.

    Every endpoint may resolve tags and pull (HOST-003). Requests go to
    ``scheme://host`` + ``path`` joined with the repository (HOST-001/002);
    :meth:`request_url` builds them.

    Attributes:
        endpoint: the endpoint string from :func:`registry_endpoints`, password masked.
        scheme, host, path: from Go's ``url.Parse``; ``path`` defaults to ``/v2`` only
            when empty (``/`` stays ``/``, HOST-002). User info, query and fragment of
            the endpoint are dropped (HOST-001).
        tls: ``configs."<endpoint host>".tls`` (HOST-004), or ``None``.
        skip_verify: whether the reference turns off certificate verification here
            (only ``insecure_skip_verify``, TLS-004).
        runtime_skips_verify: whether the modelled runtime does (adds HOST-009).
        auth: the AuthConfig offered after a challenge, or ``None``.
        credentials_source: where ``auth`` came from.
        is_mirror: the endpoint host is not the registry's own host (``isProxy``).
        ns: the ``ns`` query value for registry requests (HOST-007), or ``None``.
        headers: extra ``(name, value)`` pairs for registry requests -- not for token
            requests (HOST-008).
        capabilities: what the endpoint is trusted for (HOST-003).
        ssl_context: the verified-on-construction TLS context (``None`` without tls).
        profile: the profile the host was built for (error wording of ``parse_auth``).
        http_fallback: https first, plain http when the server does not speak TLS
            (hosts.toml mode, HOST-012).
        sources: ``(setting, where)`` pairs naming the file and key each setting of
            this endpoint came from, for ``refpull explain``.
    """

    endpoint: str
    scheme: str
    host: str
    path: str
    tls: TLSConfig | None = None
    skip_verify: bool = False
    runtime_skips_verify: bool = False
    auth: AuthConfig | None = None
    credentials_source: CredentialsSource = CredentialsSource.NONE
    is_mirror: bool = False
    ns: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    # behaviors.md HOST-003: every endpoint, wildcard mirrors included, may resolve tags
    # (legacy mode grants Resolve|Pull to all). Kept in every profile: withholding it
    # would make mirror-only (air-gapped) setups unable to pull by tag at all.
    capabilities: frozenset[str] = frozenset({"resolve", "pull"})
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False, repr=False)
    profile: Profile = field(default=SEED, compare=False, repr=False)
    http_fallback: bool = False
    sources: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @property
    def scheme_error(self) -> str | None:
        """Go's request error for a scheme it cannot speak (EP-006 in the seed), else None."""
        if self.scheme in ("http", "https"):
            return None
        return f"unsupported protocol scheme {go_quote(self.scheme)}"

    def request_url(self, repository: str, *parts: str) -> str:
        """The URL of a registry request on this endpoint.

        Args:
            repository: repository path (``library/busybox``).
            parts: the rest, e.g. ``"manifests", "latest"``.

        Returns:
            ``scheme://host`` + Go ``path.Join("/", path, repository, *parts)``, plus
            ``?ns=<registry host>`` for mirrors in containerd 1.6 (HOST-007).
        """
        # resolver.go dockerBase.request (1.6.20 to 2.3.4) roots the join at "/": an
        # empty path (hosts.toml override_path on a bare URL) still gives /<repository>.
        joined = path_join("/", self.path, repository, *parts)
        url = f"{self.scheme}://{self.host}{'' if joined == '/' else joined}"
        return f"{url}?{self.query}" if self.query else url

    @property
    def query(self) -> str:
        """The query of every registry request here: ``ns=<registry host>`` or ``""``."""
        if self.ns is None:
            return ""
        # containerd 1.6 request.addNamespace; url.Values.Encode escapes ":" as %3A.
        return "ns=" + quote_plus(self.ns, safe="")


def _is_proxy(ref_host: str, endpoint_host: str) -> bool:
    # containerd 1.6 RegistryHost.isProxy: Docker Hub's own API host is not a mirror.
    if ref_host == endpoint_host:
        return False
    return not (ref_host == _DOCKER_HUB and endpoint_host == _DOCKER_HUB_API)


def registry_hosts(
    host: str, config: RegistryConfig, auth: AuthConfig | None, profile: Profile
) -> list[RegistryHost]:
    """Build every endpoint of registry *host*, validating all of them first (EP-007).

    Args:
        host: the registry host of the normalized reference.
        config: mirrors, per-endpoint configs and headers.
        auth: the CRI request's AuthConfig (``None`` when the request carried none).
        profile: HOST-005, HOST-007, HOST-008, HOST-009 and EP-004/EP-006 differ.

    Returns:
        One :class:`RegistryHost` per endpoint, in endpoint order.

    Raises:
        ConfigError: with the runtime's message composition, before any network I/O:
            ``get registry endpoints: ...``, ``parse registry endpoint "<e>" from
            mirrors: ...``, ``tls provided for http endpoint "<e>"`` (seed, HOST-005),
            ``get TLSConfig for registry "<e>": ...`` (TLS-001..003); in hosts.toml
            mode, hosts.go's TLS file errors (HOST-014).
    """
    if config.config_path:
        plan = configure_hosts(host, config.config_path, profile)
        return [_toml_host(host, e, config, auth, profile) for e in plan.entries]
    try:
        endpoints = registry_endpoints(host, config, profile)
    except ConfigError as exc:
        raise ConfigError(f"get registry endpoints: {exc}", key=exc.key) from exc
    key = host if host in config.mirrors else "*"
    configured = len(config.mirrors.get(key, ()))
    where = _where(config, config.key("mirrors", go_quote(key), "endpoint"))
    built = []
    for index, endpoint in enumerate(endpoints):
        origin = where if index < configured else "default endpoint (EP-002, EP-005)"
        built.append(_registry_host(host, endpoint, config, auth, profile, origin))
    return built


def _where(config: RegistryConfig, key: str) -> str:
    return f"{config.source}: {key}" if config.source else key


def _toml_host(
    ref_host: str,
    entry: HostsEntry,
    config: RegistryConfig,
    auth: AuthConfig | None,
    profile: Profile,
) -> RegistryHost:
    # containerd v1.7.34 remotes/docker/config/hosts.go ConfigureHosts; the CRI plugin
    # (pkg/cri/server/image_pull.go registryHosts) gives every host the request's
    # credential, else `configs."<challenging host>".auth` -- bound as in legacy mode.
    # Deviation: the runtime disables verification for a loopback registry's default
    # host (HOST-012); the reference verifies unless the operator wrote skip_verify.
    context = ssl_context_for(entry) if entry.explicit_tls else None
    host_config = config.configs.get(entry.host)
    mirror = _is_proxy(ref_host, entry.host)
    bound_auth, source = _bind_credentials(
        auth, host_config.auth if host_config else None, mirror=mirror
    )
    where = f"{entry.source}: {entry.key}" if entry.key else ""
    if not where:
        where = f"{entry.source}: root settings" if entry.source else "built in"
        where += " + default host (HOST-010)"
    sources = [("endpoint", where)]
    if entry.explicit_tls:
        sources.append(("tls", f"{entry.source}: {entry.key or 'root settings'}"))
    if bound_auth is not None and source is CredentialsSource.REGISTRY_CONFIG:
        sources.append(("credentials", _where(config, host_config.auth_key)))  # type: ignore[union-attr]
    global_headers = _header_pairs(config) if profile.registry_headers else ()
    if global_headers:
        sources.append(("headers", _where(config, config.key("headers"))))
    if entry.headers:
        sources.append(("headers", f"{entry.source}: {entry.key or 'root'}.header"))
    skip = bool(entry.skip_verify) and not entry.default_skip_verify
    tls = None
    if entry.explicit_tls:
        first = entry.client_pairs[0] if entry.client_pairs else ("", "")
        tls = TLSConfig(
            ca_file=entry.ca_files[0] if entry.ca_files else "",
            cert_file=first[0],
            key_file=first[1] or first[0] if first[0] else "",
            insecure_skip_verify=skip,
        )
    return RegistryHost(
        endpoint=f"{entry.scheme}://{entry.host}{entry.path}",
        scheme=entry.scheme,
        host=entry.host,
        path=entry.path,
        tls=tls,
        skip_verify=skip,
        runtime_skips_verify=bool(entry.skip_verify),
        auth=bound_auth,
        credentials_source=source,
        is_mirror=mirror,
        ns=ref_host if mirror and profile.mirror_ns_query else None,
        headers=global_headers + entry.headers,
        capabilities=frozenset(entry.capabilities & {"resolve", "pull", "push"}),
        ssl_context=context,
        profile=profile,
        http_fallback=entry.http_fallback,
        sources=tuple(sources),
    )


def _registry_host(
    ref_host: str,
    endpoint: str,
    config: RegistryConfig,
    auth: AuthConfig | None,
    profile: Profile,
    origin: str = "",
) -> RegistryHost:
    try:
        url = parse_go_url(endpoint)
    except URLError as exc:
        # Reached for endpoints after the one that matched the registry host (EP-002).
        msg = _url_error(exc, profile)
        shown = go_quote(redact_endpoint(endpoint))
        raise ConfigError(
            f"parse registry endpoint {shown} from mirrors: {msg}"
        ) from exc
    # behaviors.md HOST-004: configs are keyed by the *endpoint* host, port included.
    host_config = config.configs.get(url.host)
    tls = host_config.tls if host_config is not None else None
    tls_key = config.key("configs", go_quote(url.host), "tls")
    if (
        tls is not None
        and url.scheme != "https"
        and profile.tls_on_http_endpoint_is_error
    ):
        # behaviors.md HOST-005; cri@ab6701bd registryHosts
        shown = go_quote(redact_endpoint(endpoint))
        raise ConfigError(f"tls provided for http endpoint {shown}", key=tls_key)
    context = None
    if tls is not None:
        try:
            context = ssl_context(tls)
        except ConfigError as exc:
            shown = go_quote(redact_endpoint(endpoint))
            msg = f"get TLSConfig for registry {shown}: {exc}"
            raise ConfigError(msg, key=tls_key) from exc
    # behaviors.md HOST-009 (containerd 1.6): no tls + loopback registry + http endpoint
    # makes the runtime disable verification, which only bites when the endpoint
    # redirects to https.
    # Deviation: the reference records it but never disables verification it was not
    # told to disable (a security weakness): a redirect to https is verified.
    runtime_skips = (
        tls.insecure_skip_verify
        if tls is not None
        else profile.loopback_http_skips_verify
        and url.scheme == "http"
        and _is_local_host(ref_host, profile)
    )
    mirror = _is_proxy(ref_host, url.host)
    bound_auth, source = _bind_credentials(
        auth, host_config.auth if host_config else None, mirror=mirror
    )
    sources = [("endpoint", origin)] if origin else []
    if tls is not None:
        sources.append(("tls", _where(config, tls_key)))
    if host_config is not None and source is CredentialsSource.REGISTRY_CONFIG:
        sources.append(("credentials", _where(config, host_config.auth_key)))
    if config.headers and profile.registry_headers:
        sources.append(("headers", _where(config, config.key("headers"))))
    return RegistryHost(
        endpoint=redact_endpoint(endpoint),
        scheme=url.scheme,
        host=url.host,
        path=url.path or "/v2",  # behaviors.md HOST-002: only an *empty* path gets /v2
        tls=tls,
        skip_verify=tls.insecure_skip_verify if tls is not None else False,
        runtime_skips_verify=runtime_skips,
        auth=bound_auth,
        credentials_source=source,
        is_mirror=mirror,
        ns=ref_host if mirror and profile.mirror_ns_query else None,
        headers=_header_pairs(config) if profile.registry_headers else (),
        ssl_context=context,
        profile=profile,
        sources=tuple(sources),
    )


def _bind_credentials(
    request_auth: AuthConfig | None,
    configured: AuthConfig | None,
    *,
    mirror: bool,
) -> tuple[AuthConfig | None, CredentialsSource]:
    # behaviors.md AUTH-007: a non-nil CRI AuthConfig (even an empty one) wins over the
    # configured credential of the registry's own endpoints.
    # behaviors.md AUTH-008 (SECURITY; upstream-issues F-02): both runtimes offer CRI
    # credentials without server_address to every endpoint, mirrors included, although
    # kubelet only ever passes the pull secret of the image's own registry.
    # Deviation: the reference offers them to a mirror only when server_address is set
    # (then parse_auth matches it against the challenging host); a mirror otherwise
    # gets its own configured credential, if any -- as CRI-O does (c/image PR #625).
    if request_auth is not None and (not mirror or request_auth.server_address):
        return request_auth, CredentialsSource.CRI_REQUEST
    # behaviors.md AUTH-009: the seed assigned the first configured credential to the
    # closure variable shared by *all* authorizers, so every endpoint (mirrors and the
    # upstream, across resolve and fetch) used it. That leaks one registry's password to
    # another: a security weakness, never reproduced. Every profile binds a configured
    # credential to its own endpoint only (containerd 1.6's per-endpoint copy).
    if configured is not None:
        return configured, CredentialsSource.REGISTRY_CONFIG
    return None, CredentialsSource.NONE


def _header_pairs(config: RegistryConfig) -> tuple[tuple[str, str], ...]:
    # behaviors.md HOST-008: names are used verbatim (not canonicalized).
    return tuple(
        (name, value) for name, values in config.headers.items() for value in values
    )


def credentials_for(registry_host: RegistryHost, challenge_host: str) -> Credentials:
    """The credentials to answer a 401 challenge with (AUTH-006).

    Call only after a challenge, never pre-emptively: a malformed ``auth`` blob or
    ``server_address`` must fail only pulls from registries that challenge.

    Args:
        registry_host: the endpoint whose request was challenged.
        challenge_host: ``host[:port]`` of the response that carried the 401 (the
            endpoint host, not the token realm's host -- AUTH-010: whether a realm on
            another host may receive these is the auth flow's decision).

    Returns:
        ``parse_auth`` of the endpoint's bound AuthConfig for *challenge_host*;
        empty credentials when the endpoint has none.

    Raises:
        InvalidAuth: the bound AuthConfig cannot be used: an ``auth`` blob that does
            not decode (AUTH-003) or a ``server_address`` Go cannot parse (AUTH-002).
    """
    return parse_auth(registry_host.auth, challenge_host, profile=registry_host.profile)
