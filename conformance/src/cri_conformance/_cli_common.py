"""What the ``cri-conformance`` sub-commands share: their error, version and data.

The wheel carries the suite as ``cri_conformance/_suite`` and the expectations files as
``cri_conformance/_expectations`` (hatch ``force-include``); a checkout has them under
``conformance/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["CLIError", "expectations_dir", "package_version", "suite_dir"]


class CLIError(Exception):
    """A usage error: printed as one line naming what to do, exit status 2."""


def package_version() -> str:
    """The installed distribution's version (``0+unknown`` from a bare tree)."""
    try:
        return version("cri-pull-conformance")
    except PackageNotFoundError:  # pragma: no cover - only without any install
        return "0+unknown"


def _packaged_or_checkout(packaged: str, checkout: Sequence[str], probe: str) -> Path:
    here = Path(__file__).resolve().parent
    if (here / packaged / probe).exists():
        return here / packaged
    for parent in here.parents:
        candidate = parent.joinpath(*checkout)
        if (candidate / probe).exists():
            return candidate
    raise CLIError(
        f"the suite's {'/'.join(checkout)} is not installed with cri_conformance: "
        "reinstall the cri-pull-conformance wheel"
    )


def suite_dir() -> Path:
    """The suite: ``cri_conformance/_suite`` in a wheel, ``conformance/suite`` in a checkout.

    Raises:
        CLIError: neither place has it.
    """
    return _packaged_or_checkout("_suite", ("conformance", "suite"), "conftest.py")


def expectations_dir() -> Path:
    """The shipped expectations files (``NAME.toml``, one per graded runtime)."""
    return _packaged_or_checkout("_expectations", ("conformance", "expectations"), ".")
