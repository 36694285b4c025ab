"""containerd's configuration per generation, rendered from a neutral :class:`RegistrySetup`.

Each generation reads its own dialect (behaviors.md CFG-001):

* ``seed`` (containerd 1.3 + containerd/cri ab6701bd): ``version = 1``, the CRI plugin
  at ``plugins.cri``; only the ``overlayfs`` snapshotter is compiled in; registry
  settings only as ``mirrors``/``configs``/``auths`` tables (no ``config_path``).
* ``1.6``, ``1.7``: ``version = 2``, ``plugins."io.containerd.grpc.v1.cri"``; registry
  settings as tables (default) or as ``hosts.toml`` files under ``registry.config_path``.
* ``2.0``, ``2.3``: ``version = 3``, image settings in ``io.containerd.cri.v1.images``,
  runtime settings in ``io.containerd.cri.v1.runtime`` (``disable_cgroup`` is gone);
  registry settings as ``hosts.toml``. 2.3 pulls through the transfer service, which
  unpacks only for the platform/snapshotter pairs of its ``unpack_config`` (default:
  ``overlayfs``; 2.3.4 ``core/unpack/unpacker.go:188`` "no unpack platforms defined"),
  and which the CRI plugin silently abandons for the local pull path when any deprecated
  ``registry.mirrors``/``configs``/``auths`` table or a ``max_concurrent_downloads``
  other than 3 is present (2.3.4 ``internal/cri/config/config.go``
  ``CheckLocalImagePullConfigs``). So on 2.3 the hosts style renders credentials
  nowhere (there is no hosts.toml field for them) and names the hosts it could not
  configure in :attr:`Rendered.unsupported`; the tables style renders them and so
  grades the local pull path.

Credentials have no ``hosts.toml`` field in any generation: the hosts style of 1.6 to
2.0 keeps them in ``registry.configs."<host>".auth``, which every one of them still
reads next to ``config_path`` (1.7.34 ``pkg/cri/server/image_pull.go`` registryHosts).
``registry.headers`` apply to every host, so they stay in the plugin table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cri_conformance.targets.base import AuthSpec, HostSettings, RegistrySetup

__all__ = [
    "GENERATIONS",
    "STYLES",
    "Generation",
    "Rendered",
    "UnsupportedSetup",
    "detect_generation",
    "render",
]

STYLES = ("tables", "hosts")


class UnsupportedSetup(ValueError):
    """The setup asks for something this generation's configuration cannot say."""


@dataclass(frozen=True)
class Generation:
    """What differs between containerd generations in how they are configured and run."""

    #: ``seed``, ``1.6``, ``1.7``, ``2.0`` or ``2.3``.
    name: str
    #: The config file's ``version``.
    config_version: int
    #: Registry configuration styles it reads; the first is its default.
    styles: tuple[str, ...]
    #: Snapshotter compiled in and used.
    snapshotter: str
    #: The CRI API it serves (``v1alpha2``, ``v1`` or ``auto`` when it serves both).
    cri_api: str
    #: The refpull profile a runtime of this generation is graded against by default.
    profile: str
    #: CRI pulls go through the transfer service unless deprecated tables are present.
    transfer_service: bool = False

    @property
    def default_style(self) -> str:
        return self.styles[0]


GENERATIONS: dict[str, Generation] = {
    g.name: g
    for g in (
        Generation("seed", 1, ("tables",), "overlayfs", "v1alpha2", "seed"),
        Generation("1.6", 2, ("tables", "hosts"), "native", "auto", "containerd-1.6"),
        Generation("1.7", 2, ("tables", "hosts"), "native", "auto", "containerd-1.7"),
        Generation("2.0", 3, ("hosts", "tables"), "native", "v1", "containerd-2.0"),
        Generation(
            "2.3", 3, ("hosts", "tables"), "native", "v1", "containerd-2.3", True
        ),
    )
}

_VERSION = re.compile(r"\bv?(\d+)\.(\d+)\.\d+")


