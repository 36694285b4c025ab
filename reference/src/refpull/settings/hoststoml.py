"""hosts.toml directories, the ``registry.config_path`` mode (CFG-004, HOST-010..HOST-014).

What containerd's CRI plugin does when ``config_path`` is set (containerd v1.7.34 and
v2.3.4 ``remotes/docker/config/hosts.go`` ``ConfigureHosts``, ``loadHostDir``,
``parseHostsFile``, ``parseHostConfig``, ``getSortedHosts``, ``loadCertFiles``;
``config_unix.go`` ``hostPaths``; the CRI plugin's ``hostDirFromRoots``; ``docs/hosts.md``):

* ``config_path`` is a ``:``-separated list of roots; for registry ``host[:port]`` the
  first existing directory among ``<root>/<host>_<port>_``, ``<root>/<host[:port]>`` and
  ``<root>/_default`` is the host directory (roots in order).
* The directory's ``hosts.toml`` lists ``[host."<url>"]`` entries, tried in file order,
  then the root-level ``server`` (or, without ``server``, the registry's default host),
  which takes the root-level settings. A missing, empty or undecodable ``hosts.toml``
  (an unknown capability, a wrong type, invalid TOML) is replaced by Docker's certificate
  layout in the same directory (``*.crt`` CA files, ``*.cert``/``*.key`` client pairs):
  containerd only logs the decode error.
* Unknown keys are ignored (go-toml is not strict): a misspelt ``skip-verify`` does
  nothing. Relative ``ca``/``client`` paths are relative to the host directory.

Everything here is pure but for reading the directory (as the runtime does on every pull).
"""

from __future__ import annotations

import os
import re
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from refpull.errors import ConfigError
from refpull.gocompat.gonet import is_loopback_ip, parse_ip, path_join, split_host_port
from refpull.gocompat.gourl import URLError, go_quote
from refpull.gocompat.gourl import parse as parse_go_url
from refpull.profiles import Profile
from refpull.settings.tlsconfig import count_pem_certificates

__all__ = [
    "HostsEntry",
    "HostsPlan",
    "configure_hosts",
    "find_host_dir",
    "host_directory",
    "parse_hosts_file",
    "ssl_context_for",
]

#: Every capability of a host that does not list its own (HOST-011).
ALL_CAPABILITIES = frozenset({"pull", "resolve", "push"})
_KNOWN_CAPABILITIES = ("pull", "resolve", "push", "referrers")
_TABLE_HEADER = re.compile(
    r"^[ \t]*\[(?!\[)(?P<key>[^\]\n]*(?:\"[^\"\n]*\"[^\]\n]*)*)\]"
)


class _Undecodable(ValueError):
    """A hosts.toml containerd would log and replace by the certificate layout."""


@dataclass(frozen=True, kw_only=True)
class HostsEntry:
    """One endpoint of a registry in hosts.toml mode, in the order it is tried.

    Attributes:
        scheme, host, path: where requests go (``path`` gets ``/v2`` unless
            ``override_path``, HOST-010).
        capabilities: ``pull``/``resolve``/``push`` (HOST-011).
        ca_files: CA bundles added to the system roots (``ca``).
        client_pairs: ``(cert, key)`` files; ``key`` ``""`` = the key is in ``cert``.
        skip_verify: ``skip_verify`` as written (``None`` = not set).
        headers: ``(name, value)`` pairs of the entry's ``[header]`` table.
        http_fallback: https is tried first, then plain http (HOST-012, 1.7+).
        source: the file the entry came from (``""``: built in).
        key: its table: ``host."<url>"``, ``server``, or ``""`` for the default host.
        default_skip_verify: ``skip_verify`` was set by the runtime for a loopback
            default host, not by the operator (HOST-012).
    """

    scheme: str
    host: str
    path: str
    capabilities: frozenset[str] = ALL_CAPABILITIES
    ca_files: tuple[str, ...] = ()
    client_pairs: tuple[tuple[str, str], ...] = ()
    skip_verify: bool | None = None
    headers: tuple[tuple[str, str], ...] = ()
    http_fallback: bool = False
    source: str = ""
    key: str = ""
    default_skip_verify: bool = False

    @property
    def explicit_tls(self) -> bool:
        """TLS was configured for this entry (``ca``, ``client`` or ``skip_verify``)."""
        return bool(self.ca_files or self.client_pairs) or self.skip_verify is not None


