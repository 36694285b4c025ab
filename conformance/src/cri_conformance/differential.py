"""Differential mode: the same generated case against the target and the reference.

``--compare-with reference`` runs every generated case twice — once against the target
under test, once against an in-process reference with the same profile, registry setup
and environment — on two repositories holding identical content, and compares what a
black box can see: the outcome (image ID or gRPC code), ``ImageStatus``, and the set of
registry requests (repository names normalized). Hypothesis shrinks a divergence to a
minimal case.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from cri_conformance.targets.base import ImageInfo, Target, TargetError
from cri_conformance.world import World

__all__ = ["Observation", "observe"]

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Observation:
    """What one pull looked like from outside."""

    image_ref: str | None
    code: str | None
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    size: int | None
    user: tuple[int | None, str] | None
    requests: frozenset[tuple[str, str, str]]

    def summary(self) -> str:
        outcome = self.image_ref or f"error {self.code}"
        lines = [f"outcome: {outcome}", f"tags: {list(self.repo_tags)}"]
        lines.append(f"digests: {list(self.repo_digests)}, size: {self.size}")
        lines += [f"  {m} {h} {p}" for m, h, p in sorted(self.requests)]
        return "\n".join(lines)


def _normalize(text: str, repo: str, registry: str) -> str:
    return text.replace(repo, "{repo}").replace(registry, "{registry}")


def _path_kind(path: str) -> str:
    # Digests differ in nothing between the two runs, but keep them short to read.
    return _DIGEST.sub("{digest}", path)


def observe(
    target: Target,
    world: World,
    *,
    image: str,
    repo: str,
    registry: str,
    auth: Mapping[str, str] | None = None,
) -> Observation:
    """Pull *image* with *target* and record what a CRI client and the registry saw."""
    before = len(world.exchanges(repo=repo))
    try:
        image_ref: str | None = target.pull(image, auth)
        code = None
    except TargetError as exc:
        image_ref, code = None, exc.code
    info: ImageInfo | None = target.status(image) if image_ref else None
    exchanges = world.exchanges(repo=repo)[before:]
    requests = frozenset(
        (
            ex.method,
            _normalize(ex.host, repo, registry),
            _path_kind(_normalize(ex.path, repo, registry)),
        )
        for ex in exchanges
        if ex.status != 401  # retry counts after a challenge may legitimately differ
    )
    if image_ref:
        target.remove(image_ref)
    return Observation(
        image_ref=image_ref,
        code=code,
        repo_tags=tuple(_normalize(t, repo, registry) for t in info.repo_tags)
        if info
        else (),
        repo_digests=tuple(_normalize(d, repo, registry) for d in info.repo_digests)
        if info
        else (),
        size=info.size if info else None,
        user=(info.uid, info.username) if info else None,
        requests=requests,
    )
