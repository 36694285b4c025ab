"""One conformance case's view of the world: its repository, images, pulls and journal.

Isolation is by construction (STYLE.md point 14): every case pushes to its own
repository ``t/<case>-<nonce>`` and builds images with a per-case nonce in the config,
so a runtime's content store can never satisfy a pull from an earlier case. Teardown
removes what the case pulled.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from cri_conformance.targets.base import Capability, ImageInfo, Target, TargetError
from cri_conformance.world import World
from registry_sim.images import Config, Image, Layer
from registry_sim.journal import Exchange

__all__ = ["DEADLINE_CODES", "Case", "case_repo"]

#: How a caller sees a call that ended at its own deadline. gRPC's client timer gives
#: DEADLINE_EXCEEDED; a runtime whose handler notices the expired context first may
#: answer CANCELLED (``context canceled``) a moment before it. Which one arrives is a
#: race on the wire (seen on containerd 2.3.4 and CRI-O 1.36.3), not a behaviour.
DEADLINE_CODES = frozenset({"DEADLINE_EXCEEDED", "CANCELLED"})


#: The containerd line, oldest first: what a generation introduced holds in the later
#: ones unless a later profile changes it (then the scenario names both ends).
CONTAINERD_LINE = (
    "seed",
    "containerd-1.6",
    "containerd-1.7",
    "containerd-2.0",
    "containerd-2.3",
)


def case_repo(nodeid: str, nonce: str) -> str:
    """A repository name for a test: lower-case, grammar-safe, unique per run."""
    name = nodeid.rsplit("::", 1)[-1]
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "case"
    digest = hashlib.sha256(f"{nodeid}|{nonce}".encode()).hexdigest()[:10]
    return f"t/{slug}-{digest}"


@dataclass
class Case:
    """The per-test helper scenarios use (``case`` fixture)."""

    world: World
    target: Target
    profile: str
    repo: str
    nonce: str
    pulled: list[str] = field(default_factory=list)
    #: The CRI calls of this case and what came back, for the report's evidence.
    calls: list[str] = field(default_factory=list)

    def since(self, first: str) -> bool:
        """The case's profile is containerd generation *first* or a later one."""
        line = CONTAINERD_LINE
        return self.profile in line and line.index(self.profile) >= line.index(first)

    def require_tables(self) -> None:
        """UNSUPPORTED unless the target's registries are configured as tables.

        Cases about ``registry.mirrors`` endpoint strings: hosts.toml gives the same
        strings other meanings, graded by its own cases.
        """
        style = getattr(self.target, "registry_style", "")
        if style and style != "tables":
            pytest.skip(
                f"unsupported: a registry.mirrors table case; the {self.target.name} "
                "target is configured with hosts.toml files"
            )

    def require(self, *capabilities: str) -> None:
        """Report the case UNSUPPORTED unless the target has every capability."""
        missing = [c for c in capabilities if c not in self.target.capabilities]
        if missing:
            pytest.skip(
                f"unsupported: needs {', '.join(missing)}, which the suite cannot "
                f"give the {self.target.name} target"
            )

    def _require_for(self, host: str | None) -> None:
        # A managed runtime names the hosts its generation could not be configured for.
        reason = getattr(self.target, "unsupported_hosts", {}).get(host or "")
        if reason:
            pytest.skip(f"unsupported: {reason}")
        if host is not None and not host.startswith(("127.", "[::1]", "localhost")):
            # A named host is reached through the suite's proxy, and most named hosts
            # exist only in the registry setup the suite gives the runtime.
            self.require(Capability.PROXY_ENVIRONMENT, Capability.CONFIGURE_REGISTRIES)

    # -- images ----------------------------------------------------------------------
    def layer(self, index: int = 0, *, size: int = 512) -> Layer:
        """A small random layer unique to this case."""
        return Layer.random(size, seed=f"{self.nonce}-{self.repo}-{index}")

    def image(
        self,
        *,
        layers: int = 1,
        flavour: str = "schema2",
        config: Config | None = None,
        salt: str = "",
    ) -> Image:
        """A schema2 (or OCI) image unique to this case (and *salt*)."""
        built = [self.layer(i) for i in range(layers)]
        nonce = f"{self.nonce}-{self.repo}-{salt}"
        if flavour == "oci":
            return Image.oci(built, config, nonce=nonce)
        return Image.schema2(built, config, nonce=nonce)

    def push(
        self, image: object, tag: str | None = "1", *, host: str | None = None
    ) -> str:
        """Store *image* in this case's repository; returns the root digest."""
        self._require_for(host)
        reference = f"{self.repo}:{tag}" if tag else self.repo
        return self.world.sim.push(image, reference, host=host)  # type: ignore[arg-type]

    def ref(
        self,
        tag: str | None = "1",
        *,
        host: str | None = None,
        digest: str | None = None,
    ) -> str:
        """The image reference a runtime pulls for this case's repository."""
        self._require_for(host)
        registry = host or self.world.sim.host_port
        ref = f"{registry}/{self.repo}"
        if tag:
            ref += f":{tag}"
        if digest:
            ref += f"@{digest}"
        return ref

    # -- the target ------------------------------------------------------------------
    def pull(self, image: str, auth: Mapping[str, str] | None = None) -> str:
        image_ref = self.target.pull(image, auth)
        self.pulled.append(image_ref)
        return image_ref

    def pull_error(
        self, image: str, auth: Mapping[str, str] | None = None
    ) -> TargetError:
        """Pull *image* expecting failure; returns the error (fails if it succeeds)."""
        try:
            image_ref = self.target.pull(image, auth)
        except TargetError as exc:
            return exc
        self.pulled.append(image_ref)
        raise AssertionError(
            f"pull of {image!r} succeeded with {image_ref}; expected an error"
        )

    def status(self, image: str, *, verbose: bool = False) -> ImageInfo | None:
        return self.target.status(image, verbose=verbose)

    def cleanup(self) -> None:
        for image_ref in dict.fromkeys(self.pulled):
            with contextlib.suppress(TargetError):
                self.target.remove(image_ref)

    # -- the registry side -----------------------------------------------------------
    def exchanges(self, *, host: str | None = None) -> list[Exchange]:
        """What the registries saw for this case's repository, in time order."""
        found = self.world.exchanges(repo=self.repo)
        if host is not None:
            found = [ex for ex in found if _host_matches(ex.host, host)]
        return found

    def blob_gets(self, digests: Sequence[str] | None = None) -> list[Exchange]:
        gets = [
            ex for ex in self.exchanges() if ex.method == "GET" and "/blobs/" in ex.path
        ]
        if digests is None:
            return gets
        return [ex for ex in gets if any(d in ex.path for d in digests)]

    def journal_text(self) -> str:
        return "\n".join(ex.line() for ex in self.exchanges()) or "(no requests)"


def _host_matches(seen: str, wanted: str) -> bool:
    return seen == wanted or seen.split(":")[0] == wanted