@dataclass(frozen=True, kw_only=True)
class HostsPlan:
    """The endpoints of one registry and how they were found.

    Attributes:
        host_dir: the host directory used, or ``None`` (no directory: defaults only).
        entries: the endpoints in order.
        notes: what an operator should know (a decode error containerd only logs).
    """

    host_dir: str | None
    entries: tuple[HostsEntry, ...]
    notes: tuple[str, ...] = ()


def split_config_path(config_path: str) -> list[str]:
    """Go's ``filepath.SplitList`` on Unix: ``""`` is no root, else split on ``:``."""
    return config_path.split(os.pathsep) if config_path else []


def host_directory(host: str) -> str:
    """``hostDirectory``: ``host:port`` becomes ``host_port_`` (the last colon only)."""
    index = host.rfind(":")
    if index > 0:
        return f"{host[:index]}_{host[index + 1 :]}_"
    return host


def _host_paths(root: str, host: str) -> list[str]:
    # config_unix.go hostPaths: the `_port_` spelling first, then the host, then _default.
    converted = host_directory(host)
    paths = [os.path.join(root, converted)] if converted != host else []
    return [*paths, os.path.join(root, host), os.path.join(root, "_default")]


def find_host_dir(roots: list[str], host: str) -> str | None:
    """The host directory of *host*: the first existing path, root by root (HOST-010).

    Raises:
        ConfigError: a path exists but cannot be examined (not "does not exist").
    """
    for root in roots:
        for candidate in _host_paths(root, host):
            try:
                os.stat(candidate)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ConfigError(f"stat {candidate}: {exc.strerror}") from exc
            return candidate
    return None


def configure_hosts(host: str, config_path: str, profile: Profile) -> HostsPlan:
    """The endpoints containerd's ``ConfigureHosts`` builds for registry *host*.

    Args:
        host: the registry ``host[:port]`` of the reference.
        config_path: ``registry.config_path``.
        profile: HOST-012 (loopback defaults, https first) and HOST-013 (order) differ.

    Returns:
        The :class:`HostsPlan`; its last entry is the ``server`` or the default host.

    Raises:
        ConfigError: the host directory or ``hosts.toml`` cannot be read.
    """
    host_dir = find_host_dir(split_config_path(config_path), host)
    notes: list[str] = []
    entries: list[HostsEntry] = [HostsEntry(scheme="", host="", path="")]
    if host_dir is not None:
        entries = _load_host_dir(host_dir, profile, notes)
    last = entries[-1]
    if not last.host:
        entries[-1] = _default_host(host, last, profile)
    entries = [
        _https_first(e) if profile.hosts_https_first_with_fallback else e
        for e in entries
    ]
    return HostsPlan(host_dir=host_dir, entries=tuple(entries), notes=tuple(notes))


def _default_host(host: str, last: HostsEntry, profile: Profile) -> HostsEntry:
    # hosts.go ConfigureHosts: the last entry without a host becomes the registry itself.
    scheme, name, skip, default_skip = "https", host, last.skip_verify, False
    if host == "docker.io":
        name = "registry-1.docker.io"
    elif _is_localhost(host):
        port = _port(host)
        if not profile.hosts_https_first_with_fallback:
            # containerd 1.6: a loopback registry is plain http (verification off).
            scheme, skip, default_skip = "http", True, True
        else:
            # 1.7+: no port or 443 is https; another port is http (then tried as https
            # first, HOST-012); verification is off unless the port is 80.
            scheme = "https" if port in ("", "443") else "http"
            if port != "80":
                skip, default_skip = True, True
    return replace(
        last,
        scheme=scheme,
        host=name,
        path="/v2",
        capabilities=ALL_CAPABILITIES,
        skip_verify=skip,
        default_skip_verify=default_skip,
    )


def _https_first(entry: HostsEntry) -> HostsEntry:
    # hosts.go (1.7+): an http entry with TLS settings and a port other than 80 is tried
    # over https first, falling back to http when the server does not speak TLS.
    if entry.scheme == "http" and entry.explicit_tls and _port(entry.host) != "80":
        return replace(entry, scheme="https", http_fallback=True)
    return entry


def _port(host: str) -> str:
    try:
        return split_host_port(host)[1]
    except ValueError:
        return ""


def _is_localhost(host: str) -> bool:
    # docker.IsLocalhost: "localhost" or a loopback IP, port ignored.
    try:
        bare = split_host_port(host)[0]
    except ValueError:
        bare = host
    ip = parse_ip(bare)
    return bare == "localhost" or (ip is not None and is_loopback_ip(ip))


