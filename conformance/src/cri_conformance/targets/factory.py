"""Build the target named by ``--target`` for a session's world."""

from __future__ import annotations

from pathlib import Path

from cri_conformance.targets.base import RegistrySetup, Target, TargetEnvironment

__all__ = ["TARGET_KINDS", "make_target"]

TARGET_KINDS = ("reference", "reference-grpc", "cri", "containerd")


def make_target(
    kind: str,
    *,
    profile: str,
    workdir: Path,
    setup: RegistrySetup,
    environment: TargetEnvironment,
    cri_endpoint: str | None = None,
    cri_api: str = "auto",
    containerd_bin: str = "containerd",
) -> Target:
    """Start (or connect to) the target under test.

    Raises:
        ValueError: an unknown kind or a missing ``--cri-endpoint``.
        FileNotFoundError: a managed runtime's binary is not installed.
    """
    if kind == "reference":
        from cri_conformance.targets.reference import ReferenceTarget

        return ReferenceTarget(
            root=workdir / "reference-root",
            profile=profile,
            setup=setup,
            environment=environment,
        )
    if kind == "reference-grpc":
        from cri_conformance.targets.reference import ReferenceGrpcTarget

        return ReferenceGrpcTarget(
            workdir=workdir / "reference-grpc",
            profile=profile,
            setup=setup,
            environment=environment,
        )
    if kind == "containerd":
        from cri_conformance.targets.containerd import ContainerdTarget

        return ContainerdTarget(
            binary=containerd_bin,
            profile=profile,
            environment=environment,
            setup=setup,
        )
    if kind == "cri":
        from cri_conformance.targets.cri import CRITarget

        if not cri_endpoint:
            raise ValueError("--target cri needs --cri-endpoint unix:///path/to.sock")
        return CRITarget(cri_endpoint, profile=profile, api=cri_api)
    raise ValueError(f"unknown target {kind!r} (one of {', '.join(TARGET_KINDS)})")
