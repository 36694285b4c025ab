"""The installed distribution's version, for ``--version`` and CRI ``Version``."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["DISTRIBUTION", "package_version"]

#: refpull ships in this distribution (with registry_sim and cri_conformance).
DISTRIBUTION = "cri-pull-conformance"


def package_version() -> str:
    """The version of the installed distribution (``0+unknown`` from a bare tree)."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # pragma: no cover - only without any install
        return "0+unknown"
