"""Targets: the CRI runtimes the suite grades, behind one interface (``base.Target``)."""

from __future__ import annotations

from cri_conformance.targets.base import (
    AuthSpec,
    Capability,
    HostSettings,
    ImageInfo,
    RegistrySetup,
    Target,
    TargetCrashed,
    TargetEnvironment,
    TargetError,
)

__all__ = [
    "AuthSpec",
    "Capability",
    "HostSettings",
    "ImageInfo",
    "RegistrySetup",
    "Target",
    "TargetCrashed",
    "TargetEnvironment",
    "TargetError",
]
