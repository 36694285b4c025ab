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
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from cri_conformance.targets.base import (
    Capability,
    ImageInfo,
    RegistrySetup,
    TargetCrashed,
    TargetEnvironment,
)
from cri_conformance.targets.cri import CRIClient

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


class ContainerdTarget:
    """containerd 1.6-style runtime started by the suite (``--target containerd``)."""

    capabilities = frozenset(
        {
            Capability.CONFIGURE_REGISTRIES,
            Capability.PROXY_ENVIRONMENT,
            Capability.RESTART,
        }
    )

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
        self.name = "containerd"
        self.profile = profile
        self.binary = resolved
        self.environment = environment
        self.setup = setup or RegistrySetup()
        self.config_version = config_version
        self.start_timeout = start_timeout
        self.workdir = Path(tempfile.mkdtemp(prefix="cri-conformance-containerd-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: CRIClient | None = None
        self.restarts = 0
        self.start()

    # -- process management -------------------------------------------------
    @property
    def socket(self) -> Path:
        return self.workdir / "containerd.sock"

    @property
    def log_path(self) -> Path:
        return self.workdir / "containerd.log"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _write_config(self) -> Path:
        for sub in ("root", "state", "cni/bin", "cni/conf"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        text = render_config(self.workdir, self.setup, version=self.config_version)
        path = self.workdir / "config.toml"
        path.write_text(text)
        # Guard: an empty or unreadable config makes containerd fall back to system
        # paths (/var/lib/containerd, /run/containerd) silently.
        if not path.read_text().strip() or str(self.workdir) not in path.read_text():
            raise RuntimeError(f"containerd config {path} was not written correctly")
        return path

    def start(self) -> None:
        config = self._write_config()
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        env.update(self.environment.as_environ())
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [self.binary, "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last_error = "socket never appeared"
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise TargetCrashed(
                    f"containerd exited with {self._proc.returncode} during start-up",
                    log_tail=self.log_tail(),
                )
            if self.socket.exists():
                try:
                    client = CRIClient(
                        str(self.socket), api="auto", on_unavailable=self.log_tail
                    )
                    client.version()
                except Exception as exc:  # not ready yet: retry until the deadline
                    last_error = str(exc)
                else:
                    self._client = client
                    return
            time.sleep(0.1)
        self.stop()
        raise TargetCrashed(
            f"containerd CRI plugin not ready after {self.start_timeout}s: {last_error}",
            log_tail=self.log_tail(),
        )

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def restart(self) -> None:
        self.stop()
        self.restarts += 1
        self.start()

    def reconfigure(self, setup: RegistrySetup) -> None:
        """Apply a new registry setup (containerd reads it only at start-up)."""
        if setup != self.setup:
            self.setup = setup
            self.restart()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- CRI ------------------------------------------------------------------
    @property
    def client(self) -> CRIClient:
        if self._client is None or not self.alive():
            raise TargetCrashed("containerd is not running", log_tail=self.log_tail())
        return self._client

    def pull(self, image: str, auth: Mapping[str, str] | None = None) -> str:
        return self.client.pull(image, auth)

    def status(self, image: str, *, verbose: bool = False) -> ImageInfo | None:
        return self.client.status(image, verbose=verbose)

    def list(self) -> list[ImageInfo]:
        return self.client.list()

    def remove(self, image: str) -> None:
        self.client.remove(image)
