"""The suite's command-line options and Hypothesis profiles (used by the pytest plugin).

Environment variables are read here, as option defaults, and nowhere else below
tox.ini (STYLE.md point 7): ``CRI_ENDPOINT``, ``CRI_API``, ``CONTAINERD_BIN``,
``CRIO_BIN`` and ``HYPOTHESIS_PROFILE``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from refpull.profiles import PROFILES

__all__ = [
    "CRI_APIS",
    "GRADING_OPTIONS",
    "RUNTIME_PROFILES",
    "TARGETS",
    "SuiteOptions",
    "add_options",
    "register_hypothesis_profiles",
    "resolve_options",
]

TARGETS = ("reference", "reference-grpc", "cri", "containerd", "crio")
#: Profiles of runtimes the reference does not model: a CRI-O is graded on the
#: CRI-wide behaviours and its own family's (catalog scope), never the reference.
RUNTIME_PROFILES = ("crio-1.36",)
CRI_APIS = ("v1", "v1alpha2", "auto")
#: Giving any of these switches the plugin into graded mode.
GRADING_OPTIONS = (
    "target",
    "profile",
    "report_dir",
    "expectations",
    "baseline",
    "compare_with",
)


@dataclass(frozen=True, kw_only=True)
class SuiteOptions:
    """The suite's command-line options, resolved (the ``suite_options`` fixture)."""

    target: str = "reference"
    profile: str = "seed"
    report_dir: Path | None = None
    cri_endpoint: str | None = None
    cri_api: str = "auto"
    containerd_bin: str | None = None
    crio_bin: str | None = None
    cri_config_hook: str | None = None
    expectations: Path | None = None
    compare_with: str | None = None
    baseline: Path | None = None
    graded: bool = False


def add_options(parser: pytest.Parser) -> None:
    """Add the suite's options to *parser* (``pytest_addoption``)."""
    env = os.environ
    group = parser.getgroup("cri-conformance", "CRI pull conformance suite")
    add = group.addoption
    add("--target", choices=TARGETS, help="what to grade (default: reference)")
    add(
        "--profile",
        choices=sorted(PROFILES) + list(RUNTIME_PROFILES),
        help="behaviour profile (default: seed for reference targets, "
        "containerd-1.6 for cri and containerd)",
    )
    add("--report-dir", help="write report.json, report.md and report.html here")
    add(
        "--cri-endpoint",
        default=env.get("CRI_ENDPOINT"),
        help="CRI socket for --target cri (env CRI_ENDPOINT)",
    )
    add(
        "--cri-api",
        default=env.get("CRI_API", "auto"),
        help="CRI API version: v1, v1alpha2 or auto (env CRI_API)",
    )
    add(
        "--containerd-bin",
        default=env.get("CONTAINERD_BIN"),
        help="containerd binary for --target containerd (env CONTAINERD_BIN)",
    )
    add(
        "--crio-bin",
        default=env.get("CRIO_BIN"),
        help="crio binary for --target crio, pinns next to it (env CRIO_BIN)",
    )
    add(
        "--cri-config-hook",
        default=env.get("CRI_CONFIG_HOOK"),
        help="for --target cri: a command run once before the suite that applies "
        "the suite's registry setup to your runtime; it gets CRI_CONFORMANCE_CONFIG "
        "(a containerd config.toml fragment), CRI_CONFORMANCE_PROXY and "
        "CRI_CONFORMANCE_CA_FILE, and must make the runtime use them (env "
        "CRI_CONFIG_HOOK)",
    )
    add("--expectations", help="TOML file of known deviations (strict xfails)")
    add("--compare-with", choices=TARGETS, help="a second target to compare with")
    add("--baseline", help="an earlier report.json: report verdict changes")


def resolve_options(config: pytest.Config) -> SuiteOptions:
    """Resolve defaults that depend on other options.

    Raises:
        pytest.UsageError: ``--cri-api``/``CRI_API`` is not a known version.
    """
    get = config.getoption
    target = get("target") or "reference"
    default_profile = "seed" if target.startswith("reference") else "containerd-1.6"
    if target == "crio":
        default_profile = "crio-1.36"
    profile = get("profile") or default_profile
    if target.startswith("reference") and profile in RUNTIME_PROFILES:
        raise pytest.UsageError(
            f"--profile {profile} has no reference model: use it with --target crio "
            "or --target cri"
        )
    cri_api = get("cri_api")
    if cri_api not in CRI_APIS:
        raise pytest.UsageError(f"--cri-api must be one of {CRI_APIS}, not {cri_api!r}")

    def path(name: str) -> Path | None:
        value = get(name)
        return Path(value) if value else None

    return SuiteOptions(
        target=target,
        profile=profile,
        report_dir=path("report_dir"),
        cri_endpoint=get("cri_endpoint"),
        cri_api=cri_api,
        containerd_bin=get("containerd_bin"),
        crio_bin=get("crio_bin"),
        cri_config_hook=get("cri_config_hook"),
        expectations=path("expectations"),
        compare_with=get("compare_with"),
        baseline=path("baseline"),
        graded=any(get(name) is not None for name in GRADING_OPTIONS),
    )


def register_hypothesis_profiles() -> None:
    """Register ``dev``, ``ci`` and ``thorough`` and load ``HYPOTHESIS_PROFILE``.

    Raises:
        pytest.UsageError: ``HYPOTHESIS_PROFILE`` names no registered profile.
    """
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:  # pragma: no cover - hypothesis is a test extra
        return
    settings.register_profile("dev", max_examples=20)
    settings.register_profile(
        "ci",
        derandomize=True,
        max_examples=50,
        print_blob=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.register_profile("thorough", max_examples=500, deadline=None)
    name = os.environ.get("HYPOTHESIS_PROFILE", "dev")
    try:
        settings.load_profile(name)
    except Exception as exc:  # hypothesis raises its InvalidArgument
        raise pytest.UsageError(f"HYPOTHESIS_PROFILE={name!r}: {exc}") from exc
