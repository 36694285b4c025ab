"""The reference puller as a target: in-process (``reference``) or over gRPC (``reference-grpc``).

Both are configured exactly like the containerd target: the session's registry setup
is rendered as the ``config.toml`` (and ``hosts.toml`` files) of the containerd
generation the profile models (``containerd_config``: version 1 for the seed, 2 for
1.6/1.7, 3 for 2.x; tables or hosts style) and parsed by ``refpull.settings.config``, and the
environment carries the proxy and the run's CA bundle (``SSL_CERT_FILE``, which Go's
system pool and OpenSSL's default paths both honour).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import refpull
from cri_conformance.targets._managed import ManagedTarget
from cri_conformance.targets.base import (
    Capability,
    ImageInfo,
    RegistrySetup,
    TargetEnvironment,
    TargetError,
    TargetRefused,
)
from cri_conformance.targets.containerd_config import GENERATIONS, Generation, render
from refpull.budget import Cancel
from refpull.cri.index import CRIImage
from refpull.cri.service import ImageService, grpc_code
from refpull.errors import ConfigError, RefpullError
from refpull.profiles import get_profile
from refpull.settings.config import parse_config
from refpull.settings.credentials import AuthConfig

__all__ = ["ReferenceGrpcTarget", "ReferenceTarget"]


def _generation(profile: str) -> Generation:
    """The containerd generation whose configuration dialect *profile* reads (CFG-001)."""
    for generation in GENERATIONS.values():
        if generation.profile == profile:
            return generation
    return GENERATIONS["1.6"]


def write_config(
    directory: Path, setup: RegistrySetup, profile: str, style: str | None
) -> tuple[Path, dict[str, str], str]:
    """Write config.toml and its hosts.toml files into *directory*.

    Returns the config's path, the hosts the dialect could not configure and the
    registry style used.
    """
    rendered = render(directory, setup, _generation(profile), style=style)
    directory.mkdir(parents=True, exist_ok=True)
    for namespace, text in rendered.hosts.items():
        (directory / "certs.d" / namespace).mkdir(parents=True, exist_ok=True)
        (directory / "certs.d" / namespace / "hosts.toml").write_text(text)
    path = directory / "config.toml"
    path.write_text(rendered.config)
    return path, dict(rendered.unsupported), rendered.style


class ReferenceTarget:
    """``refpull.cri.service.ImageService`` called in-process (the suite's default)."""

    capabilities = frozenset(
        {Capability.CONFIGURE_REGISTRIES, Capability.PROXY_ENVIRONMENT}
    )

    def __init__(
        self,
        *,
        root: Path,
        profile: str,
        setup: RegistrySetup,
        environment: TargetEnvironment,
        config_style: str | None = None,
    ) -> None:
        self.name = "reference"
        self.profile = profile
        self.root = root
        self.setup = setup
        self.config_style = config_style
        self.unsupported_hosts: dict[str, str] = {}
        self.registry_style = ""
        self.environment = environment
        self._saved_cert_file = os.environ.get("SSL_CERT_FILE")
        if environment.ca_bundle:
            # The in-process runtime's "system roots", as SSL_CERT_FILE is for a
            # runtime process; restored by close().
            os.environ["SSL_CERT_FILE"] = environment.ca_bundle
        try:
            self._service = self._open()
        except BaseException:
            self._restore_cert_file()
            raise

    def _open(self) -> ImageService:
        refpull_profile = get_profile(self.profile)
        path, self.unsupported_hosts, self.registry_style = write_config(
            self.root, self.setup, self.profile, self.config_style
        )
        try:
            config = parse_config(path.read_text(), refpull_profile)
        except ConfigError as exc:
            # containerd's CRI plugin fails its config check the same way (CFG-006).
            raise TargetRefused(f"{self.name} does not serve CRI: {exc}") from exc
        return ImageService(
            self.root / "state",
            config,
            refpull_profile,
            environ=self.environment.as_environ(),
        )

    def reconfigure(self, setup: RegistrySetup) -> None:
        if setup != self.setup:
            self._service.close()
            self.setup = setup
            self._service = self._open()

    def pull(
        self,
        image: str,
        auth: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> str:
        config = AuthConfig.from_mapping(auth) if auth is not None else None
        if timeout is not None:
            return self._pull_with_deadline(image, config, timeout)
        with _as_target_error():
            return self._service.pull_image(image, config)

    def _pull_with_deadline(
        self, image: str, config: AuthConfig | None, timeout: float
    ) -> str:
        """A PullImage call with a deadline, as ``refpull serve`` runs one.

        At the deadline the caller, like a gRPC client, stops waiting
        (DEADLINE_EXCEEDED unless the pull answered first) and the pull's
        :class:`Cancel` fires with the reason refpull's gRPC server gives it
        (``context deadline exceeded``); the pull goes on in its thread until it
        sees the cancellation.
        """
        cancel = Cancel()
        outcome: list[str | BaseException] = []

        def call() -> None:
            try:
                outcome.append(self._service.pull_image(image, config, cancel))
            except BaseException as exc:  # handed to the caller below
                outcome.append(exc)

        worker = threading.Thread(target=call, name=f"pull {image}", daemon=True)
        worker.start()
        worker.join(timeout)
        if not outcome:
            cancel.cancel("context deadline exceeded")
            raise TargetError("DEADLINE_EXCEEDED", "context deadline exceeded")
        result = outcome[0]
        if isinstance(result, BaseException):
            with _as_target_error():
                raise result
        return result

    def status(self, image: str, *, verbose: bool = False) -> ImageInfo | None:
        with _as_target_error():
            found, info = self._service.image_status(image, verbose)
        return None if found is None else _info(found, info)

    def list(self) -> list[ImageInfo]:
        with _as_target_error():
            images = self._service.list_images()
        return [_info(image, {}) for image in images]

    def remove(self, image: str) -> None:
        with _as_target_error():
            self._service.remove_image(image)

    def close(self) -> None:
        self._service.close()
        self._restore_cert_file()

    def _restore_cert_file(self) -> None:
        if self._saved_cert_file is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = self._saved_cert_file


@contextlib.contextmanager
def _as_target_error() -> Iterator[None]:
    """Turn refpull errors into what a CRI client sees: a status code and text."""
    try:
        yield
    except RefpullError as exc:
        raise TargetError(grpc_code(exc), str(exc)) from exc


def _info(image: CRIImage, info: Mapping[str, str]) -> ImageInfo:
    return ImageInfo(
        id=image.id,
        repo_tags=tuple(image.repo_tags),
        repo_digests=tuple(image.repo_digests),
        size=image.size,
        uid=image.uid,
        username=image.username,
        info=dict(info),
    )


class ReferenceGrpcTarget(ManagedTarget):
    """``refpull serve`` in a subprocess, spoken to over its CRI unix socket."""

    name = "reference-grpc"

    def __init__(
        self,
        *,
        workdir: Path,
        profile: str,
        setup: RegistrySetup,
        environment: TargetEnvironment,
        config_style: str | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.config_style = config_style
        self.unsupported_hosts: dict[str, str] = {}
        self.registry_style = ""
        super().__init__(
            workdir=workdir,
            profile=profile,
            setup=setup,
            environment=environment,
            start_timeout=start_timeout,
        )
        self.boot()

    @property
    def socket(self) -> Path:
        return self.workdir / "refpull.sock"

    def _environ(self) -> dict[str, str]:
        env = super()._environ()
        # ``refpull serve`` runs the refpull this process imported, not whichever one
        # its interpreter finds first: under the mutation gate that is the mutated
        # copy (PYTHONPATH), which a bare environment would silently replace.
        env["PYTHONPATH"] = str(Path(refpull.__file__).resolve().parents[1])
        return env

    def _launch(self) -> list[str]:
        config, self.unsupported_hosts, self.registry_style = write_config(
            self.workdir, self.setup, self.profile, self.config_style
        )
        try:
            # ``refpull serve`` would exit with it: say so as a refusal (CFG-006).
            parse_config(config.read_text(), get_profile(self.profile))
        except ConfigError as exc:
            raise TargetRefused(f"{self.name} does not serve CRI: {exc}") from exc
        root = str(self.workdir / "root")
        return [
            *(sys.executable, "-m", "refpull", "serve"),
            *("--listen", f"unix://{self.socket}", "--root", root),
            *("--config", str(config), "--profile", self.profile),
        ]
