"""A CRI runtime process the suite starts, watches, restarts and stops.

Subclasses say how to launch the runtime (``_launch``) and where its socket is;
everything else — readiness through the CRI ``Version`` call, crash detection with
the log tail as evidence, restart after a crash, clean shutdown — lives here once.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from cri_conformance.targets.base import (
    Capability,
    ImageInfo,
    RegistrySetup,
    TargetCrashed,
    TargetEnvironment,
    TargetRefused,
)
from cri_conformance.targets.cri import CRIClient

__all__ = ["ManagedTarget"]


class ManagedTarget:
    """Common life cycle of a runtime process spoken to over its CRI socket."""

    name = "managed"
    capabilities: frozenset[str] = frozenset(
        {
            Capability.CONFIGURE_REGISTRIES,
            Capability.PROXY_ENVIRONMENT,
            Capability.RESTART,
        }
    )

    def __init__(
        self,
        *,
        workdir: Path,
        profile: str,
        setup: RegistrySetup,
        environment: TargetEnvironment,
        start_timeout: float = 30.0,
    ) -> None:
        self.workdir = workdir
        self.profile = profile
        self.setup = setup
        self.environment = environment
        self.start_timeout = start_timeout
        self.restarts = 0
        #: CRI API version to speak (``auto`` asks ``Version`` under both).
        self.cri_api = "auto"
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: CRIClient | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    # -- what a subclass provides ----------------------------------------------
    @property
    def socket(self) -> Path:
        raise NotImplementedError

    def _launch(self) -> list[str]:
        """Write the runtime's configuration; return its command line."""
        raise NotImplementedError

    def _refusal(self) -> str | None:
        """Why the running process will never serve CRI (its own words), if it says so.

        Asked while the socket answers but CRI does not; None: keep waiting.
        """
        return None

    # -- life cycle -------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _environ(self) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        env.update(self.environment.as_environ())
        return env

    def boot(self) -> None:
        """First start; on failure nothing of the target is left behind."""
        try:
            self.start()
        except BaseException:
            self.close()
            raise

    def start(self) -> None:
        argv = self._launch()
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._environ(),
                start_new_session=True,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last_error = "socket never appeared"
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise TargetCrashed(
                    f"{self.name} exited with {self._proc.returncode} during start-up",
                    log_tail=self.log_tail(),
                )
            if self.socket.exists():
                try:
                    client = CRIClient(
                        str(self.socket), api=self.cri_api, on_unavailable=self.log_tail
                    )
                    client.version()
                    # Version answers before start-up recovery ends; image calls
                    # fail with "not initialized" until then (CRI-006).
                    client.list()
                except Exception as exc:  # not ready yet: retry until the deadline
                    last_error = str(exc)
                    refusal = self._refusal()
                    if refusal is not None:
                        self.stop()
                        raise TargetRefused(
                            f"{self.name} does not serve CRI: {refusal}",
                            log_tail=self.log_tail(),
                        ) from exc
                else:
                    self._client = client
                    return
            time.sleep(0.05)
        self.stop()
        raise TargetCrashed(
            f"{self.name} not ready after {self.start_timeout}s: {last_error}",
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

    def kill(self) -> None:
        """SIGKILL the runtime (a crash, as far as it can tell); ``restart`` revives it."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def restart(self) -> None:
        self.stop()
        self.restarts += 1
        self.start()

    def reconfigure(self, setup: RegistrySetup) -> None:
        """Apply a new registry setup (read only at start-up: restart)."""
        if setup != self.setup:
            self.setup = setup
            self.restart()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- CRI ---------------------------------------------------------------------
    @property
    def client(self) -> CRIClient:
        if self._client is None or not self.alive():
            raise TargetCrashed(f"{self.name} is not running", log_tail=self.log_tail())
        return self._client

    def pull(
        self,
        image: str,
        auth: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> str:
        return self.client.pull(image, auth, timeout=timeout)

    def status(self, image: str, *, verbose: bool = False) -> ImageInfo | None:
        return self.client.status(image, verbose=verbose)

    def list(self) -> list[ImageInfo]:
        return self.client.list()

    def remove(self, image: str) -> None:
        self.client.remove(image)
