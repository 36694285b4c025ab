"""``cri-conformance``: grade a CRI runtime's image pulls from one command.

    cri-conformance run --runtime-endpoint unix:///run/containerd/containerd.sock
    cri-conformance run --target containerd --containerd-bin ./bin/containerd
    cri-conformance list [--cases] [--area AUTH]
    cri-conformance report reports/*/report.json --out reports/all
    cri-conformance diff old/report.json new/report.json

``run`` drives pytest over the suite shipped inside this package (``_suite``; a
source checkout's ``conformance/suite``) with the plugin's options, so ``pytest
conformance/suite --target ...`` stays equivalent. Flag names follow critest and
crictl where they overlap (``--runtime-endpoint``, ``--report-dir``). Every error is one
line on stderr naming what is wrong and what to do; exit status 2 for such usage
errors, otherwise pytest's (0 passed, 1 cases failed).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import socket as socketlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from cri_conformance._cli_parallel import run_parallel
from cri_conformance._cli_reports import (
    ReportInputError,
    add_report_parsers,
    run_diff,
    run_report,
)
from cri_conformance.catalog import AREAS, CatalogError, load_catalog
from cri_conformance.options import TARGETS
from cri_conformance.plugin import behavior_ids

__all__ = ["CLIError", "expectations_dir", "main", "pytest_args", "suite_dir"]

_PROG = "cri-conformance"


class CLIError(Exception):
    """A usage error: printed as one line, exit status 2."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cri-pull-conformance")
    except PackageNotFoundError:  # pragma: no cover - running from a bare tree
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


def _expectations_file(value: str) -> Path:
    path = Path(value)
    if path.is_file():
        return path.resolve()
    shipped = expectations_dir() / f"{value}.toml"
    if "/" not in value and shipped.is_file():
        return shipped
    names = sorted(p.stem for p in expectations_dir().glob("*.toml"))
    raise CLIError(
        f"--expectations {value}: no such file; give a path or one of the shipped "
        f"names: {', '.join(names) or '(none)'}"
    )


def _add_run_parser(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="run the suite against a target and write the report",
        description="Run the suite against a target and write report.json, .md "
        "and .html. Any other option goes to pytest and the suite's plugin (e.g. "
        "--runtime containerd-2.3.4, --crio-bin PATH, -x, -n 2 with pytest-xdist).",
    )
    add = run.add_argument
    add(
        "--target",
        choices=TARGETS,
        help="what to grade: the in-process reference (default), refpull serve over "
        "gRPC, any CRI endpoint (cri, implied by --runtime-endpoint) or a containerd "
        "the suite starts itself",
    )
    add(
        "-r",
        "--runtime-endpoint",
        metavar="ENDPOINT",
        help="CRI socket of the runtime to grade, e.g. "
        "unix:///run/containerd/containerd.sock (implies --target cri)",
    )
    add(
        "--containerd-bin",
        metavar="PATH",
        help="containerd binary for --target containerd (default: containerd on PATH)",
    )
    add("--profile", help="behaviour profile to grade against (see: list --profiles)")
    add(
        "--expectations",
        metavar="FILE|NAME",
        help="known deviations of the target (strict xfails): a TOML file or a "
        "shipped name such as containerd-1.6.20",
    )
    add(
        "--report-dir",
        metavar="DIR",
        default="cri-conformance-report",
        help="where report.json, report.md and report.html go (default: %(default)s)",
    )
    add("--baseline", metavar="REPORT.json", help="list what changed since this run")
    add("--junit", metavar="FILE", help="also write JUnit XML to FILE")
    add(
        "-k",
        metavar="EXPR",
        dest="keyword",
        help="only cases matching EXPR (pytest -k)",
    )
    add(
        "--area",
        action="append",
        default=[],
        metavar="AREA",
        help="only the cases of AREA, a case's area being its first behaviour's "
        f"(repeatable, or comma-separated: {','.join(AREAS)}); split a long run "
        "across CI jobs with it",
    )
    add("--cri-api", choices=("v1", "v1alpha2", "auto"), help="CRI API version")
    add(
        "--cri-config-hook",
        metavar="CMD",
        help="with a runtime endpoint: command that applies the suite's registry "
        "setup to your runtime (see the README)",
    )
    add(
        "--compare-with",
        choices=("reference",),
        help="also run the differential cases against the reference",
    )
    add(
        "--case-timeout",
        type=int,
        default=300,
        metavar="SECONDS",
        help="fail a case that runs longer (default: %(default)s)",
    )
    add(
        "-j",
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="split the catalog areas over N runs side by side (one target each) "
        "and merge their reports (default: 1)",
    )
    add("-v", "--verbose", action="count", default=0, help="one line per case")
    add("-q", "--quiet", action="store_true", help="only the summary")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Grade a CRI runtime's image pulls against the behaviour catalog.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run_parser(sub)
    listing = sub.add_parser(
        "list",
        help="list the catalog's behaviours, or the suite's cases",
        description="List behaviours (ID, level, scope, title) or, with --cases, "
        "the suite's cases with the behaviours each shows.",
    )
    listing.add_argument("--cases", action="store_true", help="list cases instead")
    listing.add_argument(
        "--profiles", action="store_true", help="list the behaviour profiles instead"
    )
    listing.add_argument(
        "--area", action="append", default=[], metavar="AREA", help="only AREA"
    )
    add_report_parsers(sub)
    return parser


