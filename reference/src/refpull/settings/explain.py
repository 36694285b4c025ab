"""``explain``: what a pull of an image would do before it sends a single request.

A pure summary, for people and for tests: the normalized reference, the ordered endpoints
with scheme, host, path and query, their TLS settings, whether and which credentials would
be offered to each (never the secrets themselves), and the error the pull would fail with
before any network I/O (EP-007), and for every setting the file and key it came from
(``config.toml`` or a hosts.toml of ``config_path``). The only I/O is reading the files
named by the config, as :func:`refpull.settings.hosts.registry_hosts` does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from refpull.errors import ConfigError, InvalidAuth, InvalidReference
from refpull.gocompat.gourl import go_quote
from refpull.gocompat.imageref import parse_for_profile, split_registry_host
from refpull.profiles import Profile
from refpull.settings.config import RegistryConfig
from refpull.settings.credentials import AuthConfig
from refpull.settings.hosts import (
    CredentialsSource,
    RegistryHost,
    credentials_for,
    registry_hosts,
)
from refpull.settings.hoststoml import configure_hosts
from refpull.settings.tlsconfig import count_pem_certificates

__all__ = ["EndpointExplanation", "Explanation", "explain"]


@dataclass(frozen=True, kw_only=True)
class EndpointExplanation:
    """One endpoint, in the order the pull would try it.

    Attributes:
        url: the manifest URL the resolver would request first on this endpoint.
        credentials: ``offered``, ``not offered``, ``anonymous`` or ``unusable``.
        credential_kind: ``username/password``, ``identity token``, ``username only``
            or ``""`` -- never a value.
        header_names: names of the configured extra headers sent (HOST-008).
        capabilities: what the endpoint is used for (``pull``, ``resolve``; HOST-011).
        http_fallback: https is tried first, then plain http (HOST-012).
        sources: ``(setting, "file: key")`` pairs: where each setting came from.
    """

    endpoint: str
    scheme: str
    host: str
    path: str
    query: str
    url: str
    is_mirror: bool
    ca_file: str
    cert_file: str
    key_file: str
    skip_verify: bool
    runtime_skips_verify: bool
    credentials_source: str
    credentials: str
    credential_kind: str
    header_names: tuple[str, ...]
    capabilities: tuple[str, ...]
    http_fallback: bool
    sources: tuple[tuple[str, str], ...]
    notes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Explanation:
    """The plan of one pull.

    Attributes:
        error: the message the pull would fail with before any network I/O, composed
            as the runtime composes it, or ``None``.
        error_key: the configuration key responsible for ``error``, when known.
        config_source: the config file read (``""``: built-in defaults).
        host_dir: the hosts.toml directory used (``config_path`` mode), else ``None``.
    """

    image: str
    profile: str
    reference: str | None
    registry_host: str | None
    repository: str | None
    object: str | None
    max_concurrent_downloads: int
    endpoints: tuple[EndpointExplanation, ...]
    error: str | None
    error_key: str | None
    notes: tuple[str, ...]
    config_source: str = ""
    host_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return asdict(self)


def explain(
    image: str, config: RegistryConfig, auth: AuthConfig | None, profile: Profile
) -> Explanation:
    """Explain how *image* would be pulled with *config* and *auth* under *profile*.

    Args:
        image: the image string of the CRI request.
        config: the runtime's registry configuration.
        auth: the CRI request's AuthConfig, or ``None``.
        profile: the runtime generation to model.

    Returns:
        The :class:`Explanation`; problems are reported in it, never raised.
    """
    base: dict[str, Any] = {
        "image": image,
        "profile": profile.name,
        "max_concurrent_downloads": config.max_concurrent_downloads,
        "config_source": config.source,
    }
    try:
        ref = str(parse_for_profile(image, profile))
        location = split_registry_host(ref)
    except InvalidReference as exc:
        # cri@ab6701bd PullImage: `failed to parse image reference %q: %w`
        message = f"failed to parse image reference {go_quote(image)}: {exc.reason}"
        return _failed(base, message, None, ref=None)
    base.update(
        reference=ref,
        registry_host=location.host,
        repository=location.repository,
        object=location.object,
    )
    notes = _config_notes(config, profile)
    try:
        if config.config_path:
            plan = configure_hosts(location.host, config.config_path, profile)
            base["host_dir"] = plan.host_dir
            notes += list(plan.notes)
            if plan.host_dir is None:
                notes.append(
                    f"no host directory for {location.host} under config_path "
                    f"{config.config_path}: the default host only (HOST-010)"
                )
        hosts = registry_hosts(location.host, config, auth, profile)
    except ConfigError as exc:
        # behaviors.md ERR-003 / TLS section: the hosts error surfaces through Resolve.
        message = (
            f"failed to pull and unpack image {go_quote(ref)}: "
            f"failed to resolve reference {go_quote(ref)}: {exc}"
        )
        return _failed(base, message, exc.key, ref=ref, notes=notes)
    endpoints = tuple(_endpoint(h, location.repository, location.object) for h in hosts)
    notes += _list_notes(hosts, auth)
    return Explanation(
        **base, endpoints=endpoints, error=None, error_key=None, notes=tuple(notes)
    )


def _failed(
    base: dict[str, Any],
    message: str,
    key: str | None,
    *,
    ref: str | None,
    notes: list[str] | None = None,
) -> Explanation:
    fields: dict[str, Any] = {
        "reference": ref,
        "registry_host": None,
        "repository": None,
        "object": None,
    }
    fields.update(base)
    return Explanation(
        **fields, endpoints=(), error=message, error_key=key, notes=tuple(notes or ())
    )


def _manifest_url(host: RegistryHost, repository: str, obj: str) -> str:
    # RES-001/RES-005: tags and digests are both looked up under /manifests/.
    return host.request_url(repository, "manifests", obj.removeprefix("@"))


def _endpoint(host: RegistryHost, repository: str, obj: str) -> EndpointExplanation:
    offered, kind, notes = _credentials(host)
    tls = host.tls
    if tls is not None and tls.ca_file:
        notes += _ca_notes(tls.ca_file)
    if host.runtime_skips_verify and not host.skip_verify:
        notes.append(
            "the runtime disables TLS verification for redirects from this loopback "
            "http endpoint (HOST-009); the reference keeps verifying"
        )
    if host.scheme_error is not None:
        notes.append(
            f"every request to this endpoint fails: {host.scheme_error} (EP-006)"
        )
    return EndpointExplanation(
        endpoint=host.endpoint,
        scheme=host.scheme,
        host=host.host,
        path=host.path,
        query=host.query,
        url=_manifest_url(host, repository, obj),
        is_mirror=host.is_mirror,
        ca_file=tls.ca_file if tls else "",
        cert_file=tls.cert_file if tls else "",
        key_file=tls.key_file if tls else "",
        skip_verify=host.skip_verify,
        runtime_skips_verify=host.runtime_skips_verify,
        credentials_source=str(host.credentials_source),
        credentials=offered,
        credential_kind=kind,
        header_names=tuple(dict.fromkeys(name for name, _ in host.headers)),
        capabilities=tuple(sorted(host.capabilities)),
        http_fallback=host.http_fallback,
        sources=host.sources,
        notes=tuple(notes),
    )


def _credentials(host: RegistryHost) -> tuple[str, str, list[str]]:
    if host.credentials_source is CredentialsSource.NONE:
        return "anonymous", "", []
    try:
        # The challenge comes from the endpoint itself (AUTH-006, AUTH-010).
        creds = credentials_for(host, host.host)
    except InvalidAuth as exc:
        note = f"the credential is unusable ({exc}); pulls fail at the first 401 (AUTH-006)"
        return "unusable", "", [note]
    if not creds:
        note = "the credential does not apply to this host (server_address, AUTH-002)"
        if host.auth is not None and not host.auth.server_address:
            note = "the credential is empty: requests stay anonymous (AUTH-007)"
        return "not offered", "", [note]
    if creds.username and creds.secret:
        kind = "username/password"
    elif creds.secret:
        kind = "identity token"
    else:
        kind = "username only"
    return "offered", kind, []


def _ca_notes(ca_file: str) -> list[str]:
    try:
        count = count_pem_certificates(Path(ca_file).read_bytes())
    except OSError:  # pragma: no cover - registry_hosts already read it
        return []
    if count:
        return []
    return [
        f"ca_file {ca_file} holds no usable certificate; the runtime ignores that "
        "silently and verifies against the system roots only (TLS-003)"
    ]


def _config_notes(config: RegistryConfig, profile: Profile) -> list[str]:
    notes = [
        f"{key} is not read by the {profile.name} profile's runtime (ignored)"
        for key in config.ignored
    ]
    if config.headers and not profile.registry_headers:
        notes.append(
            f"registry.headers are not sent in the {profile.name} profile (HOST-008)"
        )
    return notes


def _list_notes(hosts: list[RegistryHost], auth: AuthConfig | None) -> list[str]:
    notes = []
    endpoints = [h.endpoint for h in hosts]
    if len(set(endpoints)) != len(endpoints):
        notes.append("an endpoint is listed twice and will be tried twice (EP-003)")
    if auth is not None and not auth.server_address and any(h.is_mirror for h in hosts):
        notes.append(
            "the request's credentials have no server_address: the reference offers "
            "them to the registry's own endpoints only, containerd to every mirror "
            "too (AUTH-008, a security finding)"
        )
    return notes
