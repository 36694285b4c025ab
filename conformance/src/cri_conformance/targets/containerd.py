"""A containerd the suite starts, configures and stops itself.

Everything lives in one private temp directory: root, state, sockets, CNI dirs, the
config file and the log. The process gets ``HTTP(S)_PROXY`` pointing at the simulator's
loopback proxy and ``SSL_CERT_FILE`` at the run's CA, so names such as
``registry-1.docker.io`` are served from loopback and never resolved through DNS
(behaviors.md H-CFG, H-PROXY). Registry configuration is read only at start-up, so a
different configuration means a restart (``reconfigure``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from cri_conformance.targets._managed import ManagedTarget
from cri_conformance.targets.base import RegistrySetup, TargetEnvironment

__all__ = ["ContainerdTarget", "render_config"]

_V2_CRI = 'plugins."io.containerd.grpc.v1.cri"'
_V1_CRI = "plugins.cri"


def _q(value: str) -> str:
    # A JSON string is a valid TOML basic string (TOML's escapes are a superset).
    return json.dumps(value)


def render_config(
    workdir: Path, setup: RegistrySetup, *, version: int = 2, log_level: str = "info"
) -> str:
    """Render a containerd config.toml with private paths and the registry *setup*.

    Version 2 uses the 1.6 table names, version 1 the seed-era ``plugins.cri`` names
    (behaviors.md CFG-001).
    """
    cri = _V2_CRI if version == 2 else _V1_CRI
    lines = [
        f"version = {version}",
        f"root = {_q(str(workdir / 'root'))}",
        f"state = {_q(str(workdir / 'state'))}",
        "[grpc]",
        f"  address = {_q(str(workdir / 'containerd.sock'))}",
        "[ttrpc]",
        f"  address = {_q(str(workdir / 'containerd-ttrpc.sock'))}",
        "[debug]",
        f"  address = {_q(str(workdir / 'debug.sock'))}",
        f"  level = {_q(log_level)}",
        f"[{cri}]",
        "  disable_cgroup = true",
        "  disable_apparmor = true",
        "  restrict_oom_score_adj = true",
        # Never pulled by image tests; an unroutable loopback name keeps it local.
        f"  sandbox_image = {_q('127.0.0.1:1/pause:none')}",
    ]
    if setup.max_concurrent_downloads is not None:
        lines.append(f"  max_concurrent_downloads = {setup.max_concurrent_downloads}")
    lines += [
        f"[{cri}.containerd]",
        '  snapshotter = "native"',
        f"[{cri}.cni]",
        f"  bin_dir = {_q(str(workdir / 'cni' / 'bin'))}",
        f"  conf_dir = {_q(str(workdir / 'cni' / 'conf'))}",
    ]
    if setup.headers:
        lines.append(f"[{cri}.registry.headers]")
        for name in sorted(setup.headers):
            values = ", ".join(_q(v) for v in setup.headers[name])
            lines.append(f"  {_q(name)} = [{values}]")
    for key in sorted(setup.auths):
        lines.append(f"[{cri}.registry.auths.{_q(key)}]")
        for name in ("username", "password", "auth", "identitytoken"):
            value = getattr(setup.auths[key], name)
            if value:
                lines.append(f"  {name} = {_q(value)}")
    for host in sorted(setup.mirrors):
        endpoints = ", ".join(_q(e) for e in setup.mirrors[host])
        lines += [f"[{cri}.registry.mirrors.{_q(host)}]", f"  endpoint = [{endpoints}]"]
    for host in sorted(setup.configs):
        settings = setup.configs[host]
        if settings.has_tls:
            lines.append(f"[{cri}.registry.configs.{_q(host)}.tls]")
            for key in ("ca_file", "cert_file", "key_file"):
                value = getattr(settings, key)
                if value:
                    lines.append(f"  {key} = {_q(value)}")
            if settings.insecure_skip_verify:
                lines.append("  insecure_skip_verify = true")
        if settings.auth is not None:
            lines.append(f"[{cri}.registry.configs.{_q(host)}.auth]")
            for key in ("username", "password", "auth", "identitytoken"):
                value = getattr(settings.auth, key)
                if value:
                    lines.append(f"  {key} = {_q(value)}")
    return "\n".join(lines) + "\n"


class ContainerdTarget(ManagedTarget):
    """containerd 1.6-style runtime started by the suite (``--target containerd``)."""

    name = "containerd"

    def __init__(
        self,
        *,
        binary: str = "containerd",
        profile: str = "containerd-1.6",
        environment: TargetEnvironment,
        setup: RegistrySetup | None = None,
        config_version: int = 2,
        start_timeout: float = 30.0,
    ) -> None:
        resolved = shutil.which(binary)
        if resolved is None:
            raise FileNotFoundError(
                f"containerd binary {binary!r} not found: install Debian's 'containerd' "
                "package (apt-get install -y containerd) or pass --containerd-bin"
            )
        super().__init__(
            workdir=Path(tempfile.mkdtemp(prefix="cri-conformance-containerd-")),
            profile=profile,
            setup=setup or RegistrySetup(),
            environment=environment,
            start_timeout=start_timeout,
        )
        self.binary = resolved
        self.config_version = config_version
        self.boot()

    @property
    def socket(self) -> Path:
        return self.workdir / "containerd.sock"

    def _launch(self) -> list[str]:
        for sub in ("root", "state", "cni/bin", "cni/conf"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        text = render_config(self.workdir, self.setup, version=self.config_version)
        path = self.workdir / "config.toml"
        path.write_text(text)
        # Guard: an empty or unreadable config makes containerd fall back to system
        # paths (/var/lib/containerd, /run/containerd) silently.
        if not path.read_text().strip() or str(self.workdir) not in path.read_text():
            raise RuntimeError(f"containerd config {path} was not written correctly")
        return [self.binary, "--config", str(path)]