def detect_generation(version_output: str) -> Generation:
    """The generation of a binary from what ``containerd --version`` printed.

    The seed reports itself as ``1.3.0+unknown``; a release build as ``v1.7.34``;
    Debian's package as ``1.6.20~ds1``.

    Raises:
        UnsupportedSetup: no version in the text, or a line the suite has no config for.
    """
    for line in version_output.splitlines():
        if not line.startswith("containerd "):
            continue
        match = _VERSION.search(line.split(" ", 2)[-1])
        if match is None:
            continue
        major, minor = int(match.group(1)), int(match.group(2))
        if (major, minor) <= (1, 5):
            return GENERATIONS["seed"]
        if major == 1:
            return GENERATIONS["1.6" if minor == 6 else "1.7"]
        return GENERATIONS["2.0" if minor < 3 else "2.3"]
    raise UnsupportedSetup(
        f"cannot tell the containerd generation from {version_output.strip()!r}: "
        "pass --containerd-generation seed|1.6|1.7|2.0|2.3"
    )


@dataclass(frozen=True)
class Rendered:
    """A config.toml, the hosts.toml files under its ``config_path``, what was left out."""

    config: str
    #: host namespace directory name -> hosts.toml text (empty for the tables style).
    hosts: Mapping[str, str] = field(default_factory=dict)
    #: registry host -> why the suite could not configure it for this generation.
    unsupported: Mapping[str, str] = field(default_factory=dict)
    #: the registry configuration style used: ``tables`` or ``hosts``.
    style: str = "tables"


def _q(value: str) -> str:
    # A JSON string is a valid TOML basic string (TOML's escapes are a superset).
    return json.dumps(value)


def _auth_lines(table: str, spec: AuthSpec) -> list[str]:
    lines = [f"[{table}]"]
    for name in ("username", "password", "auth", "identitytoken"):
        value = getattr(spec, name)
        if value:
            lines.append(f"  {name} = {_q(value)}")
    return lines


def _tls_lines(table: str, settings: HostSettings) -> list[str]:
    lines = [f"[{table}]"]
    for key in ("ca_file", "cert_file", "key_file"):
        value = getattr(settings, key)
        if value:
            lines.append(f"  {key} = {_q(value)}")
    if settings.insecure_skip_verify:
        lines.append("  insecure_skip_verify = true")
    return lines


def _host_tls(settings: HostSettings | None) -> list[str]:
    """hosts.toml keys of one host's TLS settings (``ca``, ``client``, ``skip_verify``)."""
    if settings is None:
        return []
    lines = []
    if settings.ca_file:
        lines.append(f"ca = {_q(settings.ca_file)}")
    if settings.cert_file and settings.key_file:
        lines.append(f"client = [[{_q(settings.cert_file)}, {_q(settings.key_file)}]]")
    elif settings.cert_file:
        lines.append(f"client = {_q(settings.cert_file)}")
    if settings.insecure_skip_verify:
        lines.append("skip_verify = true")
    return lines


def _endpoint_host(endpoint: str) -> str:
    rest = endpoint.split("://", 1)[-1]
    return rest.split("/", 1)[0]


def hosts_files(setup: RegistrySetup) -> dict[str, str]:
    """The setup's mirrors and per-host TLS as hosts.toml files, one per namespace.

    Mirror endpoints are written as the operator wrote them in the tables (scheme,
    path and all); hosts.toml gives them its own meaning (a path gets ``/v2``
    appended, a schemeless host is https): that difference is the runtime's.
    """
    files: dict[str, list[str]] = {}
    for host in sorted(setup.configs):
        tls = _host_tls(setup.configs[host])
        if tls:
            files[host] = tls
    for namespace in sorted(setup.mirrors):
        lines = list(files.get(namespace, []))
        for endpoint in setup.mirrors[namespace]:
            lines += [
                "",
                f"[host.{_q(endpoint)}]",
                '  capabilities = ["pull", "resolve"]',
            ]
            tls = _host_tls(setup.configs.get(_endpoint_host(endpoint)))
            lines += [f"  {line}" for line in tls]
        files[namespace] = lines
    for namespace, text in setup.hosts_toml.items():
        if namespace in files:
            raise UnsupportedSetup(
                f"hosts.toml for {namespace!r} given both raw and as mirrors/configs"
            )
        files[namespace] = [text.rstrip("\n")]
    return {ns: "\n".join(lines).lstrip("\n") + "\n" for ns, lines in files.items()}


