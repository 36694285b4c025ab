"""Render a runtime-neutral :class:`RegistrySetup` for CRI-O and containers/image.

CRI-O has no registry table of its own: its pull stack (containers/image) reads

* ``registries.conf`` (v2): one ``[[registry]]`` per registry host with ``prefix``,
  ``location``, ``insecure`` and its ``[[registry.mirror]]`` list in order
  (containers-registries.conf(5); vendor/go.podman.io/image/v5/pkg/sysregistriesv2);
* a certificate directory per ``host[:port]``: ``*.crt`` CA files extend the system
  roots, a ``*.cert``/``*.key`` pair is the client identity
  (vendor/go.podman.io/image/v5/pkg/tlsclientconfig ``SetupCertificates``), looked up
  first under ``$HOME/.config/containers/certs.d`` (docker/docker_client.go
  ``dockerCertDir``), so a private ``HOME`` keeps the files out of ``/etc``;
* an auth file (containers-auth.json(5)) with ``auths."<host>".auth``;
* ``policy.json`` (containers-policy.json(5)), here accept-anything: signatures are
  not what the suite grades.

What the neutral form says and CRI-O cannot express (operator headers, a mirror
endpoint path used as the API root, TLS files on a plain-http endpoint, deprecated
``auths``) is listed in :attr:`CrioFiles.unsupported`, one reason per need, so a case
needing it is reported UNSUPPORTED with that reason.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from cri_conformance.targets.base import AuthSpec, HostSettings, RegistrySetup

__all__ = ["CrioFiles", "render_crio_config", "render_registries", "write_crio_files"]


def _q(value: str) -> str:
    # A JSON string is a valid TOML basic string.
    return json.dumps(value)


@dataclass(frozen=True)
class _Location:
    """One mirror endpoint as registries.conf names it (no scheme) and its transport."""

    location: str
    plain_http: bool
    unsupported: str = ""


def _location(endpoint: str) -> _Location:
    if "://" not in endpoint:
        # containerd reads a scheme-less endpoint per profile (EP-006); for
        # containers/image a location never has a scheme: https unless insecure.
        return _Location(endpoint.rstrip("/"), plain_http=False)
    parts = urlsplit(endpoint)
    why = ""
    if parts.path not in ("", "/v2", "/v2/"):
        why = f"an endpoint path ({parts.path!r}) as the API root"
    elif parts.path == "/":
        why = "an endpoint path ('/') as the API root"
    return _Location(parts.netloc, parts.scheme == "http", why)


@dataclass
class CrioFiles:
    """What :func:`write_crio_files` wrote, and what it could not express."""

    registries_conf: Path
    policy: Path
    auth_file: Path
    certs_dir: Path
    unsupported: dict[str, str] = field(default_factory=dict)


def render_registries(setup: RegistrySetup) -> tuple[str, dict[str, str]]:
    """registries.conf (v2) text for *setup*, and {need: reason} it cannot express.

    Every host of ``insecure_hosts`` and every ``http://`` mirror is marked
    ``insecure`` (CRI-O speaks https to every other location, loopback included); an
    ``insecure_skip_verify`` host is marked ``insecure`` too, which in containers/image
    also allows plain http.
    """
    unsupported: dict[str, str] = {}
    insecure: set[str] = set(setup.insecure_hosts)
    for host, settings in setup.configs.items():
        if settings.insecure_skip_verify:
            insecure.add(host)
    lines = [
        "# Written by cri-conformance for one session (containers-registries.conf v2).",
        "unqualified-search-registries = []",
        'short-name-mode = "disabled"',
    ]
    for host in sorted(setup.mirrors):
        if host == "*":
            unsupported["mirror *"] = "CRI-O has no catch-all mirror entry"
            continue
        mirrors = [_location(e) for e in setup.mirrors[host]]
        lines += [
            "",
            "[[registry]]",
            f"prefix = {_q(host)}",
            f"location = {_q(host)}",
        ]
        if host in insecure:
            lines.append("insecure = true")
        for m in mirrors:
            if m.unsupported:
                unsupported[f"mirror {host}"] = m.unsupported
            lines += ["[[registry.mirror]]", f"location = {_q(m.location)}"]
            if m.plain_http or m.location in insecure:
                lines.append("insecure = true")
                tls = setup.configs.get(m.location)
                if m.plain_http and tls is not None and tls.has_tls:
                    unsupported[f"tls-on-http {m.location}"] = (
                        "TLS settings for a plain-http endpoint (registries.conf "
                        "has one insecure flag per location)"
                    )
    # Hosts configured insecure without a mirror entry of their own.
    for host in sorted(insecure - set(setup.mirrors)):
        lines += [
            "",
            "[[registry]]",
            f"location = {_q(host)}",
            "insecure = true",
        ]
    lines += _loopback_catch_all(setup, insecure)
    if setup.headers:
        unsupported["headers"] = "containers/image has no operator request headers"
    if setup.auths:
        unsupported["auths"] = "CRI-O has no deprecated registry.auths table"
    return "\n".join(lines) + "\n", unsupported


def _loopback_catch_all(setup: RegistrySetup, insecure: set[str]) -> list[str]:
    """``127.0.0.1`` insecure for plain-http registries a case starts on a new port.

    containerd speaks http to any loopback registry (EP-004); registries.conf names
    hosts with their port, so a registry started mid-session would get https.
    # Deviation: this relies on containers/image matching ``127.0.0.1:5000`` against
    # the prefix ``127.0.0.1`` (sysregistriesv2 refMatchingPrefix, marked unintended
    # upstream). Loopback mirror locations not marked insecure get their own secure
    # entry, which the longer prefix makes win over the catch-all.
    """
    if not any(h.startswith("127.0.0.1:") for h in setup.insecure_hosts):
        return []
    lines = ["", "[[registry]]", 'location = "127.0.0.1"', "insecure = true"]
    secure = sorted(
        {
            _location(e).location
            for endpoints in setup.mirrors.values()
            for e in endpoints
            if not _location(e).plain_http
        }
        - insecure
    )
    for location in secure:
        if location.startswith("127.0.0.1:"):
            lines += ["", "[[registry]]", f"location = {_q(location)}"]
    return lines


def _auth_entry(spec: AuthSpec) -> dict[str, str] | None:
    if spec.identitytoken:
        entry = {"identitytoken": spec.identitytoken}
        if spec.username:
            entry["auth"] = base64.b64encode(f"{spec.username}:".encode()).decode()
        return entry
    if spec.auth:
        return {"auth": spec.auth}
    if spec.username or spec.password:
        pair = f"{spec.username}:{spec.password}".encode()
        return {"auth": base64.b64encode(pair).decode()}
    return None


def render_auth_file(configs: Mapping[str, HostSettings]) -> str:
    """containers-auth.json text: one ``auths`` entry per host with a credential."""
    auths: dict[str, dict[str, str]] = {}
    for host in sorted(configs):
        spec = configs[host].auth
        entry = _auth_entry(spec) if spec is not None else None
        if entry is not None:
            auths[host] = entry
    return json.dumps({"auths": auths}, indent=2) + "\n"


def _write_certs(certs_dir: Path, configs: Mapping[str, HostSettings]) -> None:
    """``certs.d/<host>/``: ``ca.crt`` (CA), ``client.cert`` and ``client.key``.

    Each is a symlink to the file the setup names, so a file replaced between pulls
    is read anew (containers/image reads the directory on every pull, TLS-005) and a
    missing one fails the pull as an unreadable file does (TLS-003, EP-007).
    """
    for host, settings in sorted(configs.items()):
        if not (settings.ca_file or settings.cert_file or settings.key_file):
            continue
        directory = certs_dir / host
        directory.mkdir(parents=True, exist_ok=True)
        for source, name in (
            (settings.ca_file, "ca.crt"),
            (settings.cert_file, "client.cert"),
            (settings.key_file, "client.key"),
        ):
            if source:
                (directory / name).symlink_to(source)


def render_crio_config(workdir: Path, *, pinns: Path, log_level: str = "info") -> str:
    """crio.conf with every path private to *workdir*: storage, sockets, state."""
    w = workdir
    lines = [
        "[crio]",
        f"root = {_q(str(w / 'root'))}",
        f"runroot = {_q(str(w / 'runroot'))}",
        'storage_driver = "vfs"',
        f"log_dir = {_q(str(w / 'pods'))}",
        f"version_file = {_q(str(w / 'state' / 'version'))}",
        f"version_file_persist = {_q(str(w / 'state' / 'version-persist'))}",
        f"clean_shutdown_file = {_q(str(w / 'state' / 'clean.shutdown'))}",
        "[crio.api]",
        f"listen = {_q(str(w / 'crio.sock'))}",
        "[crio.runtime]",
        'cgroup_manager = "cgroupfs"',
        'conmon_cgroup = "pod"',
        f"log_level = {_q(log_level)}",
        f"pinns_path = {_q(str(pinns))}",
        f"namespaces_dir = {_q(str(w / 'ns'))}",
        f"container_exits_dir = {_q(str(w / 'exits'))}",
        f"container_attach_socket_dir = {_q(str(w / 'attach'))}",
        f"hooks_dir = [{_q(str(w / 'hooks'))}]",
        f"cdi_spec_dirs = [{_q(str(w / 'cdi'))}]",
        f"decryption_keys_path = {_q(str(w / 'keys'))}",
        'default_runtime = "runc"',
        "[crio.runtime.runtimes.runc]",
        'runtime_path = "/usr/bin/runc"',
        f"runtime_root = {_q(str(w / 'runc'))}",
        'monitor_path = "/usr/bin/conmon"',
        "[crio.image]",
        f"signature_policy = {_q(str(w / 'policy.json'))}",
        f"signature_policy_dir = {_q(str(w / 'policies'))}",
        f"global_auth_file = {_q(str(w / 'auth.json'))}",
        f"namespaced_auth_dir = {_q(str(w / 'auth'))}",
        f"big_files_temporary_dir = {_q(str(w / 'tmp'))}",
        # Never pulled by image tests; an unroutable loopback name keeps it local.
        'pause_image = "127.0.0.1:1/pause:none"',
        'short_name_mode = "disabled"',
        "[crio.network]",
        f"network_dir = {_q(str(w / 'cni' / 'conf'))}",
        f"plugin_dirs = [{_q(str(w / 'cni' / 'bin'))}]",
        "[crio.metrics]",
        "enable_metrics = false",
        "[crio.nri]",
        "enable_nri = false",
    ]
    return "\n".join(lines) + "\n"


_POLICY = {"default": [{"type": "insecureAcceptAnything"}]}


def write_crio_files(workdir: Path, setup: RegistrySetup, *, home: Path) -> CrioFiles:
    """Write registries.conf, policy.json, auth.json and certs.d for *setup*."""
    registries, unsupported = render_registries(setup)
    files = CrioFiles(
        registries_conf=workdir / "registries.conf",
        policy=workdir / "policy.json",
        auth_file=workdir / "auth.json",
        certs_dir=home / ".config" / "containers" / "certs.d",
        unsupported=unsupported,
    )
    files.registries_conf.write_text(registries)
    (workdir / "registries.conf.d").mkdir(exist_ok=True)
    files.policy.write_text(json.dumps(_POLICY) + "\n")
    files.auth_file.write_text(render_auth_file(setup.configs))
    shutil.rmtree(files.certs_dir, ignore_errors=True)
    files.certs_dir.mkdir(parents=True)
    _write_certs(files.certs_dir, setup.configs)
    return files