def _load_host_dir(
    host_dir: str, profile: Profile, notes: list[str]
) -> list[HostsEntry]:
    path = os.path.join(host_dir, "hosts.toml")
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        data = b""
    except OSError as exc:
        raise ConfigError(f"read {path}: {exc.strerror}") from exc
    if data:
        try:
            return parse_hosts_file(
                host_dir, data.decode("utf-8"), profile, source=path
            )
        except (_Undecodable, UnicodeDecodeError) as exc:
            notes.append(
                f"{path} is ignored: {exc}; containerd only logs this and falls back to "
                "the certificate files of the directory (HOST-014)"
            )
    return [_cert_files(host_dir)]


def _cert_files(host_dir: str) -> HostsEntry:
    # hosts.go loadCertFiles: Docker's layout, in directory order (sorted, like ReadDir).
    cas: list[str] = []
    pairs: list[tuple[str, str]] = []
    try:
        names = sorted(os.listdir(host_dir))
    except FileNotFoundError:
        names = []
    for name in names:
        full = os.path.join(host_dir, name)
        if os.path.isdir(full):
            continue
        if name.endswith(".crt"):
            cas.append(full)
        if name.endswith(".cert"):
            key = os.path.join(host_dir, name[: -len(".cert")] + ".key")
            pairs.append((full, key if os.path.exists(key) else ""))
    return HostsEntry(
        scheme="",
        host="",
        path="",
        ca_files=tuple(cas),
        client_pairs=tuple(pairs),
        source=host_dir if cas or pairs else "",
    )


