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
import os
import shutil
import socket as socketlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from cri_conformance._cli_common import (
    CLIError,
    expectations_dir,
    package_version,
    suite_dir,
)
from cri_conformance._cli_list import AreaFilter, parse_areas, run_list
from cri_conformance._cli_parallel import run_parallel
from cri_conformance._cli_reports import add_report_parsers, run_diff, run_report
from cri_conformance.catalog import AREAS
from cri_conformance.options import TARGETS

__all__ = ["CLIError", "expectations_dir", "main", "pytest_args", "suite_dir"]

_PROG = "cri-conformance"


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
        "--runtime containerd-2.3.4, --crio-bin PATH, -x).",
    )
    add = run.add_argument
    add(
        "--target",
        choices=TARGETS,
        help="what to grade: the in-process reference (default), refpull serve over "
        "gRPC, any CRI endpoint (cri, implied by --runtime-endpoint), or a containerd "
        "or CRI-O the suite starts itself",
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
    add(
        "--junit",
        metavar="FILE",
        help="also write JUnit XML to FILE (with --jobs: one file per part, in "
        "<report-dir>/parts/)",
    )
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
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {package_version()}"
    )
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
    if args.jobs < 1:
        raise CLIError(f"--jobs {args.jobs}: give 1 or more")
    if args.jobs > 1 and (args.runtime_endpoint or args.target == "cri"):
        raise CLIError(
            "--jobs runs one target per part, so it needs a target the suite starts "
            "(reference, containerd, crio); a runtime endpoint is graded by one run"
        )
    argv = pytest_args(args)
    areas = parse_areas(args.area)
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
    plugins: list[object] = [AreaFilter(areas)] if areas else []
    return int(pytest.main(argv, plugins=plugins))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cri-conformance`` console script."""
    parser = _build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "run":
        args.pytest_extra = extra
        args.argv = list(sys.argv[1:] if argv is None else argv)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    commands = {"run": _run, "list": run_list, "report": run_report, "diff": run_diff}
    try:
        return commands[args.command](args)
    except CLIError as exc:
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. ``list | head``
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
