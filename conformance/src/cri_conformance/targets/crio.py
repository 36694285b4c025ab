"""A CRI-O the suite starts, configures and stops itself (``--target crio``).

Everything lives in one private temp directory: storage root (vfs) and runroot, the
socket, version and shutdown files, crio.conf, registries.conf, policy.json, the auth
file, a private ``HOME`` whose ``.config/containers/certs.d`` holds the per-host TLS
files, and the log. conmon and runc come from Debian's packages, ``pinns`` is built
from the same source as ``crio`` (``cri_conformance.runtimes``). The process gets
``HTTP(S)_PROXY`` at the simulator's loopback proxy and ``SSL_CERT_FILE`` at the run's
CA, as every managed target does. Registry files are read at start-up, so a different
setup means a restart (``reconfigure``).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from cri_conformance.targets._crioconf import (
    CrioFiles,
    render_crio_config,
    write_crio_files,
)
from cri_conformance.targets._managed import ManagedTarget
from cri_conformance.targets.base import ImageInfo, RegistrySetup, TargetEnvironment

__all__ = ["CRIO_HELPERS", "CrioTarget", "as_digest", "as_storage_id"]

_BARE_ID = re.compile(r"[0-9a-f]{64}")


def as_digest(image_id: str) -> str:
    """``sha256:<hex>`` for CRI-O's bare-hex image ID; anything else unchanged.

    CRI leaves the form of an image ID to the runtime (api.proto: "an image ID or
    digest"). CRI-O answers with containers/storage's ID, the config digest's hex
    without its algorithm; the suite compares the digest itself (CRI-001), and the
    bare form is graded by its own CRI-O behaviour (CRIO-001).
    """
    return f"sha256:{image_id}" if _BARE_ID.fullmatch(image_id) else image_id


def as_storage_id(image: str) -> str:
    """The bare hex CRI-O looks images up by, for a ``sha256:<hex>`` from :func:`as_digest`.

    CRI-O reads ``sha256:<hex>`` as a short image name, not an ID.
    """
    algo, _, rest = image.partition(":")
    return rest if algo == "sha256" and _BARE_ID.fullmatch(rest) else image


#: Programs CRI-O runs beside itself, from Debian's packages.
CRIO_HELPERS = {"conmon": "/usr/bin/conmon", "runc": "/usr/bin/runc"}


class CrioTarget(ManagedTarget):
    """CRI-O 1.36 started by the suite; profile ``crio-1.36``."""

    name = "crio"
    #: containers/storage vfs keeps each layer under ``<root>/vfs/dir/<layer id>``.
    layers_dir_name = "dir"

    def __init__(
        self,
        *,
        binary: str,
        pinns: str | None = None,
        profile: str = "crio-1.36",
        environment: TargetEnvironment,
        setup: RegistrySetup | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        resolved = shutil.which(binary)
        if resolved is None:
            raise FileNotFoundError(
                f"crio binary {binary!r} not found: build it with 'python -m "
                "cri_conformance.runtimes build crio-1.36.3 --upstream DIR' and pass "
                "--runtime crio-1.36.3 (or --crio-bin PATH)"
            )
        helper = Path(pinns) if pinns else Path(resolved).with_name("pinns")
        if not helper.is_file():
            raise FileNotFoundError(
                f"pinns not found at {helper}: it is built next to crio by "
                "'python -m cri_conformance.runtimes build crio-1.36.3'"
            )
        for program, path in CRIO_HELPERS.items():
            if not Path(path).is_file():
                raise FileNotFoundError(
                    f"{path} not found: CRI-O needs {program} "
                    f"(apt-get install -y conmon runc)"
                )
        super().__init__(
            workdir=Path(tempfile.mkdtemp(prefix="cri-conformance-crio-")),
            profile=profile,
            setup=setup or RegistrySetup(),
            environment=environment,
            start_timeout=start_timeout,
        )
        self.binary = resolved
        self.pinns = helper
        self.files: CrioFiles | None = None
        self.boot()

    @property
    def socket(self) -> Path:
        return self.workdir / "crio.sock"

    @property
    def home(self) -> Path:
        return self.workdir / "home"

    @property
    def unsupported(self) -> Mapping[str, str]:
        """Needs of the setup CRI-O cannot express: {need: reason}."""
        return dict(self.files.unsupported) if self.files is not None else {}

    def _environ(self) -> dict[str, str]:
        env = super()._environ()
        env["HOME"] = str(self.home)
        env["CONTAINERS_STORAGE_CONF"] = str(self.workdir / "storage.conf")
        env["XDG_RUNTIME_DIR"] = str(self.workdir / "xdg")
        return env

    def _launch(self) -> list[str]:
        for sub in (
            "root", "runroot", "state", "pods", "ns", "exits", "attach", "hooks",
            "cdi", "keys", "runc", "policies", "auth", "tmp", "cni/conf", "cni/bin",
            "home", "xdg", "conf.d",
        ):  # fmt: skip
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        self.files = write_crio_files(self.workdir, self.setup, home=self.home)
        (self.workdir / "storage.conf").write_text(
            "[storage]\n"
            'driver = "vfs"\n'
            f'graphroot = "{self.workdir / "root"}"\n'
            f'runroot = "{self.workdir / "runroot"}"\n'
        )
        config = self.workdir / "crio.conf"
        config.write_text(render_crio_config(self.workdir, pinns=self.pinns))
        if str(self.workdir) not in config.read_text():
            raise RuntimeError(f"crio config {config} was not written correctly")
        return [
            self.binary,
            "--config",
            str(config),
            "--config-dir",
            str(self.workdir / "conf.d"),
            # Hidden flags (internal/criocli/criocli.go): the private registries.conf
            # and an empty drop-in directory instead of /etc/containers.
            "--registries-conf",
            str(self.workdir / "registries.conf"),
            "--registries-conf-dir",
            str(self.workdir / "registries.conf.d"),
        ]

    # -- CRI, image IDs in digest form (see as_digest) -----------------------------
    def pull(
        self,
        image: str,
        auth: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> str:
        return as_digest(super().pull(image, auth, timeout=timeout))

    def status(self, image: str, *, verbose: bool = False) -> ImageInfo | None:
        info = super().status(as_storage_id(image), verbose=verbose)
        return (
            None if info is None else dataclasses.replace(info, id=as_digest(info.id))
        )

    def list(self) -> list[ImageInfo]:
        return [dataclasses.replace(i, id=as_digest(i.id)) for i in super().list()]

    def remove(self, image: str) -> None:
        super().remove(as_storage_id(image))