def _areas(values: Sequence[str]) -> frozenset[str]:
    areas = frozenset(a.strip().upper() for v in values for a in v.split(",") if a)
    unknown = sorted(areas - set(AREAS))
    if unknown:
        raise CLIError(
            f"--area {','.join(unknown)}: not a catalog area; use one of "
            f"{','.join(AREAS)}"
        )
    return areas


class _AreaFilter:
    """Keeps the cases whose first behaviour belongs to one of the chosen areas.

    One area per case (its first ``behavior`` tag, as in the report), so runs split
    by area never run a case twice and their merged report counts each case once.
    """

    def __init__(self, areas: frozenset[str]) -> None:
        self.areas = areas

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        keep: list[pytest.Item] = []
        drop: list[pytest.Item] = []
        for item in items:
            ids = behavior_ids(item)
            area = ids[0].rsplit("-", 1)[0] if ids else ""
            (keep if area in self.areas else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep


def _check_runtime(args: argparse.Namespace, target: str) -> None:
    if target == "containerd":
        binary = args.containerd_bin or "containerd"
        if shutil.which(binary) is None:
            raise CLIError(
                f"containerd binary {binary!r} not found: install Debian's containerd "
                "package (apt-get install -y containerd) or pass --containerd-bin PATH"
            )
    if target == "cri" and not args.runtime_endpoint:
        raise CLIError(
            "--target cri needs --runtime-endpoint, e.g. "
            "unix:///run/containerd/containerd.sock"
        )
    endpoint = args.runtime_endpoint
    if endpoint and endpoint.startswith("unix://"):
        socket = Path(endpoint.removeprefix("unix://"))
        if not socket.exists():
            raise CLIError(
                f"--runtime-endpoint {endpoint}: {socket} does not exist; start the "
                "runtime first or pass its socket"
            )
        _check_listening(endpoint, socket)


def _check_listening(endpoint: str, path: Path) -> None:
    probe = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    try:
        probe.settimeout(5)
        probe.connect(str(path))
    except ConnectionRefusedError as exc:
        raise CLIError(
            f"--runtime-endpoint {endpoint}: nothing answers on {path} (a stale "
            "socket?); start the runtime first"
        ) from exc
    except OSError:
        pass  # e.g. permission denied: the run itself will say more
    finally:
        probe.close()


def pytest_args(args: argparse.Namespace) -> list[str]:
    """The pytest command line for a parsed ``run`` (without the area filter).

    Raises:
        CLIError: an option that cannot work (missing runtime, unknown file).
    """
    target = args.target or ("cri" if args.runtime_endpoint else None)
    extra = [a for a in args.pytest_extra if a != "--"]
    if target is not None and not any(
        a.startswith("--runtime=") or a == "--runtime" for a in extra
    ):
        _check_runtime(args, target)
    suite = suite_dir()
    report_dir = Path(args.report_dir).resolve()
    # A fixed, self-contained configuration: the same in a checkout and in a wheel,
    # whatever ini file the working directory has; nothing written next to the suite.
    argv = [
        str(suite),
        "-c",
        os.devnull,
        "--rootdir",
        str(suite),
        "-p",
        "no:cacheprovider",
        "--import-mode=importlib",
        "--strict-markers",
        # This process imported httpx (and with it anyio's pytest plugin) already.
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        "-o",
        "xfail_strict=true",
        "--timeout",
        str(args.case_timeout),
        "-r",
        "fEX",
        "--report-dir",
        str(report_dir),
    ]
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        argv += ["-p", "cri_conformance.plugin", "-p", "pytest_timeout"]
    optional = {
        "--target": target,
        "--cri-endpoint": args.runtime_endpoint,
        "--containerd-bin": args.containerd_bin,
        "--profile": args.profile,
        "--cri-api": args.cri_api,
        "--cri-config-hook": args.cri_config_hook,
        "--compare-with": args.compare_with,
        "-k": args.keyword,
    }
    for flag, value in optional.items():
        if value:
            argv += [flag, value]
    if args.expectations:
        argv += ["--expectations", str(_expectations_file(args.expectations))]
    for flag, value in (("--baseline", args.baseline), ("--junitxml", args.junit)):
        if value:
            path = Path(value).resolve()
            if flag == "--baseline" and not path.is_file():
                raise CLIError(f"--baseline {value}: no such file; give a report.json")
            argv += [flag, str(path)]
    argv += ["-" + "v" * args.verbose] if args.verbose else []
    argv += ["-q"] if args.quiet else []
    return argv + extra


def _run(args: argparse.Namespace) -> int:
    argv = pytest_args(args)
    areas = _areas(args.area)
    if any(a.startswith(("-n", "--numprocesses", "--dist")) for a in args.pytest_extra):
        raise CLIError(
            "pytest-xdist's -n does not suit the suite (one world and target per "
            "run); use --jobs N"
        )
    if args.jobs > 1:
        report_dir = Path(args.report_dir).resolve()
        return run_parallel(
            args.argv, jobs=args.jobs, areas=areas, report_dir=report_dir
        )
    plugins: list[object] = [_AreaFilter(areas)] if areas else []
    return int(pytest.main(argv, plugins=plugins))


def _collect(areas: frozenset[str]) -> list[pytest.Item]:
    class _Collector:
        def __init__(self) -> None:
            self.items: list[pytest.Item] = []

        def pytest_collection_finish(self, session: pytest.Session) -> None:
            self.items = list(session.items)

    suite = suite_dir()
    collector = _Collector()
    plugins: list[object] = [collector]
    if areas:
        plugins.insert(0, _AreaFilter(areas))
    argv = [str(suite), "-c", os.devnull, "--rootdir", str(suite)]
    argv += ["-p", "no:cacheprovider", "--import-mode=importlib", "--collect-only"]
    argv += ["--compare-with", "reference", "-q"]
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = pytest.main(argv, plugins=plugins)
    if code != 0:
        raise CLIError(f"the suite did not collect (pytest exit {int(code)}):{out}")
    return collector.items


def _list(args: argparse.Namespace) -> int:
    areas = _areas(args.area)
    if args.profiles:
        from refpull.profiles import PROFILES

        for name in sorted(PROFILES):
            print(name)
        return 0
    if args.cases:
        for item in _collect(areas):
            ids = [str(a) for m in item.iter_markers("behavior") for a in m.args]
            print(f"{item.nodeid}  {' '.join(dict.fromkeys(ids))}")
        return 0
    try:
        catalog = load_catalog()
    except (CatalogError, FileNotFoundError) as exc:
        raise CLIError(f"cannot load the behaviour catalog: {exc}") from exc
    for b in catalog:
        if not areas or b.area in areas:
            print(f"{b.id:<11} {b.level:<8} {b.scope:<10} {b.title}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cri-conformance`` console script."""
    parser = _build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "run":
        args.pytest_extra = extra
        args.argv = list(sys.argv[1:] if argv is None else argv)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    commands = {"run": _run, "list": _list, "report": run_report, "diff": run_diff}
    try:
        return commands[args.command](args)
    except (CLIError, ReportInputError) as exc:
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. ``list | head``
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
