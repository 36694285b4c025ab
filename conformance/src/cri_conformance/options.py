"""The suite's command-line options and Hypothesis profiles (used by the pytest plugin).

Environment variables are read here, as option defaults, and nowhere else below
tox.ini (STYLE.md point 7): ``CRI_ENDPOINT``, ``CRI_API``, ``CONTAINERD_BIN``,
``CRIO_BIN``, ``CRI_CONFORMANCE_UPSTREAM`` and ``HYPOTHESIS_PROFILE``.
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
    "runtime",
)
#: How a managed containerd is given its registries (``containerd_config.STYLES``).
REGISTRY_CONFIG_STYLES = ("tables", "hosts")
CONTAINERD_GENERATIONS = ("seed", "1.6", "1.7", "2.0", "2.3")


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
    #: ``--runtime``: the recipe name of a runtime built from source (``containerd-2.3.4``).
    runtime: str | None = None
    containerd_generation: str | None = None
    registry_config_style: str | None = None
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
        "--runtime",
        help="grade a runtime built from its source archive (python -m "
        "cri_conformance.runtimes list): builds it or reuses the cached build, and "
        "picks its target, binary and default profile",
    )
    add(
        "--upstream",
        default=env.get("CRI_CONFORMANCE_UPSTREAM"),
        help="directory holding the source archives for --runtime (env "
        "CRI_CONFORMANCE_UPSTREAM)",
    )
    add(
        "--containerd-generation",
        choices=CONTAINERD_GENERATIONS,
        help="config dialect of --containerd-bin (default: from containerd --version)",
    )
    add(
        "--registry-config-style",
        choices=REGISTRY_CONFIG_STYLES,
        help="how a managed containerd gets its registries: tables (registry.mirrors/"
        "configs) or hosts (hosts.toml under config_path); default: the runtime's own "
        "(tables up to 1.7, hosts from 2.0)",
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
        "(a containerd config.toml fragment), CRI_CONFORMANCE_HOSTS_DIR (the same "
        "registries as <namespace>/hosts.toml files), CRI_CONFORMANCE_SETUP_JSON "
        "(the neutral setup), CRI_CONFORMANCE_PROXY and CRI_CONFORMANCE_CA_FILE, and "
        "must make the runtime use them (env CRI_CONFIG_HOOK)",
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
    runtime = get("runtime")
    built = _build_runtime(runtime, get("upstream")) if runtime else None
    target = get("target") or (built[0] if built else "reference")
    containerd_bin = get("containerd_bin")
    crio_bin = get("crio_bin")
    generation = get("containerd_generation")
    default_profile = "seed" if target.startswith("reference") else "containerd-1.6"
    if built is not None:
        kind, binary, default_profile = built
        if kind != target:
            raise pytest.UsageError(f"--runtime {runtime} is a {kind}, not a {target}")
        if kind == "containerd":
            containerd_bin = binary
        else:
            crio_bin = binary
    elif target == "containerd" and not get("profile"):
        default_profile = _containerd_profile(containerd_bin, generation)
    if target == "crio" and built is None:
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
        containerd_bin=containerd_bin,
        crio_bin=crio_bin,
        runtime=runtime,
        containerd_generation=generation,
        registry_config_style=get("registry_config_style"),
        cri_config_hook=get("cri_config_hook"),
        expectations=path("expectations"),
        compare_with=get("compare_with"),
        baseline=path("baseline"),
        graded=any(get(name) is not None for name in GRADING_OPTIONS),
    )


def _build_runtime(name: str, upstream: str | None) -> tuple[str, str, str]:
    """Build (or reuse) runtime *name*; return its target kind, binary and profile.

    Raises:
        pytest.UsageError: an unknown name, or the build failed.
    """
    from cri_conformance.runtimes import BuildError, build, get_recipe

    try:
        recipe = get_recipe(name)
        built = build(recipe, upstream=Path(upstream) if upstream else None)
    except KeyError as exc:
        raise pytest.UsageError(f"--runtime: {exc.args[0]}") from exc
    except BuildError as exc:
        raise pytest.UsageError(f"--runtime {name}: {exc}") from exc
    kind = "containerd" if recipe.binary == "containerd" else "crio"
    return kind, str(built.binary), recipe.profile


def _containerd_profile(binary: str | None, generation: str | None) -> str:
    """The default profile of ``--target containerd``: its generation's."""
    import shutil

    from cri_conformance.targets.containerd import binary_generation
    from cri_conformance.targets.containerd_config import (
        GENERATIONS,
        UnsupportedSetup,
    )

    if generation is not None:
        return GENERATIONS[generation].profile
    resolved = shutil.which(binary or "containerd")
    if resolved is None:
        return "containerd-1.6"  # the target reports the missing binary
    try:
        return binary_generation(resolved).profile
    except UnsupportedSetup as exc:
        raise pytest.UsageError(str(exc)) from exc


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