def _hosts_using(setup: RegistrySetup, hosts: set[str]) -> list[str]:
    """*hosts* and every mirrored namespace with an endpoint on one of them."""
    found = set(hosts)
    for namespace, endpoints in setup.mirrors.items():
        if any(_endpoint_host(e) in hosts for e in endpoints):
            found.add(namespace)
    return sorted(found)


def _credential_hosts(setup: RegistrySetup) -> list[str]:
    """Registry hosts whose pulls depend on a configured credential."""
    hosts = {
        host for host, settings in setup.configs.items() if settings.auth is not None
    }
    hosts |= {_endpoint_host(key) for key in setup.auths}
    return _hosts_using(setup, hosts)


def render(
    workdir: Path,
    setup: RegistrySetup,
    generation: Generation,
    *,
    style: str | None = None,
    log_level: str = "info",
) -> Rendered:
    """Render *setup* for *generation* with private paths under *workdir*.

    *style* (``tables``/``hosts``; default: ``setup.config_style`` or the
    generation's own) picks how registries are configured; hosts.toml files are
    meant for ``workdir / "certs.d"``.

    With ``setup.tables_beside_config_path`` the style is ``tables+config_path``:
    ``mirrors`` and ``configs.*.tls`` as tables (2.x too, which has no such tls key)
    next to ``config_path`` and the raw ``hosts_toml`` files (CFG-006); the seed, which
    has no ``config_path``, gets the key all the same, as an operator would write it.

    Raises:
        UnsupportedSetup: the generation cannot read that style.
    """
    both = setup.tables_beside_config_path
    style = (
        "tables" if both else style or setup.config_style or generation.default_style
    )
    if style not in generation.styles:
        raise UnsupportedSetup(
            f"containerd {generation.name} cannot read registry configuration in the "
            f"{style!r} style (it reads: {', '.join(generation.styles)})"
        )
    unsupported: dict[str, str] = {}
    if style == "tables" and setup.hosts_toml and not both:
        reason = (
            f"containerd {generation.name} is configured with registry tables here; "
            "raw hosts.toml needs config_path"
        )
        if generation.name == "seed":
            reason = "the seed has no registry.config_path (hosts.toml)"
        unsupported.update(dict.fromkeys(setup.hosts_toml, reason))
    v3 = generation.config_version == 3
    if v3:
        images = 'plugins."io.containerd.cri.v1.images"'
        runtime = 'plugins."io.containerd.cri.v1.runtime"'
    else:
        cri = (
            "plugins.cri"
            if generation.config_version == 1
            else ('plugins."io.containerd.grpc.v1.cri"')
        )
        images = runtime = cri
    lines = [
        f"version = {generation.config_version}",
        f"root = {_q(str(workdir / 'root'))}",
        f"state = {_q(str(workdir / 'state'))}",
        "[grpc]",
        f"  address = {_q(str(workdir / 'containerd.sock'))}",
        "[ttrpc]",
        f"  address = {_q(str(workdir / 'containerd-ttrpc.sock'))}",
        "[debug]",
        f"  address = {_q(str(workdir / 'debug.sock'))}",
        f"  level = {_q(log_level)}",
        f"[{runtime}]",
    ]
    if not v3:
        lines.append("  disable_cgroup = true")
    lines += ["  disable_apparmor = true", "  restrict_oom_score_adj = true"]
    # Never pulled by image tests; an unroutable loopback name keeps it local.
    sandbox = _q("127.0.0.1:1/pause:none")
    mcd = setup.max_concurrent_downloads
    transfer = generation.transfer_service and style == "hosts"
    if not v3:
        lines.append(f"  sandbox_image = {sandbox}")
        if mcd is not None:
            lines.append(f"  max_concurrent_downloads = {mcd}")
        lines += [
            f"[{images}.containerd]",
            f"  snapshotter = {_q(generation.snapshotter)}",
        ]
    else:
        lines += [f"[{images}]", f"  snapshotter = {_q(generation.snapshotter)}"]
        if mcd is not None and not transfer:
            lines.append(f"  max_concurrent_downloads = {mcd}")
        lines += [f"[{images}.pinned_images]", f"  sandbox = {sandbox}"]
    lines += [
        f"[{runtime}.cni]",
        f"  bin_dir = {_q(str(workdir / 'cni' / 'bin'))}",
        f"  conf_dir = {_q(str(workdir / 'cni' / 'conf'))}",
    ]
    if generation.transfer_service:
        # The transfer service unpacks only for its configured platform/snapshotter
        # pairs (default overlayfs); its download limit is its own.
        lines.append('[plugins."io.containerd.transfer.v1.local"]')
        if mcd is not None and transfer:
            lines.append(f"  max_concurrent_downloads = {mcd}")
        lines += [
            '[[plugins."io.containerd.transfer.v1.local".unpack_config]]',
            '  platform = "linux/amd64"',
            f"  snapshotter = {_q(generation.snapshotter)}",
            '  differ = "walking"',
        ]
    registry = f"{images}.registry"
    hosts: dict[str, str] = {}
    if style == "hosts" or both:
        hosts = hosts_files(
            RegistrySetup(hosts_toml=setup.hosts_toml) if both else setup
        )
        lines += [f"[{registry}]", f"  config_path = {_q(str(workdir / 'certs.d'))}"]
    if setup.headers:
        lines.append(f"[{registry}.headers]")
        for name in sorted(setup.headers):
            values = ", ".join(_q(v) for v in setup.headers[name])
            lines.append(f"  {_q(name)} = [{values}]")
    credentials = not transfer
    if not credentials:
        reason = (
            f"containerd {generation.name} reads configured credentials only from the "
            "deprecated registry.configs/auths tables, which turn off its transfer-"
            "service pulls; run with --registry-config-style tables to grade them"
        )
        unsupported.update(dict.fromkeys(_credential_hosts(setup), reason))
    for key in sorted(setup.auths) if credentials else ():
        lines += _auth_lines(f"{registry}.auths.{_q(key)}", setup.auths[key])
    if style == "tables":
        for host in sorted(setup.mirrors):
            endpoints = ", ".join(_q(e) for e in setup.mirrors[host])
            lines += [f"[{registry}.mirrors.{_q(host)}]", f"  endpoint = [{endpoints}]"]
    if style == "tables" and v3 and not both:
        # 2.x's registry.configs has no tls table (CFG-007): TLS needs hosts.toml.
        tls_hosts = {h for h, s in setup.configs.items() if s.has_tls}
        reason = (
            f"containerd {generation.name} has no registry.configs tls table; its TLS "
            "settings need hosts.toml (--registry-config-style hosts)"
        )
        unsupported.update(dict.fromkeys(_hosts_using(setup, tls_hosts), reason))
    for host in sorted(setup.configs):
        settings = setup.configs[host]
        if style == "tables" and settings.has_tls and (both or not v3):
            lines += _tls_lines(f"{registry}.configs.{_q(host)}.tls", settings)
        if settings.auth is not None and credentials:
            lines += _auth_lines(f"{registry}.configs.{_q(host)}.auth", settings.auth)
    shown = "tables+config_path" if both else style
    return Rendered("\n".join(lines) + "\n", hosts, unsupported, shown)