def parse_hosts_file(
    base_dir: str, text: str, profile: Profile, *, source: str = "hosts.toml"
) -> list[HostsEntry]:
    """Decode one ``hosts.toml``: the ``[host]`` entries in order, then the root entry.

    Args:
        base_dir: the host directory (relative ``ca``/``client`` paths start here).
        text: the file's text.
        profile: HOST-013 (entry order) and HOST-014 (a file without [host]) differ.
        source: the file name recorded in every entry (for ``refpull explain``).

    Returns:
        The entries; the last one is the root (``server``, or no host yet).

    Raises:
        _Undecodable: containerd would log the error and use the certificate files.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _Undecodable(f"invalid TOML: {exc}") from exc
    if "host" not in doc and profile.hosts_toml_needs_host_table:
        # v1.6.20 hosts.go getSortedHosts fails on a file without a host tree before
        # decoding anything (containerd#10027; 1.7+ return no hosts, #10028).
        raise _Undecodable("invalid `host` tree")
    hosts = doc.get("host", {})
    if not isinstance(hosts, Mapping):
        raise _Undecodable("host must be a table")
    if profile.hosts_order_from_table_headers:
        order = _table_header_hosts(text)
    else:
        order = list(hosts)
    entries = []
    for name in order:
        table = hosts.get(name, {})
        if not isinstance(table, Mapping):
            raise _Undecodable(f"host.{go_quote(name)} must be a table")
        key = f"host.{go_quote(name)}"
        entries.append(_entry(name, base_dir, table, source=source, key=key))
    server = doc.get("server", "")
    if not isinstance(server, str):
        raise _Undecodable("server must be a string")
    entries.append(
        _entry(server, base_dir, doc, source=source, key="server" if server else "")
    )
    return entries


def _table_header_hosts(text: str) -> list[str]:
    # hosts.go (2.x) getSortedHosts: every `[host.X…]` table header in file order, a
    # header repeating the previous host skipped; hosts defined without a table header
    # (inline or dotted keys) are not listed at all.
    order: list[str] = []
    previous = None
    for line in text.splitlines():
        match = _TABLE_HEADER.match(line)
        if match is None:
            continue
        try:
            parsed = tomllib.loads(f"{match['key']} = 0")
        except tomllib.TOMLDecodeError:
            continue
        parts = _first_path(parsed)
        if len(parts) < 2 or parts[0] != "host" or parts[1] == previous:
            continue
        previous = parts[1]
        order.append(parts[1])
    return order


def _first_path(doc: Mapping[str, Any]) -> list[str]:
    parts: list[str] = []
    node: Any = doc
    while isinstance(node, Mapping) and node:
        name = next(iter(node))
        parts.append(name)
        node = node[name]
    return parts


def _entry(
    server: str, base_dir: str, table: Mapping[str, Any], *, source: str, key: str
) -> HostsEntry:
    # hosts.go parseHostConfig.
    scheme = host = path = ""
    override = table.get("override_path", False)
    if not isinstance(override, bool):
        raise _Undecodable(f"{key or 'root'}: override_path must be a boolean")
    if server:
        text = server if server.startswith("http") else "https://" + server
        try:
            url = parse_go_url(text)
        except URLError as exc:
            raise _Undecodable(f"unable to parse server {text}: {exc}") from exc
        scheme, host, path = url.scheme, url.host, url.path
        if path:
            path = path_join(path)
            if not path.endswith("/v2") and not override:
                path += "/v2"
        elif not override:
            path = "/v2"
    skip = table.get("skip_verify")
    if skip is not None and not isinstance(skip, bool):
        raise _Undecodable(f"{key or 'root'}: skip_verify must be a boolean")
    return HostsEntry(
        scheme=scheme,
        host=host,
        path=path,
        capabilities=_capabilities(table.get("capabilities")),
        ca_files=_ca_files(table.get("ca"), base_dir),
        client_pairs=_client_pairs(table.get("client"), base_dir),
        skip_verify=skip,
        headers=_headers(table.get("header")),
        source=source,
        key=key,
    )


def _capabilities(value: object) -> frozenset[str]:
    if value is None:
        return ALL_CAPABILITIES
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Undecodable("capabilities must be a list of strings")
    if not value:
        return ALL_CAPABILITIES
    found = set()
    for name in value:
        lowered = name.lower()
        if lowered not in _KNOWN_CAPABILITIES:
            raise _Undecodable(f"unknown capability {name}")
        found.add(lowered)
    return frozenset(found)


def _abs(path: str, base_dir: str) -> str:
    return (
        path if os.path.isabs(path) else os.path.normpath(os.path.join(base_dir, path))
    )


def _strings(values: list[Any], what: str) -> list[str]:
    for value in values:
        if not isinstance(value, str):
            raise _Undecodable(f"unable to cast {value!r} to string ({what})")
    return list(values)


def _ca_files(value: object, base_dir: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (_abs(value, base_dir),)
    if isinstance(value, list):
        return tuple(_abs(v, base_dir) for v in _strings(value, "ca"))
    raise _Undecodable(f'invalid type {value!r} for "ca"')


def _client_pairs(value: object, base_dir: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return ((_abs(value, base_dir), ""),)
    if not isinstance(value, list):
        raise _Undecodable(f'invalid type {value!r} for "client"')
    pairs: list[tuple[str, str]] = []
    for item in value:
        if isinstance(item, str):
            pairs.append((_abs(item, base_dir), ""))
        elif isinstance(item, list):
            files = [_abs(v, base_dir) for v in _strings(item, "client")]
            if len(files) != 2:
                raise _Undecodable(f'invalid pair {item!r} for "client"')
            pairs.append((files[0], files[1]))
        else:
            raise _Undecodable(f'invalid type {type(item).__name__} for "client"')
    return tuple(pairs)


def _headers(value: object) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise _Undecodable("header must be a table")
    pairs: list[tuple[str, str]] = []
    for name, values in value.items():
        if isinstance(values, str):
            pairs.append((name, values))
        elif isinstance(values, list):
            pairs.extend((name, v) for v in _strings(values, f"header {name}"))
        else:
            raise _Undecodable(f"invalid type {values!r} for header {go_quote(name)}")
    return tuple(pairs)


def ssl_context_for(
    entry: HostsEntry, *, honour_default_skip: bool = False
) -> ssl.SSLContext:
    """The TLS context of one hosts.toml entry (hosts.go ``updateTLSConfigFromHost``).

    Args:
        entry: the endpoint.
        honour_default_skip: also switch verification off where the *runtime* did it
            for a loopback default host; the reference passes ``False`` (HOST-012).

    Raises:
        ConfigError: with hosts.go's messages (``unable to read CA cert``, ``unable to
            load CA cert`` for a file without a certificate, ``unable to read CERT
            file``, ``failed to load X509 key pair``).
    """
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    for ca in entry.ca_files:
        try:
            data = Path(ca).read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"unable to read CA cert {go_quote(ca)}: {exc.strerror}"
            ) from exc
        if not count_pem_certificates(data):
            # Unlike configs.tls.ca_file (TLS-003), a file without a certificate fails.
            raise ConfigError(f"unable to load CA cert {go_quote(ca)}")
        try:
            ctx.load_verify_locations(cadata=data.decode("ascii", "replace"))
        except ssl.SSLError as exc:
            raise ConfigError(f"unable to load CA cert {go_quote(ca)}") from exc
    for cert, key in entry.client_pairs:
        for name in (cert, key):
            if name and not os.access(name, os.R_OK):
                raise ConfigError(f"unable to read CERT file {go_quote(name)}")
        try:
            ctx.load_cert_chain(cert, key or cert, password=lambda: b"")
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"failed to load X509 key pair: {exc}") from exc
    skip = entry.skip_verify and (honour_default_skip or not entry.default_skip_verify)
    if skip:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
