"""A containerd the suite starts, configures and stops itself.

Everything lives in one private temp directory: root, state, sockets, CNI dirs, the
config file and the log. The process gets ``HTTP(S)_PROXY`` pointing at the simulator's
loopback proxy and ``SSL_CERT_FILE`` at the run's CA, so names such as
``registry-1.docker.io`` are served from loopback and never resolved through DNS
(behaviors.md H-CFG, H-PROXY). Registry configuration is read only at start-up, so a
different configuration means a restart (``reconfigure``).

The configuration itself is per generation (seed, 1.6, 1.7, 2.0, 2.3): see
``containerd_config``. Hosts the generation cannot be configured for are listed in
``unsupported_hosts``; cases pulling from them are UNSUPPORTED.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from cri_conformance.targets._managed import ManagedTarget
from cri_conformance.targets.base import RegistrySetup, TargetEnvironment
from cri_conformance.targets.containerd_config import (
    GENERATIONS,
    Generation,
    Rendered,
    detect_generation,
    render,
)

__all__ = ["ContainerdTarget", "binary_generation", "render_config"]

#: The plugins a CRI service needs: 1.x's one, 2.x's images, runtime and gRPC ones.
_CRI_PLUGINS = (
    "io.containerd.grpc.v1.cri",
    "io.containerd.cri.v1.images",
    "io.containerd.cri.v1.runtime",
)
#: One ``key=value`` of a logfmt line (logrus text format; values Go-quoted or bare).
_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def _fields(line: str) -> dict[str, str]:
    found = {}
    for key, value in _FIELD.findall(line):
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        found[key] = value
    return found


def plugin_failure(log: str) -> str | None:
    """The first CRI plugin that failed to load in *log*, and its error, if any.

    containerd keeps running when a plugin's init fails; it says so at warning level,
    ``msg="failed to load plugin <id>"`` (1.6, 1.7) or ``msg="failed to load plugin"``
    with ``id=<id>`` (2.x), the reason in ``error``.
    """
    for line in log.splitlines():
        fields = _fields(line)
        msg = fields.get("msg", "")
        if not msg.startswith("failed to load plugin"):
            continue
        plugin = fields.get("id") or msg.removeprefix("failed to load plugin").strip()
        if plugin in _CRI_PLUGINS:
            return f"plugin {plugin} failed to load: {fields.get('error', '')}"
    return None


def render_config(
    workdir: Path, setup: RegistrySetup, *, version: int = 2, log_level: str = "info"
) -> str:
    """A registry-tables config.toml: version 1 (seed names) or 2 (1.6 names).

    What the reference targets and the ``--cri-config-hook`` contract read.
    """
    generation = GENERATIONS["seed" if version == 1 else "1.6"]
    return render(
        workdir, setup, generation, style="tables", log_level=log_level
    ).config


def binary_generation(binary: str) -> Generation:
    """Ask *binary* its version (``containerd --version``) and map it to a generation.

    Raises:
        containerd_config.UnsupportedSetup: the output names no known generation.
    """
    done = subprocess.run(
        [binary, "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return detect_generation(done.stdout + "\n" + done.stderr)


class ContainerdTarget(ManagedTarget):
    """A containerd of any generation started by the suite (``--target containerd``)."""

    name = "containerd"

    def __init__(
        self,
        *,
        binary: str = "containerd",
        profile: str | None = None,
        environment: TargetEnvironment,
        setup: RegistrySetup | None = None,
        generation: Generation | None = None,
        config_style: str | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        resolved = shutil.which(binary)
        if resolved is None:
            raise FileNotFoundError(
                f"containerd binary {binary!r} not found: install Debian's 'containerd' "
                "package (apt-get install -y containerd), pass --containerd-bin, or "
                "--runtime NAME to build one"
            )
        self.binary = resolved
        self.generation = generation or binary_generation(resolved)
        self.config_style = config_style
        self.unsupported_hosts: dict[str, str] = {}
        #: how registries are configured (``tables``/``hosts``), once started.
        self.registry_style = ""
        self._log_start = 0
        super().__init__(
            workdir=Path(tempfile.mkdtemp(prefix="cri-conformance-containerd-")),
            profile=profile or self.generation.profile,
            setup=setup or RegistrySetup(),
            environment=environment,
            start_timeout=start_timeout,
        )
        self.cri_api = self.generation.cri_api
        self.boot()

    @property
    def socket(self) -> Path:
        return self.workdir / "containerd.sock"

    def rendered(self) -> Rendered:
        return render(
            self.workdir, self.setup, self.generation, style=self.config_style
        )

    def _refusal(self) -> str | None:
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_start)
                text = log.read().decode(errors="replace")
        except OSError:
            return None
        return plugin_failure(text)

    def _launch(self) -> list[str]:
        # The log is appended to across restarts: only this start's lines count.
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        for sub in ("root", "state", "cni/bin", "cni/conf"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        rendered = self.rendered()
        self.unsupported_hosts = dict(rendered.unsupported)
        self.registry_style = rendered.style
        hosts_dir = self.workdir / "certs.d"
        shutil.rmtree(hosts_dir, ignore_errors=True)
        for namespace, text in rendered.hosts.items():
            (hosts_dir / namespace).mkdir(parents=True)
            (hosts_dir / namespace / "hosts.toml").write_text(text)
        path = self.workdir / "config.toml"
        path.write_text(rendered.config)
        # Guard: an empty or unreadable config makes containerd fall back to system
        # paths (/var/lib/containerd, /run/containerd) silently.
        if not path.read_text().strip() or str(self.workdir) not in path.read_text():
            raise RuntimeError(f"containerd config {path} was not written correctly")
        return [self.binary, "--config", str(path)]
