"""``cri-conformance list`` and ``--area``: the catalog's behaviours, the suite's cases.

A case belongs to one area: the area of its first ``behavior`` tag (the order the
report uses), so runs split by area never run a case twice.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from collections.abc import Sequence

import pytest

from cri_conformance._cli_common import CLIError, suite_dir
from cri_conformance.catalog import AREAS, CatalogError, load_catalog
from cri_conformance.plugin import behavior_ids

__all__ = ["AreaFilter", "parse_areas", "run_list", "suite_items"]


def parse_areas(values: Sequence[str]) -> frozenset[str]:
    """The areas of ``--area`` values (repeatable, comma-separated, any case).

    Raises:
        CLIError: a name that is no catalog area.
    """
    areas = frozenset(a.strip().upper() for v in values for a in v.split(",") if a)
    unknown = sorted(areas - set(AREAS))
    if unknown:
        raise CLIError(
            f"--area {','.join(unknown)}: not a catalog area; use one of "
            f"{','.join(AREAS)}"
        )
    return areas


class AreaFilter:
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


def suite_items(areas: frozenset[str]) -> list[pytest.Item]:
    """The suite's cases (of *areas*, every case without), collected, not run.

    Raises:
        CLIError: the suite does not collect.
    """

    class _Collector:
        def __init__(self) -> None:
            self.items: list[pytest.Item] = []

        def pytest_collection_finish(self, session: pytest.Session) -> None:
            self.items = list(session.items)

    suite = suite_dir()
    collector = _Collector()
    plugins: list[object] = [collector]
    if areas:
        plugins.insert(0, AreaFilter(areas))
    argv = [str(suite), "-c", os.devnull, "--rootdir", str(suite)]
    argv += ["-p", "no:cacheprovider", "--import-mode=importlib", "--collect-only"]
    argv += ["--compare-with", "reference", "-q"]
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = pytest.main(argv, plugins=plugins)
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        return []
    if code != 0:
        last = (out.getvalue().strip().splitlines() or ["(no output)"])[-1]
        raise CLIError(f"the suite did not collect (pytest exit {int(code)}): {last}")
    return collector.items


def run_list(args: argparse.Namespace) -> int:
    """``cri-conformance list``: behaviours, cases (``--cases``) or profiles."""
    areas = parse_areas(args.area)
    if args.profiles:
        from refpull.profiles import PROFILES

        for name in sorted(PROFILES):
            print(name)
        return 0
    if args.cases:
        for item in suite_items(areas):
            print(f"{item.nodeid}  {' '.join(behavior_ids(item))}")
        return 0
    try:
        catalog = load_catalog()
    except (CatalogError, FileNotFoundError) as exc:
        raise CLIError(f"cannot load the behaviour catalog: {exc}") from exc
    for b in catalog:
        if not areas or b.area in areas:
            print(f"{b.id:<11} {b.level:<8} {b.scope:<10} {b.title}")
    return 0
